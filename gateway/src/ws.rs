//! `/ws/alerts`: every alert revision as `{"type":"alert","alert":{..}}`, heartbeats every
//! 15 s, and a disconnect for clients that fall behind (close code 1008, policy), stop
//! reading (no message taken for 10 s) or answer no ping for 45 s. The socket needs a
//! signed-in viewer, and closes (1008) at the first heartbeat after its session or token
//! ends.

use crate::auth::{Accounts, Principal};
use crate::error::ApiError;
use crate::hub::AlertHub;
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

pub async fn alerts_ws(
    req: HttpRequest,
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
    let mut alerts = hub.subscribe();
    hub.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let hub = hub.into_inner();
    let accounts = accounts.into_inner();
    actix_web::rt::spawn(async move {
        let clock = hub.clock;
        let mut heartbeat = Box::pin(clock.sleep(HEARTBEAT));
        let mut last_seen = clock.now();
        let reason = loop {
            tokio::select! {
                msg = alerts.recv() => match msg {
                    Ok(text) => {
                        // Almost every send finds room at once: only a send that has to
                        // wait arms the timeout, so the common path costs no timer.
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
                            Some(Ok(())) => {}
                            Some(Err(_)) => break None,
                            None => {
                                tracing::warn!("websocket client stopped reading; disconnecting");
                                hub.sessions_dropped_stalled.fetch_add(1, Ordering::Relaxed);
                                // Its queue is full: a close frame would wait as well.
                                break None;
                            }
                        }
                    }
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
