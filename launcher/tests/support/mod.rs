//! Signing in to a running gateway from tests.
#![allow(dead_code)]

pub mod browser;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The first admin's password in tests that start `soc` (`SOC_AUTH__ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "test admin passphrase";

/// An admin API token of an embedded pipeline.
pub async fn token(pipeline: &soc::embedded::Pipeline) -> String {
    soc::users::issue_token(&pipeline.db, "admin", "test", None)
        .await
        .expect("token")
}

/// GET a JSON document with a bearer token.
pub async fn get_json(url: &str, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("json")
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the alert stream at `addr` with a bearer token.
pub async fn ws(addr: impl std::fmt::Display, token: &str) -> Ws {
    let mut req = format!("ws://{addr}/ws/alerts")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

/// Sign in as the admin of a `soc` process (blocking); the session cookie, or `None` while
/// the gateway is not answering yet.
pub fn sign_in_blocking(port: u16) -> Option<String> {
    let res = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/auth/signin"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let cookie = res.headers().get("set-cookie")?.to_str().ok()?;
    Some(cookie.split(';').next()?.to_string())
}

/// GET a JSON document with a session cookie (blocking); `None` on any failure.
pub fn get_blocking(url: &str, cookie: &str) -> Option<serde_json::Value> {
    reqwest::blocking::Client::new()
        .get(url)
        .header("Cookie", cookie)
        .send()
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .ok()
}

/// GET a JSON document from a `soc` process on `port` as its admin (blocking), signing in
/// once and again only when the session is refused; `None` on any failure.
pub fn get_signed_in(port: u16, url: &str) -> Option<serde_json::Value> {
    use std::sync::Mutex;
    static SESSIONS: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());
    let cached = SESSIONS
        .lock()
        .ok()?
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, c)| c.clone());
    let cookie = match cached {
        Some(c) => c,
        None => {
            let c = sign_in_blocking(port)?;
            SESSIONS.lock().ok()?.push((port, c.clone()));
            c
        }
    };
    let res = reqwest::blocking::Client::new()
        .get(url)
        .header("Cookie", &cookie)
        .send()
        .ok()?;
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        SESSIONS.lock().ok()?.retain(|(p, _)| *p != port);
        return None;
    }
    res.error_for_status().ok()?.json().ok()
}

/// The embedded pipeline on `dir` with triage off, and the first admin's password when given;
/// send `true` to stop it.
pub async fn start_without_model(
    dir: &std::path::Path,
    admin_password: Option<&str>,
) -> (soc::embedded::Pipeline, tokio::sync::watch::Sender<bool>) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut opts = soc::embedded::Options::local(dir, listener, shutdown);
    opts.triage = Some(soc_processor::triage::TriageSettings {
        enabled: false,
        ..Default::default()
    });
    if let Some(p) = admin_password {
        opts.settings.auth.admin_password = Some(p.into());
    }
    let pipeline = soc::embedded::start(opts).await.expect("pipeline starts");
    (pipeline, stop)
}
