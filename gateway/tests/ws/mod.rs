use crate::common::{alert, token};
use futures_util::StreamExt;
use soc_gateway::auth::Role;
use soc_gateway::{AlertHub, GatewayState, HostPolicy};
use soc_migrations::testing::TestDb;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The gateway on a free port: the WebSocket URL, the server, its database and a viewer's
/// token.
async fn serve(hub: Arc<AlertHub>) -> (String, actix_web::dev::ServerHandle, TestDb, String) {
    let db = TestDb::sqlite().await;
    let token = token(&db, Role::Viewer).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = soc_gateway::run(
        GatewayState {
            db: db.conn.clone(),
            response: crate::common::response(&db, hub.clone()),
            hub,
            hosts: Arc::new(HostPolicy::default()),
            stages: Arc::default(),
            auth: Arc::default(),
            metrics: None,
            rules: Arc::default(),
        },
        listener,
        None,
    )
    .expect("server");
    let handle = server.handle();
    tokio::spawn(server);
    (format!("ws://{addr}/ws/alerts"), handle, db, token)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the alert stream with a bearer token.
async fn connect(url: &str, token: &str) -> Ws {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

async fn wait_for_sessions(hub: &AlertHub, n: u64) {
    for _ in 0..200 {
        if hub
            .sessions_opened
            .load(std::sync::atomic::Ordering::Relaxed)
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("websocket session did not open");
}

#[actix_web::test]
async fn published_alerts_reach_connected_clients() {
    let hub = Arc::new(AlertHub::default());
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let mut ws = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    let a = alert("192.0.2.7", 3);
    hub.publish(&serde_json::to_vec(&a).expect("json"));
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    let v: serde_json::Value = serde_json::from_str(msg.to_text().expect("text")).expect("json");
    assert_eq!(v["type"], "alert");
    assert_eq!(v["alert"]["id"], a.id.to_string());
    assert_eq!(v["alert"]["source_ip"], "192.0.2.7");
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_client_that_falls_behind_is_disconnected() {
    let hub = Arc::new(AlertHub::new(4));
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let mut ws = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    // The session forwards as fast as the socket takes frames, so flood far past the queue
    // while the client reads nothing.
    let payload = serde_json::to_vec(&alert("192.0.2.8", 1)).expect("json");
    for _ in 0..200_000 {
        hub.publish(&payload);
    }
    let mut closed = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                closed = frame;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    let frame = closed.expect("the server closed the connection");
    assert_eq!(u16::from(frame.code), 1008, "policy violation: too slow");
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_client_that_answers_no_ping_is_dropped_and_one_that_does_stays() {
    // Heartbeats every 75 ms and a 225 ms timeout of real time: the 15 s and 45 s of the
    // hub's clock, two hundred times faster.
    let clock = soc_core::clock::Clock::fast(200);
    let hub = Arc::new(AlertHub::default().with_clock(clock));
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let closed = |hub: &AlertHub| {
        hub.sessions_closed
            .load(std::sync::atomic::Ordering::Relaxed)
    };

    // Reading answers pings (tungstenite replies on the next read).
    let mut live = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    let reader = tokio::spawn(async move {
        let mut pings = 0u32;
        while let Some(Ok(m)) = live.next().await {
            if m.is_ping() {
                pings += 1;
            }
        }
        pings
    });

    // Never read: its pings go unanswered.
    let _silent = connect(&url, &token).await;
    wait_for_sessions(&hub, 2).await;

    // Four client timeouts of the hub's clock.
    clock.sleep(soc_gateway::ws::CLIENT_TIMEOUT * 4).await;
    assert_eq!(closed(&hub), 1, "only the silent client is dropped");
    handle.stop(true).await;
    let pings = reader.await.expect("reader");
    assert!(pings >= 8, "the live client was pinged throughout: {pings}");
}

/// The status line's code of a raw HTTP/1.1 request with these headers.
async fn status_of(addr: &str, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let close = if headers.contains("Connection:") {
        ""
    } else {
        "Connection: close\r\n"
    };
    let req = format!("GET {path} HTTP/1.1\r\n{headers}{close}\r\n");
    sock.write_all(req.as_bytes()).await.expect("write");
    // Only the status line: an accepted upgrade keeps the connection open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
            .await
            .expect("in time")
            .expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"))
}

#[actix_web::test]
async fn a_foreign_host_or_origin_is_refused() {
    let hub = Arc::new(AlertHub::default());
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws/alerts")
        .to_string();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    // DNS rebinding: a name the attacker controls, resolving to the gateway.
    assert_eq!(
        status_of(&addr, "/api/health", "Host: rebind.evil.example:8080\r\n").await,
        421
    );
    assert_eq!(
        status_of(
            &addr,
            "/ws/alerts",
            &format!("Host: rebind.evil.example\r\n{upgrade}")
        )
        .await,
        421
    );
    assert_eq!(
        status_of(&addr, "/api/health", &format!("Host: {addr}\r\n")).await,
        200
    );
    assert_eq!(
        status_of(&addr, "/api/health", "Host: localhost\r\n").await,
        200
    );

    // A page elsewhere opening the WebSocket from the analyst's browser.
    let auth = format!("Authorization: Bearer {token}\r\n");
    let with_origin = |origin: &str| format!("Host: {addr}\r\nOrigin: {origin}\r\n{auth}{upgrade}");
    assert_eq!(
        status_of(&addr, "/ws/alerts", &with_origin("https://evil.example")).await,
        403
    );
    assert_eq!(
        status_of(&addr, "/ws/alerts", &with_origin("null")).await,
        403
    );
    assert_eq!(
        status_of(&addr, "/ws/alerts", &with_origin(&format!("http://{addr}"))).await,
        101,
        "the dashboard's own origin"
    );
    assert_eq!(
        status_of(
            &addr,
            "/ws/alerts",
            &format!("Host: {addr}\r\n{auth}{upgrade}")
        )
        .await,
        101,
        "no Origin: not a browser"
    );
    assert_eq!(
        status_of(&addr, "/ws/alerts", &format!("Host: {addr}\r\n{upgrade}")).await,
        401,
        "no credential"
    );
    assert_eq!(
        hub.sessions_opened
            .load(std::sync::atomic::Ordering::Relaxed),
        2,
        "no refused handshake opened a session"
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_client_that_stops_reading_at_the_tcp_level_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A queue no flood below can overrun: only the send timeout can drop the client.
    // Ten seconds of the hub's clock are 50 ms here.
    let hub = Arc::new(AlertHub::new(1 << 20).with_clock(soc_core::clock::Clock::fast(200)));
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws/alerts")
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sock.write_all(
        format!("GET /ws/alerts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").as_bytes(),
    )
    .await
    .expect("handshake");
    let mut head = [0u8; 12];
    sock.read_exact(&mut head).await.expect("response");
    assert_eq!(&head[9..12], b"101");
    wait_for_sessions(&hub, 1).await;

    // From here on the socket is never read: 40 MB of alerts fill every buffer on the way.
    let mut big = alert("192.0.2.9", 1);
    big.title = "x".repeat(8 * 1024);
    let payload = serde_json::to_vec(&big).expect("json");
    let dropped = || {
        hub.sessions_dropped_stalled
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let started = std::time::Instant::now();
    for _ in 0..5_000 {
        hub.publish(&payload);
        if dropped() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    while dropped() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a client that reads nothing is still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The session counts itself closed right after it gives up.
    while hub
        .sessions_closed
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sock);
    handle.stop(true).await;
}

#[actix_web::test]
async fn an_open_socket_closes_when_its_token_is_revoked() {
    // Heartbeats (15 s of the hub's clock) every 75 ms here.
    let hub = Arc::new(AlertHub::default().with_clock(soc_core::clock::Clock::fast(200)));
    let (url, handle, db, token) = serve(hub.clone()).await;
    let mut ws = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    let accounts = soc_gateway::auth::Accounts::new(db.conn.clone());
    let listed = accounts.tokens(Some("viewer-user")).await.expect("tokens");
    let started = std::time::Instant::now();
    accounts
        .revoke_token(&listed[0].id, None, chrono::Utc::now())
        .await
        .expect("revoke");
    let close = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closed in time")
            .expect("a close frame before the end")
            .expect("message");
        if let Message::Close(frame) = msg {
            break frame.expect("with a reason");
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("session ended"), "{}", close.reason);
    assert!(started.elapsed() < Duration::from_secs(5));
    handle.stop(true).await;
}

/// The next text message as JSON, within 5 s.
async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

/// Nothing more arrives within a short wait.
async fn assert_quiet(ws: &mut Ws) {
    if let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        panic!("unexpected message {t}");
    }
}

#[actix_web::test]
async fn a_client_that_reconnects_with_its_cursor_gets_exactly_what_it_missed() {
    let hub = Arc::new(AlertHub::default());
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let publish = |ip: &str, minute: u32| {
        hub.publish(&serde_json::to_vec(&alert(ip, minute)).expect("json"));
    };
    let mut ws = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    publish("192.0.2.1", 1);
    publish("192.0.2.2", 2);
    let _ = next_json(&mut ws).await;
    let seen = next_json(&mut ws).await;
    assert_eq!(seen["alert"]["source_ip"], "192.0.2.2");
    let cursor = seen["cursor"].as_str().expect("cursor").to_string();
    drop(ws);

    // Raised while it was away: three alerts and a workflow change.
    publish("192.0.2.3", 3);
    publish("192.0.2.4", 4);
    hub.publish_message(&serde_json::json!({"type": "workflow", "alert_id": "x"}));
    publish("192.0.2.5", 5);

    let mut ws = connect(&format!("{url}?resume={cursor}"), &token).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = next_json(&mut ws).await;
        got.push(
            m["alert"]["source_ip"]
                .as_str()
                .unwrap_or(m["type"].as_str().expect("type"))
                .to_string(),
        );
    }
    assert_eq!(got, ["192.0.2.3", "192.0.2.4", "workflow", "192.0.2.5"]);
    // Then live, with no duplicate of the backlog.
    publish("192.0.2.6", 6);
    let live = next_json(&mut ws).await;
    assert_eq!(live["alert"]["source_ip"], "192.0.2.6");
    assert_quiet(&mut ws).await;

    // Resuming at the newest cursor sends nothing old.
    let newest = live["cursor"].as_str().expect("cursor").to_string();
    let mut ws2 = connect(&format!("{url}?resume={newest}"), &token).await;
    assert_quiet(&mut ws2).await;

    // Or by the last alert seen, as its id and revision: the same backlog.
    let mut ws4 = connect(
        &format!("{url}?last_id={}&last_revision=5", alert("192.0.2.2", 2).id),
        &token,
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = next_json(&mut ws4).await;
        got.push(
            m["alert"]["source_ip"]
                .as_str()
                .unwrap_or(m["type"].as_str().expect("type"))
                .to_string(),
        );
    }
    assert_eq!(
        got,
        [
            "192.0.2.3",
            "192.0.2.4",
            "workflow",
            "192.0.2.5",
            "192.0.2.6"
        ]
    );
    assert_quiet(&mut ws4).await;
    // An alert revision it never sent, or half of the pair: resync, or refused.
    let mut ws5 = connect(
        &format!(
            "{url}?last_id={}&last_revision=99",
            alert("192.0.2.2", 2).id
        ),
        &token,
    )
    .await;
    assert_eq!(next_json(&mut ws5).await["type"], "resync");
    let mut half = format!("{url}?last_id=x")
        .into_client_request()
        .expect("request");
    half.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(half).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 400, "an id without its revision")
        }
        other => panic!("expected 400, got {:?}", other.map(|(_, r)| r.status())),
    }

    // A cursor of another run of the gateway cannot be honoured: reload.
    let mut ws3 = connect(&format!("{url}?resume=0123456789ab-3"), &token).await;
    let m = next_json(&mut ws3).await;
    assert_eq!(m["type"], "resync");
    assert_eq!(
        hub.sessions_resumed
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_cursor_older_than_what_the_gateway_keeps_gets_a_resync() {
    // Room for about two messages.
    let hub = Arc::new(AlertHub::default().with_resume_bytes(1200));
    let (url, handle, _db, token) = serve(hub.clone()).await;
    let mut ws = connect(&url, &token).await;
    wait_for_sessions(&hub, 1).await;
    hub.publish(&serde_json::to_vec(&alert("192.0.2.1", 1)).expect("json"));
    let cursor = next_json(&mut ws).await["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    drop(ws);
    for i in 2..8 {
        hub.publish(&serde_json::to_vec(&alert(&format!("192.0.2.{i}"), i)).expect("json"));
    }
    let mut ws = connect(&format!("{url}?resume={cursor}"), &token).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "resync", "{m}");
    assert!(m["reason"]
        .as_str()
        .is_some_and(|r| r.contains("missed more")));
    // Then the live stream.
    hub.publish(&serde_json::to_vec(&alert("192.0.2.9", 9)).expect("json"));
    assert_eq!(next_json(&mut ws).await["alert"]["source_ip"], "192.0.2.9");
    handle.stop(true).await;
}

#[actix_web::test]
async fn metrics_alone_need_a_viewer_token_too() {
    let db = TestDb::sqlite().await;
    let token = token(&db, Role::Viewer).await;
    let export = soc_gateway::metrics::MetricsExport::new()
        .expect("recorder")
        .with_sampler(Box::new(|| {
            metrics::counter!("soc_test_alone_total").absolute(7);
        }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = soc_gateway::metrics::serve_alone(listener, db.conn.clone(), Arc::new(export))
        .expect("server");
    let handle = server.handle();
    tokio::spawn(server);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let anonymous = client.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("soc_not-a-token")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");
    assert!(text.contains("soc_test_alone_total 7"), "{text}");
    let other = client
        .get(format!("http://{addr}/api/alerts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 404, "nothing but /metrics");
    handle.stop(true).await;
}
