//! Ways raw logs enter the raw topic: syslog (UDP, TCP, TLS), HTTP ingest, file tail, and
//! the replay of a file. The live connectors write through one [`sink::Sink`], which bounds
//! what waits in memory and tells each connector when its lines are durable.

pub mod deployment;
pub mod error;
pub mod http;
pub mod internal_events;
pub mod line;
pub mod replay;
pub mod sink;
pub mod syslog;
pub mod tail;

pub use error::{Error, Result};

/// Resolves once `shutdown` turns true (or its sender is gone). Unlike `wait_for` its output
/// holds no borrow of the channel, so a task waiting on it in `select!` stays `Send`.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
