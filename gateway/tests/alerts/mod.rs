use crate::common::{alert, bearer, insert, state, token};
use actix_web::test;
use serde_json::Value;
use soc_gateway::auth::Role;
use soc_gateway::create_app;
use soc_migrations::testing::TestDb;

#[actix_web::test]
async fn alerts_are_listed_newest_first_with_keyset_pages() {
    for db in TestDb::all().await {
        let b = db.backend;
        let alerts: Vec<_> = (0..5).map(|i| alert(&format!("10.0.0.{i}"), i)).collect();
        insert(&db, &alerts).await;
        let app = test::init_service(create_app(state(&db))).await;
        let t = token(&db, Role::Viewer).await;

        let page: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri("/api/alerts?limit=2")
                .to_request(),
        )
        .await;
        let ips: Vec<&str> = page["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["source_ip"].as_str().expect("ip"))
            .collect();
        assert_eq!(ips, vec!["10.0.0.4", "10.0.0.3"], "{b}");
        let cursor = page["next_cursor"].as_str().expect("more pages");

        let mut seen = ips.len();
        let mut cursor = cursor.to_string();
        loop {
            let page: Value = test::call_and_read_body_json(
                &app,
                test::TestRequest::get()
                    .insert_header(bearer(&t))
                    .uri(&format!("/api/alerts?limit=2&cursor={cursor}"))
                    .to_request(),
            )
            .await;
            seen += page["alerts"].as_array().expect("alerts").len();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(seen, 5, "{b}: every alert exactly once across pages");

        let one: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri(&format!("/api/alerts/{}", alerts[1].id))
                .to_request(),
        )
        .await;
        assert_eq!(one["source_ip"], "10.0.0.1", "{b}");
        assert_eq!(one["mitre"][0], "T1110", "{b}");
    }
}

#[actix_web::test]
async fn bad_requests_are_problem_json() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let t = token(&db, Role::Viewer).await;
    for (uri, status, code) in [
        ("/api/alerts?limit=0", 400, "bad_request"),
        ("/api/alerts?limit=abc", 400, "bad_request"),
        ("/api/alerts?cursor=nope", 400, "bad_request"),
        ("/api/alerts?severity=urgent", 400, "bad_request"),
        ("/api/alerts/not-a-uuid", 400, "bad_request"),
        (
            "/api/alerts/6b2f518e-0c4d-4a61-9d3e-571a902bc411",
            404,
            "not_found",
        ),
    ] {
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(uri)
                .insert_header(bearer(&t))
                .to_request(),
        )
        .await;
        assert_eq!(res.status().as_u16(), status, "{uri}");
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(ct, "application/problem+json", "{uri}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["code"], code, "{uri}");
        assert_eq!(body["status"], status, "{uri}");
        assert!(
            body["type"].as_str().is_some_and(|t| t.ends_with(code)),
            "{uri}"
        );
    }
}

#[actix_web::test]
async fn health_and_dashboard() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let health: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get().uri("/api/health").to_request(),
    )
    .await;
    assert_eq!(health["status"], "ok");
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let body = test::read_body(res).await;
    let html = std::str::from_utf8(&body).expect("utf-8");
    assert!(html.contains("/ws/alerts") && html.contains("/api/alerts"));
}

#[actix_web::test]
async fn metrics_render_for_a_viewer_when_enabled() {
    let db = TestDb::sqlite().await;
    let t = token(&db, Role::Viewer).await;
    let get = || {
        test::TestRequest::get()
            .uri("/metrics")
            .insert_header(bearer(&t))
            .to_request()
    };
    let off = test::init_service(create_app(state(&db))).await;
    let res = test::call_service(&off, get()).await;
    assert_eq!(res.status(), 404, "no export, no metrics");

    let mut st = state(&db);
    st.hub
        .sessions_opened
        .store(3, std::sync::atomic::Ordering::Relaxed);
    st.hub
        .sessions_closed
        .store(1, std::sync::atomic::Ordering::Relaxed);
    st.metrics = soc_gateway::metrics::MetricsExport::new().map(std::sync::Arc::new);
    let on = test::init_service(create_app(st)).await;
    let res = test::call_service(&on, get()).await;
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")));
    let body = test::read_body(res).await;
    let text = std::str::from_utf8(&body).expect("utf-8");
    assert!(text.contains("soc_gateway_ws_clients 2"), "{text}");
}
