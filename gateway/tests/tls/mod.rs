//! The gateway over TLS with a certificate from PEM files.

use crate::common::state;
use soc_migrations::testing::TestDb;

#[actix_web::test]
async fn the_gateway_serves_tls_from_pem_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");

    let tls = soc_gateway::tls::server_config(&cert_path, &key_path).expect("tls config");
    let db = TestDb::sqlite().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = soc_gateway::run(state(&db), listener, Some(tls)).expect("server");
    let handle = server.handle();
    tokio::spawn(server);

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("root"),
        )
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .expect("client");
    let res = client
        .get(format!("https://localhost:{port}/api/health/live"))
        .send()
        .await
        .expect("https");
    assert_eq!(res.status(), 200);
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/api/health/live"))
            .await
            .is_err(),
        "plain HTTP is not served on the TLS port"
    );

    // A key that is not PEM, or a missing file, is a clear error.
    std::fs::write(&key_path, "not a key").expect("write");
    let err = soc_gateway::tls::server_config(&cert_path, &key_path).expect_err("bad key");
    assert!(err.to_string().contains("key.pem"), "{err}");
    let err = soc_gateway::tls::server_config(&dir.path().join("missing.pem"), &key_path)
        .expect_err("missing");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    handle.stop(true).await;
}
