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
        assert_eq!(page["total"], 5, "{b}: the total counts every page");
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

/// Five alerts that differ in every filtered field.
fn varied() -> Vec<soc_core::Alert> {
    use soc_core::Severity;
    let mut v = Vec::new();
    for i in 0..5u32 {
        let mut a = alert(&format!("10.1.0.{i}"), i);
        a.count = u64::from(10 - i);
        a.last_seen = a.first_seen + chrono::Duration::minutes(i64::from(10 * (5 - i)));
        a.host_name = Some(if i % 2 == 0 { "web-1" } else { "db-1" }.into());
        a.severity = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ][i as usize % 4];
        a.mitre = vec![if i == 3 { "T1110.001" } else { "T1046" }.into()];
        a.evidence =
            vec![serde_json::json!({"user": {"name": if i == 1 { "alice" } else { "bob" }}})];
        if i == 4 {
            a.title = "Port scan of 50% of ports_x".into();
            a.rule_id = "soc/port-scan".into();
        }
        v.push(a);
    }
    v
}

async fn ips<S, B>(app: &S, t: &str, q: &str) -> Vec<String>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(
        app,
        test::TestRequest::get()
            .insert_header(bearer(t))
            .uri(&format!("/api/alerts?{q}"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 200, "{q}");
    let page: Value = test::read_body_json(res).await;
    page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["source_ip"].as_str().expect("ip").to_string())
        .collect()
}

#[actix_web::test]
async fn filters_search_and_sort_select_what_they_say() {
    for db in TestDb::all().await {
        let b = db.backend;
        insert(&db, &varied()).await;
        let app = test::init_service(create_app(state(&db))).await;
        let t = token(&db, Role::Viewer).await;
        let ip = |i: u32| format!("10.1.0.{i}");
        for (q, want) in [
            ("host=db-1", vec![ip(3), ip(1)]),
            ("severity=critical", vec![ip(3)]),
            ("technique=T1110", vec![ip(3)]),
            ("technique=T1046", vec![ip(4), ip(2), ip(1), ip(0)]),
            ("user=alice", vec![ip(1)]),
            ("q=PORT%20SCAN", vec![ip(4)]),
            // `%` and `_` are text, not wildcards.
            ("q=50%25%20of", vec![ip(4)]),
            ("q=ports_x", vec![ip(4)]),
            ("q=p_rts", vec![]),
            ("q=10.1.0.2", vec![ip(2)]),
            ("rule_id=soc/port-scan", vec![ip(4)]),
            ("since=2026-03-01T10:41:00Z", vec![ip(1), ip(0)]),
            ("until=2026-03-01T10:01:00Z", vec![ip(1), ip(0)]),
            ("host=web-1&severity=low", vec![ip(4), ip(0)]),
            (
                "sort=count&order=desc",
                vec![ip(0), ip(1), ip(2), ip(3), ip(4)],
            ),
            (
                "sort=count&order=asc",
                vec![ip(4), ip(3), ip(2), ip(1), ip(0)],
            ),
            ("sort=last_seen", vec![ip(0), ip(1), ip(2), ip(3), ip(4)]),
            ("order=asc", vec![ip(0), ip(1), ip(2), ip(3), ip(4)]),
        ] {
            assert_eq!(ips(&app, &t, q).await, want, "{b}: {q}");
        }
        // Keyset pages under another sort still give every alert once, in order.
        let mut seen = Vec::new();
        let mut q = "sort=count&order=asc&limit=2".to_string();
        loop {
            let res = test::call_service(
                &app,
                test::TestRequest::get()
                    .insert_header(bearer(&t))
                    .uri(&format!("/api/alerts?{q}"))
                    .to_request(),
            )
            .await;
            let page: Value = test::read_body_json(res).await;
            for a in page["alerts"].as_array().expect("alerts") {
                seen.push(a["source_ip"].as_str().expect("ip").to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => q = format!("sort=count&order=asc&limit=2&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, vec![ip(4), ip(3), ip(2), ip(1), ip(0)], "{b}");
        for bad in [
            "sort=severity",
            "order=up",
            "technique=1110",
            "priority=9",
            "since=yesterday",
            "q=",
            &format!("q={}", "x".repeat(201)),
        ] {
            let res = test::call_service(
                &app,
                test::TestRequest::get()
                    .insert_header(bearer(&t))
                    .uri(&format!("/api/alerts?{bad}"))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), 400, "{b}: {bad}");
        }
    }
}

#[actix_web::test]
async fn aggregates_count_what_the_filters_select() {
    for db in TestDb::all().await {
        let b = db.backend;
        insert(&db, &varied()).await;
        let app = test::init_service(create_app(state(&db))).await;
        let t = token(&db, Role::Viewer).await;
        let get = |uri: String| {
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri(&uri)
                .to_request()
        };
        let top: Value =
            test::call_and_read_body_json(&app, get("/api/stats/top?by=host".into())).await;
        assert_eq!(
            top,
            serde_json::json!([
                {"key": "web-1", "alerts": 3, "events": 10 + 8 + 6},
                {"key": "db-1", "alerts": 2, "events": 9 + 7},
            ]),
            "{b}"
        );
        let top: Value = test::call_and_read_body_json(
            &app,
            get("/api/stats/top?by=rule_id&limit=1&severity=low".into()),
        )
        .await;
        assert_eq!(
            top[0]["key"], "soc/port-scan",
            "{b}: alert 4 is low and scans; alert 0 is low too"
        );
        let series: Value = test::call_and_read_body_json(
            &app,
            get("/api/stats/alerts-over-time?bucket=minute&since=2026-03-01T10:00:00Z&until=2026-03-01T10:04:30Z".into()),
        )
        .await;
        let rows = series["series"].as_array().expect("series");
        assert_eq!(rows.len(), 5, "{b}: {series}");
        let per: Vec<(i64, i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r["low"].as_i64().expect("n"),
                    r["medium"].as_i64().expect("n"),
                    r["high"].as_i64().expect("n"),
                    r["critical"].as_i64().expect("n"),
                )
            })
            .collect();
        assert_eq!(
            per,
            vec![
                (1, 0, 0, 0),
                (0, 1, 0, 0),
                (0, 0, 1, 0),
                (0, 0, 0, 1),
                (1, 0, 0, 0)
            ],
            "{b}"
        );
        assert_eq!(series["truncated"], false, "{b}");
        for bad in [
            "/api/stats/top",
            "/api/stats/top?by=password",
            "/api/stats/top?by=host&limit=0",
            "/api/stats/top?by=host&cursor=x",
            "/api/stats/alerts-over-time?bucket=second",
            "/api/stats/alerts-over-time?bucket=minute&since=2020-01-01T00:00:00Z",
            "/api/stats/alerts-over-time?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
            "/api/stats/alerts-over-time?colour=red",
        ] {
            let res = test::call_service(&app, get(bad.into())).await;
            assert_eq!(res.status(), 400, "{b}: {bad}");
        }
        let p: Value = test::call_and_read_body_json(&app, get("/api/stats/pipeline".into())).await;
        assert!(p["gateway"]["ws_clients"].is_u64(), "{b}: {p}");
    }
}

#[actix_web::test]
async fn a_family_selects_its_rules_alerts() {
    use soc_gateway::routes::rules::{RuleCatalog, RuleInfo};
    let db = TestDb::sqlite().await;
    insert(&db, &varied()).await;
    let mut st = state(&db);
    let rule = |id: &str, family: &str| RuleInfo {
        id: id.into(),
        family: family.into(),
        title: String::new(),
        description: String::new(),
        severity: "low".into(),
        mitre: vec![],
        references: vec![],
    };
    st.rules = std::sync::Arc::new(RuleCatalog(vec![
        rule("soc/port-scan", "network"),
        rule("soc/ssh-bruteforce", "ssh"),
    ]));
    let app = test::init_service(create_app(st)).await;
    let t = token(&db, Role::Viewer).await;
    assert_eq!(ips(&app, &t, "family=network").await, vec!["10.1.0.4"]);
    assert_eq!(ips(&app, &t, "family=ssh").await.len(), 4);
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .insert_header(bearer(&t))
            .uri("/api/alerts?family=cooking")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 400);
    let rules: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .insert_header(bearer(&t))
            .uri("/api/rules")
            .to_request(),
    )
    .await;
    assert_eq!(rules[0]["family"], "network");
}

#[actix_web::test]
async fn the_openapi_document_describes_every_route_and_swagger_ui_serves_it() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let doc: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri("/api/openapi.json")
            .to_request(),
    )
    .await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    // Not API operations: the page shell, the WebSockets, and the description itself.
    let undocumented = [
        "/",
        "/ws/alerts",
        "/ws/agent",
        "/api/openapi.json",
        "/api/docs",
        "/api/docs/{tail:.*}",
    ];
    let mut want = std::collections::BTreeSet::new();
    for r in soc_gateway::routes::table() {
        if !undocumented.contains(&r.path) {
            want.insert((r.method.as_str().to_lowercase(), r.path.to_string()));
        }
    }
    let mut have = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            have.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(
        have, want,
        "the document and the route table list the same routes"
    );
    for scheme in ["bearer", "session"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }

    let res =
        test::call_service(&app, test::TestRequest::get().uri("/api/docs").to_request()).await;
    assert_eq!(res.status(), 302);
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/api/docs/").to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = test::read_body(res).await;
    assert!(std::str::from_utf8(&body)
        .expect("utf-8")
        .contains("swagger"));
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/docs/swagger-initializer.js")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = test::read_body(res).await;
    assert!(
        std::str::from_utf8(&body)
            .expect("utf-8")
            .contains("/api/openapi.json"),
        "the UI is pointed at the document"
    );
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/docs/nope.js")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[actix_web::test]
async fn pipeline_rates_come_from_readings_on_the_hubs_clock() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let db = TestDb::sqlite().await;
    let t = token(&db, Role::Viewer).await;
    let records = Arc::new(AtomicU64::new(1_000));
    let seen = records.clone();
    let export = soc_gateway::metrics::MetricsExport::new()
        .expect("recorder")
        .with_snapshot(
            "stages",
            Box::new(
                move || serde_json::json!({"processor": {"records": seen.load(Ordering::Relaxed)}}),
            ),
        );
    let clock = soc_core::clock::Clock::fast(100);
    let mut st = state(&db);
    st.hub = Arc::new(soc_gateway::AlertHub::default().with_clock(clock));
    st.metrics = Some(Arc::new(export));
    let app = test::init_service(create_app(st)).await;
    let read = || {
        test::TestRequest::get()
            .uri("/api/stats/pipeline")
            .insert_header(bearer(&t))
            .to_request()
    };
    let first: Value = test::call_and_read_body_json(&app, read()).await;
    assert_eq!(
        first["rates"]["events_per_sec"],
        Value::Null,
        "one reading is no rate"
    );
    // Ten seconds of the clock's time, 5,000 more records: 500 a second.
    records.fetch_add(5_000, Ordering::Relaxed);
    clock.sleep(std::time::Duration::from_secs(10)).await;
    let second: Value = test::call_and_read_body_json(&app, read()).await;
    let rate = second["rates"]["events_per_sec"].as_f64().expect("rate");
    // At most 500: the real time between the readings only adds to the clock's ten seconds.
    assert!((250.0..=500.5).contains(&rate), "{rate}: {second}");
    assert_eq!(
        second["rates"]["triage_calls_per_sec"],
        Value::Null,
        "no such counter"
    );
}

#[actix_web::test]
async fn incidents_group_one_attackers_rule_hits() {
    for db in TestDb::all().await {
        let b = db.backend;
        let incident = uuid::Uuid::new_v4();
        // A scanner tripping three rules, filed under one incident; another attacker alone.
        let mut scanner: Vec<_> = [
            "soc/http-probing",
            "soc/http-sensitive-files",
            "soc/http-sqli-probing",
        ]
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let mut a = alert("203.0.113.7", i as u32);
            a.id = soc_core::Alert::incident_id(rule, "203.0.113.7", a.first_seen);
            a.rule_id = (*rule).into();
            a.mitre = vec![format!("T159{i}")];
            a.incident_id = Some(incident);
            a
        })
        .collect();
        scanner[2].severity = soc_core::Severity::Critical;
        let lone = alert("198.51.100.9", 30);
        let mut all = scanner.clone();
        all.push(lone.clone());
        insert(&db, &all).await;
        let app = test::init_service(create_app(state(&db))).await;
        let t = token(&db, Role::Viewer).await;

        let page: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri("/api/incidents")
                .to_request(),
        )
        .await;
        assert_eq!(
            page["total"], 2,
            "{b}: two attackers, two incidents: {page}"
        );
        let incidents = page["incidents"].as_array().expect("incidents");
        // The most recently active first: the lone alert is seen last.
        assert_eq!(incidents[0]["attacker"], "198.51.100.9", "{b}");
        let scan = &incidents[1];
        assert_eq!(scan["id"], incident.to_string(), "{b}");
        assert_eq!(scan["hits"].as_array().expect("hits").len(), 3, "{b}");
        assert_eq!(scan["severity"], "critical", "{b}: the highest of its hits");
        assert_eq!(
            scan["hits"][0]["rule_id"], "soc/http-sqli-probing",
            "{b}: most severe first"
        );
        assert_eq!(scan["mitre"].as_array().expect("mitre").len(), 3, "{b}");
        assert_eq!(scan["status"], "new", "{b}");

        // Pages of one, and the alerts of one incident.
        let first: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri("/api/incidents?limit=1")
                .to_request(),
        )
        .await;
        assert_eq!(first["incidents"].as_array().expect("page").len(), 1, "{b}");
        assert_eq!(first["next_offset"], 1, "{b}");
        let alerts: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri(&format!("/api/alerts?incident={incident}"))
                .to_request(),
        )
        .await;
        assert_eq!(alerts["total"], 3, "{b}");
        assert!(alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .all(|a| a["incident_id"] == incident.to_string()));
        let bad = test::call_service(
            &app,
            test::TestRequest::get()
                .insert_header(bearer(&t))
                .uri("/api/incidents?limit=0")
                .to_request(),
        )
        .await;
        assert_eq!(bad.status(), 400, "{b}");
    }
}
