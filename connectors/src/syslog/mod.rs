//! Syslog over UDP (RFC 5426), TCP (RFC 6587: octet counting and newline framing) and TLS
//! (RFC 5425, rustls). Each message keeps the sender's address (`log.source.address`) and
//! its receive time (the record's timestamp), and is keyed by the sender, so one host's
//! lines stay in order on one partition.
//!
//! TCP and TLS connections are read only as fast as the stream takes what they send, and
//! a connection the sender closes is closed in turn only once everything it sent is
//! durable: a sender that waits for that close knows its lines are kept. UDP has no answer:
//! a datagram that finds the queue full is dropped and counted.

mod config;
mod framing;

pub use config::{default_max_connections, SyslogConfig, SyslogMode};
pub use framing::{FrameError, FrameReader};

use crate::error::{Error, Result};
use crate::internal_events::{self as events, Connector};
use crate::line::{now_ms, Lines};
use crate::sink::{Receipt, Sink, SinkError};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// A datagram is at most this large (the IPv4 UDP payload limit, rounded up).
const DATAGRAM_BYTES: usize = 65_536;
/// Datagrams taken in one go when several wait.
const UDP_BATCH: usize = 512;
/// Submissions of one connection not yet durable before it stops reading.
const MAX_IN_FLIGHT: usize = 16;
/// A TLS client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

enum Listener {
    Udp(UdpSocket),
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// A bound syslog listener, ready to [`run`](SyslogSource::run).
pub struct SyslogSource {
    config: SyslogConfig,
    listener: Listener,
    local_addr: SocketAddr,
}

impl SyslogSource {
    /// Bind the address (and load the TLS certificate): an error here is a configuration
    /// error, reported before anything runs.
    pub async fn bind(config: SyslogConfig) -> Result<Self> {
        let bind_err = |source| Error::Bind {
            address: config.address,
            source,
        };
        let listener = match &config.mode {
            SyslogMode::Udp => {
                Listener::Udp(UdpSocket::bind(config.address).await.map_err(bind_err)?)
            }
            SyslogMode::Tcp => Listener::Tcp(
                TcpListener::bind(config.address).await.map_err(bind_err)?,
                None,
            ),
            SyslogMode::Tls { cert, key } => {
                let tls = soc_core::tls::server_config(cert, key)?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
                Listener::Tcp(
                    TcpListener::bind(config.address).await.map_err(bind_err)?,
                    Some(acceptor),
                )
            }
        };
        let local_addr = match &listener {
            Listener::Udp(s) => s.local_addr(),
            Listener::Tcp(l, _) => l.local_addr(),
        }
        .map_err(bind_err)?;
        Ok(SyslogSource {
            config,
            listener,
            local_addr,
        })
    }

    /// The bound address (the port chosen when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn connector(&self) -> Connector {
        match self.config.mode {
            SyslogMode::Udp => Connector::SyslogUdp,
            SyslogMode::Tcp => Connector::SyslogTcp,
            SyslogMode::Tls { .. } => Connector::SyslogTls,
        }
    }

    /// Receive until `shutdown` turns true; TCP connections then stop reading and end once
    /// what they read is durable. Fails only when the stream writer stops.
    pub async fn run(self, sink: Sink, shutdown: watch::Receiver<bool>) -> Result<()> {
        let connector = self.connector();
        info!(connector = connector.name(), address = %self.local_addr, "syslog listening");
        match self.listener {
            Listener::Udp(socket) => run_udp(socket, self.config, sink, shutdown).await,
            Listener::Tcp(listener, tls) => {
                run_tcp(listener, tls, connector, self.config, sink, shutdown).await
            }
        }
    }
}

fn sender_key(peer: SocketAddr) -> Option<Vec<u8>> {
    Some(peer.ip().to_string().into_bytes())
}

async fn run_udp(
    socket: UdpSocket,
    config: SyslogConfig,
    sink: Sink,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let connector = Connector::SyslogUdp;
    let mut buf = vec![0u8; DATAGRAM_BYTES];
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = crate::stopped(&mut shutdown) => return Ok(()),
        };
        let mut lines = Lines::default();
        let mut datagrams = 0u64;
        let mut next = first;
        loop {
            match next {
                Ok((n, peer)) => {
                    datagrams += 1;
                    push_datagram(&mut lines, &buf[..n], peer, &config);
                }
                // An ICMP error reported on the socket, say: the next datagram is unaffected.
                Err(e) => {
                    events::error(connector, events::ERROR_READ);
                    debug!(error = %e, "syslog udp receive");
                }
            }
            if lines.len() >= UDP_BATCH {
                break;
            }
            next = match socket.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                other => other,
            };
        }
        let count = lines.len() as u64;
        events::received(connector, count, lines.bytes);
        if count == 0 {
            continue;
        }
        match sink.try_submit(lines.into()) {
            Ok(_) => {}
            Err(SinkError::Full { .. }) => {
                events::dropped(connector, events::DROP_BACKPRESSURE, count);
                debug!(
                    datagrams,
                    lines = count,
                    "syslog udp: stream behind, dropped"
                );
            }
            Err(e) => return Err(Error::Sink(e)),
        }
    }
}

/// A datagram may carry several newline-separated messages (some senders batch them).
fn push_datagram(lines: &mut Lines, datagram: &[u8], peer: SocketAddr, config: &SyslogConfig) {
    let received = now_ms();
    for part in datagram.split(|b| *b == b'\n') {
        let keep = part.len().min(config.max_line_bytes);
        lines.push(
            Connector::SyslogUdp,
            &part[..keep],
            part.len(),
            config.max_line_bytes,
            Some(peer.ip()),
            sender_key(peer),
            || format!("syslog_udp:{peer}"),
            received,
        );
    }
}

async fn run_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connector: Connector,
    config: SyslogConfig,
    sink: Sink,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let config = Arc::new(config);
    let mut connections: JoinSet<std::result::Result<(), SinkError>> = JoinSet::new();
    let mut failed = None;
    // Each connection watches its own copy; this loop waits on `stop`.
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little instead of spinning.
                        events::error(connector, events::ERROR_READ);
                        warn!(error = %e, "syslog accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    events::dropped(connector, events::DROP_CONNECTION_LIMIT, 0);
                    warn!(%peer, limit = config.max_connections, "syslog connection limit reached; closed");
                    continue;
                };
                let (tls, sink, config, shutdown) =
                    (tls.clone(), sink.clone(), config.clone(), shutdown.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    connection(stream, peer, tls, connector, &config, &sink, shutdown).await
                });
            }
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Ok(Err(e)) = done {
                    failed = Some(e);
                    break;
                }
            }
            _ = crate::stopped(&mut stop) => break,
        }
    }
    // Every connection flushes what it read before it ends.
    while let Some(done) = connections.join_next().await {
        if let Ok(Err(e)) = done {
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(SinkError::Closed | SinkError::Stream(_)) => Err(Error::Sink(SinkError::Closed)),
        _ => Ok(()),
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connector: Connector,
    config: &SyslogConfig,
    sink: &Sink,
    shutdown: watch::Receiver<bool>,
) -> std::result::Result<(), SinkError> {
    debug!(%peer, connector = connector.name(), "syslog connection");
    match tls {
        None => serve(stream, peer, connector, config, sink, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(stream, peer, connector, config, sink, shutdown).await,
                Ok(Err(e)) => {
                    events::error(connector, events::ERROR_TLS_HANDSHAKE);
                    warn!(%peer, error = %e, "syslog TLS handshake failed");
                    Ok(())
                }
                Err(_) => {
                    events::error(connector, events::ERROR_TLS_HANDSHAKE);
                    warn!(%peer, "syslog TLS handshake timed out");
                    Ok(())
                }
            }
        }
    }
}

/// Read frames until the sender closes (or shutdown), submitting them as they come; then
/// wait until all of it is durable before closing our side.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    connector: Connector,
    config: &SyslogConfig,
    sink: &Sink,
    mut shutdown: watch::Receiver<bool>,
) -> std::result::Result<(), SinkError> {
    let (read, mut write) = tokio::io::split(stream);
    let mut frames = FrameReader::new(read, config.max_line_bytes);
    let mut in_flight: VecDeque<Receipt> = VecDeque::new();
    let mut lines = Lines::default();
    let mut frame = Vec::new();
    loop {
        let next = tokio::select! {
            next = frames.next(&mut frame) => next,
            _ = crate::stopped(&mut shutdown) => break,
        };
        match next {
            Ok(Some(len)) => lines.push(
                connector,
                &frame,
                len,
                config.max_line_bytes,
                Some(peer.ip()),
                sender_key(peer),
                || format!("{}:{peer}", connector.name()),
                now_ms(),
            ),
            Ok(None) => break,
            Err(FrameError::Partial { len, missing }) => {
                events::error(connector, events::ERROR_PARTIAL_FRAME);
                warn!(%peer, len, missing, "syslog sender left mid-frame; the partial frame is not kept");
                break;
            }
            Err(FrameError::Io(e)) => {
                events::error(connector, events::ERROR_READ);
                debug!(%peer, error = %e, "syslog connection read failed");
                break;
            }
        }
        if lines.len() >= config.batch_lines || (!frames.has_buffered() && !lines.is_empty()) {
            submit(&mut lines, connector, sink, &mut in_flight).await?;
        }
    }
    submit(&mut lines, connector, sink, &mut in_flight).await?;
    for receipt in in_flight {
        receipt.durable().await?;
    }
    // Everything read is durable: only now does the sender see our close.
    let _ = write.shutdown().await;
    Ok(())
}

async fn submit(
    lines: &mut Lines,
    connector: Connector,
    sink: &Sink,
    in_flight: &mut VecDeque<Receipt>,
) -> std::result::Result<(), SinkError> {
    if lines.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(lines);
    events::received(connector, batch.len() as u64, batch.bytes);
    // Waits while the queue is full: this connection stops reading, TCP slows the sender.
    in_flight.push_back(sink.submit(batch.into()).await?);
    while in_flight.len() > MAX_IN_FLIGHT {
        if let Some(oldest) = in_flight.pop_front() {
            oldest.durable().await?;
        }
    }
    Ok(())
}
