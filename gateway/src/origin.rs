//! Which Host and Origin the gateway answers, against DNS rebinding and cross-site
//! WebSocket reads.
//!
//! A page on another site can make the analyst's browser connect to the gateway: through a
//! name it controls that resolves to the gateway's address (DNS rebinding; the browser then
//! sends that name as Host), or by opening the WebSocket directly (the browser sends the
//! page's Origin). So every request must name the gateway in Host, and a WebSocket
//! handshake that carries an Origin must come from the gateway's own origin.

use crate::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HOST, ORIGIN};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use std::net::IpAddr;

/// The names the gateway answers to besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    names: Vec<String>,
}

impl HostPolicy {
    /// `names`: host names (without port) the gateway is reached by, e.g. the name of a
    /// reverse proxy in front of it.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        HostPolicy {
            names: names
                .into_iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether a Host value (`name`, `name:port`, `[v6]:port`) names this gateway. An IP
    /// address is always accepted: rebinding needs a name the attacker controls.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        name.parse::<IpAddr>().is_ok() || name == "localhost" || self.names.contains(&name)
    }

    /// Whether a WebSocket handshake may proceed: no Origin (not a browser), or an Origin
    /// of the very scheme-less authority the request was sent to.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else {
            return true;
        };
        let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(HOST).map(|h| h.to_str()))
        else {
            return false;
        };
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            // `null` (sandboxed frames, files) and other schemes.
            return false;
        };
        authority.eq_ignore_ascii_case(host) && self.host_allowed(host)
    }
}

/// The host part of a Host value, lowercased; `None` when malformed.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        v6
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Middleware: refuse a request whose Host does not name the gateway (421).
pub async fn check_host(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let allowed = match (
        req.app_data::<web::Data<HostPolicy>>(),
        req.headers().get(HOST).map(|h| h.to_str()),
    ) {
        (Some(policy), Some(Ok(host))) => policy.host_allowed(host),
        (Some(_), Some(Err(_))) => false,
        // No browser sends a request without Host, so rebinding cannot omit it; and
        // without a policy nothing is checked (the app was built without one).
        (Some(_), None) | (None, _) => true,
    };
    if !allowed {
        tracing::warn!(host = ?req.headers().get(HOST), "request for another host refused");
        return Ok(req.into_response(ApiError::MisdirectedHost.error_response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn hosts_are_ip_addresses_localhost_or_named() {
        let p = HostPolicy::new(["SOC.example.net.".to_string()]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "10.1.2.3:443",
            "soc.example.net",
            "soc.example.net:8443",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "soc.example.net.evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8080",
            "[::1",
            "host:port",
            "",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_gateways_own_origin_opens_a_websocket() {
        let p = HostPolicy::default();
        let headers = |origin: Option<&str>, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(HOST, HeaderValue::from_str(host).expect("host"));
            if let Some(o) = origin {
                h.insert(ORIGIN, HeaderValue::from_str(o).expect("origin"));
            }
            h
        };
        assert!(p.origin_allowed(&headers(None, "127.0.0.1:8080")));
        assert!(p.origin_allowed(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")));
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:9999",
            "null",
            "file://",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert!(
                !p.origin_allowed(&headers(Some(bad), "127.0.0.1:8080")),
                "{bad}"
            );
        }
    }
}
