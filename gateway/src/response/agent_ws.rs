//! `GET /ws/agent`: an enrolled agent's connection. The agent says hello (version, host, dry
//! run), gets every command it has not answered, then commands as they are dispatched; it
//! sends heartbeats and reports, and each stored report is acknowledged.

use super::enrollment::{self, AgentPrincipal};
use super::{dispatch, reports, ResponseService};
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::{FutureExt, StreamExt};
use soc_core::command::{AgentMessage, GatewayMessage};
use std::future::{ready, Ready};
use std::time::Duration;
use tracing::{info, warn};

/// An agent that sends nothing (no heartbeat, no ping) for this long is dropped.
const AGENT_TIMEOUT: Duration = Duration::from_secs(45);
/// How often the connection checks the agent is still enrolled and alive.
const CHECK_EVERY: Duration = Duration::from_secs(15);
/// A send the agent does not take within this is a dead connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

impl FromRequest for AgentPrincipal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<AgentPrincipal>()
                .cloned()
                .ok_or_else(|| ApiError::Unauthenticated.into()),
        )
    }
}

async fn next_message(
    stash: &mut Option<Option<Result<Message, actix_ws::ProtocolError>>>,
    incoming: &mut actix_ws::MessageStream,
) -> Option<Result<Message, actix_ws::ProtocolError>> {
    match stash.take() {
        Some(m) => m,
        None => incoming.next().await,
    }
}

async fn send(
    session: &mut actix_ws::Session,
    msg: &GatewayMessage,
    clock: soc_core::clock::Clock,
) -> bool {
    let Ok(text) = serde_json::to_string(msg) else {
        return true;
    };
    tokio::select! {
        r = session.text(text) => r.is_ok(),
        _ = clock.sleep(SEND_TIMEOUT) => false,
    }
}

pub async fn agent_ws(
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<ResponseService>,
    agent: AgentPrincipal,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let svc = svc.into_inner();
    actix_web::rt::spawn(async move {
        let clock = svc.clock;
        let id = agent.agent_id.clone();
        let (sid, mut queue) = svc.attach(&id);
        info!(agent = %id, host = %agent.host, "agent connected");
        let mut last_heard = clock.now();
        let mut last_written = clock.now();
        let mut check = Box::pin(clock.sleep(CHECK_EVERY));
        // A message read ahead while collecting reports, handled on the next turn.
        let mut stash = None;
        let reason: Option<CloseReason> = loop {
            tokio::select! {
                out = queue.recv() => match out {
                    Some(m) => {
                        if !send(&mut session, &m, clock).await {
                            break None;
                        }
                    }
                    // Replaced by a newer connection of the same agent, or revoked.
                    None => break Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("replaced by another connection or revoked".into()),
                    }),
                },
                msg = next_message(&mut stash, &mut incoming) => match msg {
                    Some(Ok(Message::Text(text))) => {
                        last_heard = clock.now();
                        let now = chrono::Utc::now();
                        let parsed = serde_json::from_str::<AgentMessage>(&text);
                        match parsed {
                            Ok(AgentMessage::Hello { version, host, dry_run, keys_version }) => {
                                if host != agent.host {
                                    warn!(agent = %id, enrolled = %agent.host, claims = %host, "agent claims another host");
                                    break Some(CloseReason {
                                        code: CloseCode::Policy,
                                        description: Some(format!("enrolled for host `{}`", agent.host)),
                                    });
                                }
                                if let Err(e) = enrollment::seen(&svc.db, &id, Some(&version), Some(dry_run), Some(keys_version), now).await {
                                    warn!(agent = %id, error = %e, "cannot record the agent's hello");
                                }
                                last_written = clock.now();
                                let welcome = GatewayMessage::Welcome { agent: id.clone(), host: agent.host.clone() };
                                if !send(&mut session, &welcome, clock).await {
                                    break None;
                                }
                                // Keys before commands: a command signed by a key the agent
                                // has not adopted yet would be refused.
                                let ring = svc.keys();
                                if keys_version < ring.version() {
                                    let set = GatewayMessage::Keys(ring.signed_keyset(now));
                                    if !send(&mut session, &set, clock).await {
                                        break None;
                                    }
                                }
                                if let Err(e) = dispatch::resend(&svc, &id, now).await {
                                    warn!(agent = %id, error = %e, "cannot resend unanswered commands");
                                }
                                svc.wake();
                            }
                            Ok(AgentMessage::KeysAdopted { version }) => {
                                info!(agent = %id, version, "agent adopted the key set");
                                if let Err(e) = enrollment::seen(&svc.db, &id, None, None, Some(version), now).await {
                                    warn!(agent = %id, error = %e, "cannot record the agent's key set");
                                }
                            }
                            Ok(AgentMessage::Heartbeat { .. }) => {
                                if clock.since(last_written) >= Duration::from_secs(30) {
                                    last_written = clock.now();
                                    if let Err(e) = enrollment::seen(&svc.db, &id, None, None, None, now).await {
                                        warn!(agent = %id, error = %e, "cannot record a heartbeat");
                                    }
                                }
                            }
                            Ok(AgentMessage::Report(r)) => {
                                // Every report already here joins this one in a transaction;
                                // the first other message waits for the next turn.
                                let mut batch = vec![r];
                                while batch.len() < reports::BATCH_MAX {
                                    match incoming.next().now_or_never() {
                                        Some(Some(Ok(Message::Text(t)))) => {
                                            match serde_json::from_str::<AgentMessage>(&t) {
                                                Ok(AgentMessage::Report(r)) => batch.push(r),
                                                _ => {
                                                    stash = Some(Some(Ok(Message::Text(t))));
                                                    break;
                                                }
                                            }
                                        }
                                        Some(other) => {
                                            stash = Some(other);
                                            break;
                                        }
                                        None => break,
                                    }
                                }
                                match reports::handle_batch(&svc, &id, &batch, now).await {
                                    Ok(acked) => {
                                        let mut gone = false;
                                        for command in acked {
                                            if !send(&mut session, &GatewayMessage::Ack { command }, clock).await {
                                                gone = true;
                                                break;
                                            }
                                        }
                                        if gone {
                                            break None;
                                        }
                                        svc.wake();
                                    }
                                    // Not acknowledged: the agent sends them again.
                                    Err(e) => warn!(agent = %id, error = %e, reports = batch.len(), "cannot store reports"),
                                }
                            }
                            Err(e) => {
                                warn!(agent = %id, error = %e, "unreadable message from agent");
                            }
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        last_heard = clock.now();
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => break reason,
                    Some(Ok(_)) => last_heard = clock.now(),
                    Some(Err(_)) | None => break None,
                },
                _ = &mut check => {
                    check.set(clock.sleep(CHECK_EVERY));
                    if clock.since(last_heard) > AGENT_TIMEOUT {
                        warn!(agent = %id, "agent silent; disconnecting");
                        break None;
                    }
                }
            }
        };
        svc.detach(&id, sid);
        info!(agent = %id, "agent disconnected");
        if let Some(reason) = reason {
            tokio::select! {
                _ = session.close(Some(reason)) => {}
                _ = clock.sleep(SEND_TIMEOUT) => {}
            }
        }
    });
    Ok(response)
}
