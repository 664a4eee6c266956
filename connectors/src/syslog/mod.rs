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
use soc_core::stream::Checkpoint;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
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
    let max_connections = config.max_connections;
    let shared = Arc::new(Shared {
        connector,
        config,
        sink,
        sessions: Arc::default(),
    });
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
                    warn!(%peer, limit = max_connections, "syslog connection limit reached; closed");
                    continue;
                };
                let (tls, shared, shutdown) = (tls.clone(), shared.clone(), shutdown.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    connection(stream, peer, tls, &shared, shutdown).await
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

/// What every connection of one listener shares.
struct Shared {
    connector: Connector,
    config: SyslogConfig,
    sink: Sink,
    sessions: Sessions,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: &Shared,
    shutdown: watch::Receiver<bool>,
) -> std::result::Result<(), SinkError> {
    let connector = shared.connector;
    debug!(%peer, connector = connector.name(), "syslog connection");
    match tls {
        None => serve(stream, peer, shared, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(stream, peer, shared, shutdown).await,
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

/// The first frame of a connection that wants acknowledgements: `soc-session SENDER`.
///
/// The server answers `soc-resume N`: N lines of this sender are already durable, so it
/// sends again from its line N (counting from 0). Each time more of its lines are durable
/// the server writes `soc-ack M` (M lines in all). The position is stored with the lines,
/// so a sender that resends everything not acknowledged, even across a crash of `soc`,
/// gets every line in the stream exactly once on the embedded log. One connection per
/// sender at a time (another is answered `soc-refused busy` and closed). Syslog has no
/// authentication: use sender names on networks you trust, or over TLS.
pub const SESSION_HELLO: &str = "soc-session ";

/// Sender names in use by an open session.
type Sessions = Arc<std::sync::Mutex<HashSet<String>>>;

struct Session {
    checkpoint: String,
    position: u64,
    _claim: SessionClaim,
}

/// Holds a sender's name while its connection lives, and frees it after.
struct SessionClaim {
    sessions: Sessions,
    sender: String,
}

impl Drop for SessionClaim {
    fn drop(&mut self) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&self.sender);
        }
    }
}

/// What the connection's writer sends back, in order.
enum Answer {
    Resume(u64),
    Refused(&'static str),
    /// Wait until durable; then acknowledge this position (session connections only).
    Durable(Receipt, Option<u64>),
}

async fn open_session(
    hello: &[u8],
    sink: &Sink,
    sessions: &Sessions,
) -> std::result::Result<Session, &'static str> {
    let sender = std::str::from_utf8(hello).map_err(|_| "bad-sender")?.trim();
    if sender.is_empty()
        || sender.len() > 128
        || !sender
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err("bad-sender");
    }
    {
        let mut open = sessions.lock().map_err(|_| "busy")?;
        if !open.insert(sender.to_string()) {
            return Err("busy");
        }
    }
    let claim = SessionClaim {
        sessions: sessions.clone(),
        sender: sender.to_string(),
    };
    let checkpoint = format!("syslog:{sender}");
    let position = sink
        .checkpoint(&checkpoint)
        .await
        .map_err(|_| "unavailable")?
        .unwrap_or(0);
    Ok(Session {
        checkpoint,
        position,
        _claim: claim,
    })
}

/// Read frames until the sender closes (or shutdown), submitting them as they come; then
/// wait until all of it is durable before closing our side. A session connection
/// ([`SESSION_HELLO`]) is also told, as it goes, how much of it is durable.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) -> std::result::Result<(), SinkError> {
    let Shared {
        connector,
        config,
        sink,
        sessions,
    } = shared;
    let connector = *connector;
    let (read, write) = tokio::io::split(stream);
    // Bounded: a connection whose lines are not yet durable stops reading.
    let (answers, pending) = mpsc::channel::<Answer>(MAX_IN_FLIGHT);
    let mut session: Option<Session> = None;
    let reader = async {
        let mut frames = FrameReader::new(read, config.max_line_bytes);
        let mut lines = Lines::default();
        let mut frame = Vec::new();
        let mut batch_frames = 0u64;
        let mut first = true;
        loop {
            let next = tokio::select! {
                next = frames.next(&mut frame) => next,
                _ = crate::stopped(&mut shutdown) => break,
            };
            match next {
                Ok(Some(len)) => {
                    if std::mem::take(&mut first) {
                        if let Some(hello) = frame.strip_prefix(SESSION_HELLO.as_bytes()) {
                            match open_session(hello, sink, sessions).await {
                                Ok(s) => {
                                    debug!(%peer, checkpoint = %s.checkpoint, position = s.position, "syslog session");
                                    let _ = answers.send(Answer::Resume(s.position)).await;
                                    session = Some(s);
                                    continue;
                                }
                                Err(reason) => {
                                    warn!(%peer, reason, "syslog session refused");
                                    let _ = answers.send(Answer::Refused(reason)).await;
                                    break;
                                }
                            }
                        }
                    }
                    batch_frames += 1;
                    lines.push(
                        connector,
                        &frame,
                        len,
                        config.max_line_bytes,
                        Some(peer.ip()),
                        sender_key(peer),
                        || format!("{}:{peer}", connector.name()),
                        now_ms(),
                    );
                }
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
            if batch_frames as usize >= config.batch_lines
                || (!frames.has_buffered() && batch_frames > 0)
            {
                let frames_in = std::mem::take(&mut batch_frames);
                submit(
                    &mut lines,
                    frames_in,
                    connector,
                    sink,
                    session.as_mut(),
                    &answers,
                )
                .await?;
            }
        }
        if batch_frames > 0 {
            submit(
                &mut lines,
                batch_frames,
                connector,
                sink,
                session.as_mut(),
                &answers,
            )
            .await?;
        }
        drop(answers);
        Ok::<(), SinkError>(())
    };
    let (read, written) = tokio::join!(reader, answer(write, pending));
    read?;
    written
}

/// Send the answers in order, each durable one once it is; close our side at the end, so
/// the sender sees the close only once everything it sent is durable.
async fn answer<W: AsyncWrite + Unpin>(
    mut write: W,
    mut pending: mpsc::Receiver<Answer>,
) -> std::result::Result<(), SinkError> {
    // A sender that stopped reading must not stop its lines from being written.
    let mut open = true;
    let mut failed = None;
    while let Some(a) = pending.recv().await {
        let text = match a {
            Answer::Resume(n) => format!("soc-resume {n}\n"),
            Answer::Refused(reason) => format!("soc-refused {reason}\n"),
            Answer::Durable(receipt, position) => {
                if let Err(e) = receipt.durable().await {
                    // Not durable: no acknowledgement now or after; the sender resends.
                    failed.get_or_insert(e);
                    open = false;
                    continue;
                }
                match position {
                    Some(p) => format!("soc-ack {p}\n"),
                    None => continue,
                }
            }
        };
        if open && write.write_all(text.as_bytes()).await.is_err() {
            open = false;
        }
    }
    if failed.is_none() {
        let _ = write.shutdown().await;
    }
    failed.map_or(Ok(()), Err)
}

async fn submit(
    lines: &mut Lines,
    frames: u64,
    connector: Connector,
    sink: &Sink,
    session: Option<&mut Session>,
    answers: &mpsc::Sender<Answer>,
) -> std::result::Result<(), SinkError> {
    let batch = std::mem::take(lines);
    events::received(connector, batch.len() as u64, batch.bytes);
    let mut submission = crate::sink::Submission::from(batch);
    let position = session.map(|s| {
        s.position += frames;
        submission.checkpoints.push(Checkpoint {
            name: s.checkpoint.clone(),
            position: s.position,
        });
        s.position
    });
    // Waits while the queue is full: this connection stops reading, TCP slows the sender.
    let receipt = sink.submit(submission).await?;
    answers
        .send(Answer::Durable(receipt, position))
        .await
        .map_err(|_| SinkError::Closed)
}
