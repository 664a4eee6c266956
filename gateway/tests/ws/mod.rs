use crate::common::alert;
use futures_util::StreamExt;
use soc_gateway::{AlertHub, GatewayState};
use soc_migrations::testing::TestDb;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn serve(hub: Arc<AlertHub>) -> (String, actix_web::dev::ServerHandle, TestDb) {
    let db = TestDb::sqlite().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = soc_gateway::run(
        GatewayState {
            db: db.conn.clone(),
            hub,
        },
        listener,
    )
    .expect("server");
    let handle = server.handle();
    tokio::spawn(server);
    (format!("ws://{addr}/ws/alerts"), handle, db)
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
    let (url, handle, _db) = serve(hub.clone()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
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
    let (url, handle, _db) = serve(hub.clone()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
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
