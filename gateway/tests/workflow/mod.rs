//! Working an alert: status, assignee, resolution, notes, history, and the live message.

use crate::common::{alert, bearer, insert, state, token};
use actix_web::test;
use serde_json::{json, Value};
use soc_gateway::auth::Role;
use soc_gateway::create_app;
use soc_migrations::testing::TestDb;

#[actix_web::test]
async fn an_analyst_works_an_alert_to_resolution_and_the_history_says_who_did_what() {
    for db in TestDb::all().await {
        let b = db.backend;
        let alerts = vec![alert("10.0.0.1", 1), alert("10.0.0.2", 2)];
        insert(&db, &alerts).await;
        let st = state(&db);
        let mut live = st.hub.subscribe();
        let app = test::init_service(create_app(st)).await;
        let analyst = token(&db, Role::Analyst).await;
        let viewer = token(&db, Role::Viewer).await;
        let id = alerts[0].id.to_string();
        let uri = format!("/api/alerts/{id}");

        let patch = |t: &str, body: Value| {
            test::TestRequest::patch()
                .uri(&uri)
                .insert_header(bearer(t))
                .set_json(body)
                .to_request()
        };

        // A viewer reads but does not change.
        let r = test::call_service(&app, patch(&viewer, json!({"status": "acknowledged"}))).await;
        assert_eq!(r.status(), 403, "{b}");

        // New alerts start as new and unassigned.
        let one: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri(&uri)
                .insert_header(bearer(&viewer))
                .to_request(),
        )
        .await;
        assert_eq!(one["workflow"]["status"], "new", "{b}");
        assert_eq!(one["workflow"]["assignee"], Value::Null, "{b}");
        assert_eq!(
            one["source_ip"], "10.0.0.1",
            "{b}: the alert itself is still there"
        );

        // Take it.
        let w: Value = test::call_and_read_body_json(
            &app,
            patch(
                &analyst,
                json!({"status": "investigating", "assignee": "analyst-user"}),
            ),
        )
        .await;
        assert_eq!(w["status"], "investigating", "{b}");
        assert_eq!(w["assignee"], "analyst-user", "{b}");
        let msg: Value =
            serde_json::from_str(&live.recv().await.expect("live message").text).expect("json");
        assert_eq!(msg["type"], "workflow", "{b}");
        assert!(
            msg["cursor"].is_string(),
            "{b}: workflow changes resume too"
        );
        assert_eq!(msg["alert_id"], id.as_str(), "{b}");
        assert_eq!(msg["workflow"]["status"], "investigating", "{b}");
        assert_eq!(msg["events"].as_array().map(Vec::len), Some(2), "{b}");

        // Only someone who can work alerts can be assigned one.
        let r = test::call_service(&app, patch(&analyst, json!({"assignee": "viewer-user"}))).await;
        assert_eq!(r.status(), 400, "{b}");
        let r = test::call_service(&app, patch(&analyst, json!({"assignee": "nobody"}))).await;
        assert_eq!(r.status(), 400, "{b}");

        // Resolving needs a resolution and a reason.
        for body in [
            json!({"status": "resolved"}),
            json!({"status": "resolved", "resolution": "benign"}),
            json!({"status": "resolved", "resolution": "benign", "reason": "   "}),
            json!({"status": "resolved", "resolution": "maybe", "reason": "x"}),
            json!({"resolution": "benign", "reason": "not resolving"}),
            json!({"status": "closed"}),
            json!({"status": "resolved", "colour": "red"}),
        ] {
            let r = test::call_service(&app, patch(&analyst, body.clone())).await;
            assert_eq!(r.status(), 400, "{b}: {body}");
        }
        let w: Value = test::call_and_read_body_json(
            &app,
            patch(
                &analyst,
                json!({"status": "resolved", "resolution": "false_positive",
                       "reason": "our own vulnerability scanner"}),
            ),
        )
        .await;
        assert_eq!(w["status"], "resolved", "{b}");
        assert_eq!(w["resolution"], "false_positive", "{b}");
        assert_eq!(
            w["resolution_reason"], "our own vulnerability scanner",
            "{b}"
        );

        // Filters: by status, by assignee, unassigned.
        let ids = |q: &str| {
            let req = test::TestRequest::get()
                .uri(&format!("/api/alerts?{q}"))
                .insert_header(bearer(&viewer))
                .to_request();
            let app = &app;
            async move {
                let page: Value = test::call_and_read_body_json(app, req).await;
                page["alerts"]
                    .as_array()
                    .expect("alerts")
                    .iter()
                    .map(|a| a["source_ip"].as_str().expect("ip").to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(ids("status=resolved").await, vec!["10.0.0.1"], "{b}");
        assert_eq!(ids("status=new").await, vec!["10.0.0.2"], "{b}");
        assert_eq!(ids("assignee=analyst-user").await, vec!["10.0.0.1"], "{b}");
        assert_eq!(ids("assignee=none").await, vec!["10.0.0.2"], "{b}");

        // A note, then reopening: the resolution goes, the history keeps it.
        let r = test::call_service(
            &app,
            test::TestRequest::post()
                .uri(&format!("{uri}/notes"))
                .insert_header(bearer(&analyst))
                .set_json(json!({"text": "checked with the scanner's owner"}))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 201, "{b}");
        for (t, text, status) in [
            (&viewer, "a viewer's note".to_string(), 403),
            (&analyst, String::new(), 400),
            (&analyst, "x".repeat(4001), 400),
        ] {
            let r = test::call_service(
                &app,
                test::TestRequest::post()
                    .uri(&format!("{uri}/notes"))
                    .insert_header(bearer(t))
                    .set_json(json!({ "text": text }))
                    .to_request(),
            )
            .await;
            assert_eq!(r.status(), status, "{b}: note of {} chars", text.len());
        }
        let w: Value = test::call_and_read_body_json(
            &app,
            patch(
                &analyst,
                json!({"status": "acknowledged", "assignee": null}),
            ),
        )
        .await;
        assert_eq!(w["status"], "acknowledged", "{b}");
        assert_eq!(w["resolution"], Value::Null, "{b}");
        assert_eq!(w["assignee"], Value::Null, "{b}");

        let history: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri(&format!("{uri}/history"))
                .insert_header(bearer(&viewer))
                .to_request(),
        )
        .await;
        let kinds: Vec<(String, String, String)> = history
            .as_array()
            .expect("history")
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().expect("kind").to_string(),
                    e["actor"].as_str().expect("actor").to_string(),
                    e["to_value"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = [
            ("status", "investigating"),
            ("assignee", "analyst-user"),
            ("status", "resolved"),
            ("resolution", "false_positive"),
            ("note", "-"),
            ("status", "acknowledged"),
            ("assignee", "-"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), "analyst-user".to_string(), v.to_string()))
        .collect();
        assert_eq!(kinds, want, "{b}");
        assert_eq!(
            history[3]["text"], "our own vulnerability scanner",
            "{b}: the reason stays in the history"
        );

        // The other alert's history is its own; unknown alerts are 404.
        let other: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri(&format!("/api/alerts/{}/history", alerts[1].id))
                .insert_header(bearer(&viewer))
                .to_request(),
        )
        .await;
        assert_eq!(other, json!([]), "{b}");
        let r = test::call_service(
            &app,
            test::TestRequest::patch()
                .uri("/api/alerts/6b2f518e-0c4d-4a61-9d3e-571a902bc411")
                .insert_header(bearer(&analyst))
                .set_json(json!({"status": "new"}))
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 404, "{b}");
    }
}

#[actix_web::test]
async fn revisions_are_served_oldest_first() {
    use sea_orm::{EntityTrait, IntoActiveModel};
    use soc_core::db::alert_revision;
    let db = TestDb::sqlite().await;
    let a = alert("10.0.0.9", 1);
    insert(&db, std::slice::from_ref(&a)).await;
    for (rev, sev) in [(8, "medium"), (1, "medium"), (16, "high")] {
        alert_revision::Entity::insert(
            alert_revision::Model {
                alert_id: a.id.to_string(),
                revision: rev,
                count: rev,
                severity: sev.into(),
                last_seen: a.last_seen,
                recorded_at: a.last_seen,
            }
            .into_active_model(),
        )
        .exec_without_returning(&db.conn)
        .await
        .expect("insert");
    }
    let app = test::init_service(create_app(state(&db))).await;
    let viewer = token(&db, Role::Viewer).await;
    let revs: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get()
            .uri(&format!("/api/alerts/{}/revisions", a.id))
            .insert_header(bearer(&viewer))
            .to_request(),
    )
    .await;
    let got: Vec<(i64, &str)> = revs
        .as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().expect("rev"),
                r["severity"].as_str().expect("sev"),
            )
        })
        .collect();
    assert_eq!(got, vec![(1, "medium"), (8, "medium"), (16, "high")]);
    let missing = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/alerts/6b2f518e-0c4d-4a61-9d3e-571a902bc411/revisions")
            .insert_header(bearer(&viewer))
            .to_request(),
    )
    .await;
    assert_eq!(missing.status(), 404);
}
