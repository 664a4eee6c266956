//! Gateway integration tests, one binary: REST in-process, WebSocket over a real socket.

mod alerts;
mod auth;
mod common;
mod response;
mod suppressions;
mod tls;
mod workflow;
mod ws;
