//! Syslog over UDP, TCP and TLS, sent by `logger(1)` where it can send (UDP, TCP with
//! octet counting) and by a TLS client trusting a CA the test makes.

mod support;

use soc_connectors::sink::SinkConfig;
use soc_connectors::syslog::{SyslogConfig, SyslogMode, SyslogSource};
use std::net::SocketAddr;
use support::{failed_logins, logger, logger_lines, Harness, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

async fn listen(
    h: &Harness,
    mode: SyslogMode,
    tune: impl FnOnce(&mut SyslogConfig),
) -> (
    SocketAddr,
    watch::Sender<bool>,
    tokio::task::JoinHandle<soc_connectors::Result<()>>,
) {
    let mut config = SyslogConfig::new(mode, "127.0.0.1:0".parse().expect("addr"));
    tune(&mut config);
    let source = SyslogSource::bind(config).await.expect("bind");
    let addr = source.local_addr();
    let (stop, stopped) = watch::channel(false);
    let sink = h.sink(SinkConfig::default());
    (addr, stop, tokio::spawn(source.run(sink, stopped)))
}

fn peer_of(raw: &str) -> Option<std::net::IpAddr> {
    soc_core::event::split_notes(raw).1.peer
}

#[tokio::test]
async fn logger_over_udp_arrives_with_its_sender() {
    let h = Harness::new().await;
    let (addr, stop, task) = listen(&h, SyslogMode::Udp, |_| {}).await;
    let messages = failed_logins("192.0.2.11", 5);
    let port = addr.port().to_string();
    logger(
        &[
            "--udp",
            "--rfc3164",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "sshd",
        ],
        &messages,
    );
    let raw = h.wait_for(5).await;
    for (r, m) in raw.iter().zip(&messages) {
        let (line, notes) = soc_core::event::split_notes(r);
        assert!(line.starts_with("<13>"), "{line}");
        assert!(line.ends_with(&format!("sshd: {m}")), "{line}");
        assert_eq!(notes.peer, Some("127.0.0.1".parse().expect("ip")));
    }
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn logger_over_tcp_with_octet_counting_arrives_whole_and_in_order() {
    let h = Harness::new().await;
    let (addr, stop, task) = listen(&h, SyslogMode::Tcp, |_| {}).await;
    // A message with a newline inside survives octet counting as one frame.
    let mut messages = failed_logins("192.0.2.12", 6);
    let port = addr.port().to_string();
    logger(
        &[
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "sshd",
        ],
        &messages,
    );
    messages.push("two\nlines".into());
    // logger reads one message per input line, so the newline goes through another door:
    // an octet-counted frame written by hand.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let frame = "<13>1 - h app - - - two\nlines";
    s.write_all(format!("{} {frame}", frame.len()).as_bytes())
        .await
        .expect("send");
    s.shutdown().await.expect("close");
    let raw = h.wait_for(7).await;
    let lines = h.lines();
    for (line, m) in lines.iter().zip(&messages[..6]) {
        assert!(line.starts_with("<13>1 "), "{line}");
        assert!(line.ends_with(m.as_str()), "{line}");
    }
    assert_eq!(lines[6], frame);
    assert!(raw.iter().all(|r| peer_of(r).is_some()));
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn tls_senders_are_answered_once_their_lines_are_durable_and_bad_clients_are_refused() {
    let h = Harness::new().await;
    let ca = TestCa::new(h.dir.path());
    let (addr, stop, task) = listen(
        &h,
        SyslogMode::Tls {
            cert: ca.cert_path.clone(),
            key: ca.key_path.clone(),
        },
        |_| {},
    )
    .await;

    // Not TLS at all: the handshake fails, the listener goes on.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"<13>Dec  3 10:00:00 h sshd[1]: not over TLS\n")
        .await
        .expect("send");
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink).await;

    // A client that does not trust the server's CA refuses it, and sends nothing.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = TestCa::new(other_dir.path());
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    assert!(
        other.connector().connect(name.clone(), tcp).await.is_err(),
        "a server certificate from another CA is refused"
    );

    // logger's own RFC 5424 lines, octet-counted, over a client trusting the test CA.
    let lines = logger_lines("sshd", &failed_logins("192.0.2.13", 5));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = ca.connector().connect(name, tcp).await.expect("handshake");
    for l in &lines {
        tls.write_all(format!("{} {l}", l.len()).as_bytes())
            .await
            .expect("send");
    }
    tls.flush().await.expect("flush");
    // We close our side, and the server closes its own only once the lines are durable.
    tls.get_mut().0.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    let got = h.lines();
    assert_eq!(got, lines, "durable when the server closed");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn long_lines_are_cut_and_tagged_and_a_sender_gone_mid_frame_loses_only_that_frame() {
    let h = Harness::new().await;
    let (addr, stop, task) = listen(&h, SyslogMode::Tcp, |c| c.max_line_bytes = 64).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let long = format!("<13>Dec  3 10:00:00 h app: {}", "x".repeat(10_000));
    s.write_all(format!("<13>Dec  3 10:00:00 h app: first\n{long}\n").as_bytes())
        .await
        .expect("send");
    // Invalid UTF-8 is a line like any other.
    s.write_all(b"<13>Dec  3 10:00:00 h app: \xff\xfe bytes\n")
        .await
        .expect("send");
    s.write_all(b"500 <13>Dec  3 10:00:00 h app: cut short")
        .await
        .expect("send");
    drop(s);
    let raw = h.wait_for(3).await;
    let (line, notes) = soc_core::event::split_notes(&raw[1]);
    assert_eq!(line.len(), 64);
    assert_eq!(notes.truncated_bytes, Some(long.len() as u64));
    assert!(raw[2].contains("bytes"));
    let letters = h.read(soc_core::stream::topics::DEAD_LETTERS);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].contains("line_too_long"));
    // Give the partial frame time to be (wrongly) written, then check it was not.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(h.raw().len(), 3, "the partial frame is not a line");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_the_rest_served() {
    let h = Harness::new().await;
    let (addr, stop, task) = listen(&h, SyslogMode::Tcp, |c| c.max_connections = 1).await;
    let mut held = tokio::net::TcpStream::connect(addr).await.expect("connect");
    held.write_all(b"<13>Dec  3 10:00:00 h app: held\n")
        .await
        .expect("send");
    h.wait_for(1).await;
    let mut refused = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = refused
        .write_all(b"<13>Dec  3 10:00:00 h app: refused\n")
        .await;
    let mut buf = [0u8; 1];
    let n = refused.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "closed unread");
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut next = tokio::net::TcpStream::connect(addr).await.expect("connect");
    next.write_all(b"<13>Dec  3 10:00:00 h app: later\n")
        .await
        .expect("send");
    next.shutdown().await.expect("close");
    let _ = next.read(&mut buf).await;
    assert_eq!(
        h.lines(),
        vec![
            "<13>Dec  3 10:00:00 h app: held".to_string(),
            "<13>Dec  3 10:00:00 h app: later".to_string()
        ]
    );
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}

/// Read `soc-...` answer lines until one starts with `prefix`; its number.
async fn answer_of<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, prefix: &str) -> Option<u64> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if let Some(n) = line.trim_end().strip_prefix(prefix) {
            return n.trim().parse().ok();
        }
    }
}

#[tokio::test]
async fn a_session_is_told_what_is_durable_and_resumes_where_it_stood() {
    let h = Harness::new().await;
    let (addr, stop, task) = listen(&h, SyslogMode::Tcp, |_| {}).await;
    let line = |i: u64| format!("<13>Dec  3 10:00:00 h app: line {i}\n");

    let conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = conn.into_split();
    let mut read = tokio::io::BufReader::new(read);
    write
        .write_all(b"soc-session web-1\n")
        .await
        .expect("hello");
    assert_eq!(answer_of(&mut read, "soc-resume ").await, Some(0));
    for i in 0..8 {
        write.write_all(line(i).as_bytes()).await.expect("send");
    }
    let mut acked = 0;
    while acked < 8 {
        acked = answer_of(&mut read, "soc-ack ").await.expect("an ack");
    }
    // An acknowledgement means durable.
    assert_eq!(h.raw().len(), 8);

    // A second connection under the same name while the first is open is refused.
    let mut other = tokio::net::TcpStream::connect(addr).await.expect("connect");
    other
        .write_all(b"soc-session web-1\n")
        .await
        .expect("hello");
    let mut other = tokio::io::BufReader::new(other);
    let mut answer = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut other, &mut answer)
        .await
        .expect("answer");
    assert_eq!(answer, "soc-refused busy\n");
    drop(write);
    drop(read);

    // Reconnected (say the acks were lost): the server says where to go on from, and the
    // sender sends from there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut read, mut write, resume) = loop {
        let conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (read, mut write) = conn.into_split();
        let mut read = tokio::io::BufReader::new(read);
        write
            .write_all(b"soc-session web-1\n")
            .await
            .expect("hello");
        if let Some(n) = answer_of(&mut read, "soc-resume ").await {
            break (read, write, n);
        }
        // The first connection has not finished closing: busy, try again.
        assert!(std::time::Instant::now() < deadline, "never resumed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(resume, 8);
    for i in resume..12 {
        write.write_all(line(i).as_bytes()).await.expect("send");
    }
    write.shutdown().await.expect("close");
    let mut last = 0;
    while let Some(n) = answer_of(&mut read, "soc-ack ").await {
        last = n;
    }
    assert_eq!(last, 12);
    let expected: Vec<String> = (0..12).map(|i| line(i).trim_end().to_string()).collect();
    assert_eq!(h.lines(), expected, "every line once, in order");

    // A name that cannot be a checkpoint is refused.
    let mut bad = tokio::net::TcpStream::connect(addr).await.expect("connect");
    bad.write_all(b"soc-session bad name/..\n")
        .await
        .expect("hello");
    let mut answer = String::new();
    bad.read_to_string(&mut answer).await.expect("answer");
    assert_eq!(answer, "soc-refused bad-sender\n");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("clean stop");
}
