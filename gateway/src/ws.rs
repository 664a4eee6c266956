//! `/ws/alerts`: every alert revision as `{"type":"alert","cursor":..,"alert":{..}}` and
//! every workflow change, heartbeats every 15 s, and a disconnect for clients that fall
//! behind (close code 1008, policy), stop reading (no message taken for 10 s) or answer no
//! ping for 45 s. `?resume=CURSOR` (the last cursor seen) first sends what was missed, or
//! `{"type":"resync"}` when that cannot be known. The socket needs a signed-in viewer, and
//! closes (1008) at the first heartbeat after its session or token ends.

use crate::auth::{Accounts, Principal};
use crate::error::ApiError;
use crate::hub::{AlertHub, ResumeFrom};
use crate::origin::HostPolicy;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// A client that answers no ping for this long is gone.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// A client whose connection takes no message for this long (it stopped reading, and the
/// socket's buffers are full) is dropped: a send never waits longer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// The `cursor` of the last message the client saw.
    pub resume: Option<String>,
    /// Or the id and revision of the last alert it saw (both together).
    pub last_id: Option<String>,
    pub last_revision: Option<u64>,
}

enum Sent {
    Ok,
    /// The connection is gone.
    Closed,
    /// The client took nothing for [`SEND_TIMEOUT`].
    Stalled,
}

/// Send one text frame; only a send that has to wait arms the timeout, so the common path
/// costs no timer.
async fn send_text(
    session: &mut actix_ws::Session,
    text: &str,
    clock: soc_core::clock::Clock,
) -> Sent {
    let send = session.text(text.to_string());
    tokio::pin!(send);
    let sent = match send.as_mut().now_or_never() {
        Some(r) => Some(r),
        None => tokio::select! {
            r = &mut send => Some(r),
            _ = clock.sleep(SEND_TIMEOUT) => None,
        },
    };
    match sent {
        Some(Ok(())) => Sent::Ok,
        Some(Err(_)) => Sent::Closed,
        None => Sent::Stalled,
    }
}

pub async fn alerts_ws(
    req: HttpRequest,
    query: web::Query<WsQuery>,
    body: web::Payload,
    hub: web::Data<AlertHub>,
    hosts: Option<web::Data<HostPolicy>>,
    principal: Principal,
    accounts: web::Data<Accounts>,
) -> actix_web::Result<HttpResponse> {
    if hosts.is_some_and(|h| !h.origin_allowed(req.headers())) {
        tracing::warn!(origin = ?req.headers().get("origin"), "websocket from a foreign origin refused");
        return Err(ApiError::ForeignOrigin.into());
    }
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    if query.resume.as_ref().is_some_and(|c| c.len() > 64)
        || query.last_id.as_ref().is_some_and(|c| c.len() > 64)
    {
        return Err(ApiError::BadRequest("`resume` or `last_id` is too long".into()).into());
    }
    let from = match (&query.resume, &query.last_id, query.last_revision) {
        (None, None, None) => ResumeFrom::Live,
        (Some(c), None, None) => ResumeFrom::Cursor(c),
        (None, Some(id), Some(revision)) => ResumeFrom::Alert { id, revision },
        _ => {
            return Err(ApiError::BadRequest(
                "resume with `resume=CURSOR`, or with `last_id` and `last_revision` together"
                    .into(),
            )
            .into())
        }
    };
    let resume = hub.resume(from);
    let mut alerts = resume.live;
    let mut first: Vec<std::sync::Arc<str>> = resume.backlog.into_iter().map(|m| m.text).collect();
    if let Some(why) = resume.resync {
        first.insert(
            0,
            serde_json::json!({"type": "resync", "reason": why})
                .to_string()
                .into(),
        );
    }
    hub.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let hub = hub.into_inner();
    let accounts = accounts.into_inner();
    actix_web::rt::spawn(async move {
        let clock = hub.clock;
        let mut heartbeat = Box::pin(clock.sleep(HEARTBEAT));
        let mut last_seen = clock.now();
        let stalled = || {
            tracing::warn!("websocket client stopped reading; disconnecting");
            hub.sessions_dropped_stalled.fetch_add(1, Ordering::Relaxed);
        };
        // What the client missed goes first; the live queue holds what comes meanwhile.
        for text in first {
            match send_text(&mut session, &text, clock).await {
                Sent::Ok => {}
                Sent::Closed => {
                    hub.sessions_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Sent::Stalled => {
                    stalled();
                    hub.sessions_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let reason = loop {
            tokio::select! {
                msg = alerts.recv() => match msg {
                    Ok(m) => match send_text(&mut session, &m.text, clock).await {
                        Sent::Ok => {}
                        Sent::Closed => break None,
                        // Its queue is full: a close frame would wait as well.
                        Sent::Stalled => {
                            stalled();
                            break None;
                        }
                    },
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "websocket client too slow; disconnecting");
                        hub.sessions_dropped_lagging.fetch_add(1, Ordering::Relaxed);
                        break Some(CloseReason {
                            code: CloseCode::Policy,
                            description: Some(format!("too slow: {missed} alerts missed; reconnect and reload")),
                        });
                    }
                    Err(RecvError::Closed) => break Some(CloseCode::Away.into()),
                },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Ping(bytes))) => {
                        last_seen = clock.now();
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(Message::Pong(_))) | Some(Ok(Message::Text(_))) | Some(Ok(Message::Binary(_))) => {
                        last_seen = clock.now();
                    }
                    Some(Ok(Message::Close(reason))) => break reason,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                },
                _ = &mut heartbeat => {
                    heartbeat.set(clock.sleep(HEARTBEAT));
                    if clock.since(last_seen) > CLIENT_TIMEOUT {
                        tracing::debug!("websocket client answered no ping; disconnecting");
                        break None;
                    }
                    match accounts.still_valid(&principal, chrono::Utc::now()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(user = %principal.username, "session ended; closing its websocket");
                            break Some(CloseReason {
                                code: CloseCode::Policy,
                                description: Some("session ended; sign in again".into()),
                            });
                        }
                        // A database hiccup is not a reason to drop an analyst's feed.
                        Err(e) => tracing::warn!(error = %e, "websocket: checking the session failed"),
                    }
                    if session.ping(b"").await.is_err() {
                        break None;
                    }
                }
            }
        };
        hub.sessions_closed.fetch_add(1, Ordering::Relaxed);
        match reason {
            // Bounded: a client that reads nothing must not hold the task.
            Some(reason) => {
                tokio::select! {
                    _ = session.close(Some(reason)) => {}
                    _ = clock.sleep(SEND_TIMEOUT) => {}
                }
            }
            // Dropping the session ends the connection.
            None => drop(session),
        }
    });
    Ok(response)
}
