//! `/ws/alerts`: every alert revision as `{"type":"alert","alert":{..}}`, heartbeats every
//! 15 s, and a disconnect (close code 1008, policy) for clients that fall behind.

use crate::hub::AlertHub;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const HEARTBEAT: Duration = Duration::from_secs(15);
/// A client that answers no ping for this long is gone.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);

pub async fn alerts_ws(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<AlertHub>,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let mut alerts = hub.subscribe();
    hub.sessions_opened.fetch_add(1, Ordering::Relaxed);
    let hub = hub.into_inner();
    actix_web::rt::spawn(async move {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut last_seen = tokio::time::Instant::now();
        let reason = loop {
            tokio::select! {
                msg = alerts.recv() => match msg {
                    Ok(text) => {
                        if session.text(text.to_string()).await.is_err() {
                            break None;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "websocket client too slow; disconnecting");
                        break Some(CloseReason {
                            code: CloseCode::Policy,
                            description: Some(format!("too slow: {missed} alerts missed; reconnect and reload")),
                        });
                    }
                    Err(RecvError::Closed) => break Some(CloseCode::Away.into()),
                },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Ping(bytes))) => {
                        last_seen = tokio::time::Instant::now();
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(Message::Pong(_))) | Some(Ok(Message::Text(_))) | Some(Ok(Message::Binary(_))) => {
                        last_seen = tokio::time::Instant::now();
                    }
                    Some(Ok(Message::Close(reason))) => break reason,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                },
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > CLIENT_TIMEOUT {
                        break None;
                    }
                    if session.ping(b"").await.is_err() {
                        break None;
                    }
                }
            }
        };
        hub.sessions_closed.fetch_add(1, Ordering::Relaxed);
        let _ = session.close(reason).await;
    });
    Ok(response)
}
