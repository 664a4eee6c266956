//! Suppressions through the API: who may make them, what is refused, revoking.

use crate::common::{alert, bearer, insert, state, token};
use actix_web::test;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use soc_gateway::auth::Role;
use soc_gateway::create_app;
use soc_migrations::testing::TestDb;

#[actix_web::test]
async fn analysts_mute_a_rule_for_a_source_and_revoke_it() {
    for db in TestDb::all().await {
        let b = db.backend;
        let a = alert("203.0.113.9", 1);
        insert(&db, std::slice::from_ref(&a)).await;
        let app = test::init_service(create_app(state(&db))).await;
        let analyst = token(&db, Role::Analyst).await;
        let viewer = token(&db, Role::Viewer).await;
        let until = (Utc::now() + Duration::hours(8)).to_rfc3339();
        let good = json!({
            "rule_id": "soc/ssh-bruteforce", "field": "source.ip", "value": "203.0.113.9",
            "until": until, "reason": "authorised pen test, ticket 4411",
            "alert_id": a.id.to_string(),
        });
        let post = |t: &str, body: &Value| {
            test::TestRequest::post()
                .uri("/api/suppressions")
                .insert_header(bearer(t))
                .set_json(body)
                .to_request()
        };

        let r = test::call_service(&app, post(&viewer, &good)).await;
        assert_eq!(r.status(), 403, "{b}: a viewer cannot mute anything");

        let with = |k: &str, v: Value| {
            let mut x = good.clone();
            x[k] = v;
            x
        };
        for (body, status) in [
            (with("value", json!("not-an-ip")), 400),
            (with("value", json!("")), 400),
            (with("field", json!("process.name")), 400),
            (
                with(
                    "until",
                    json!((Utc::now() - Duration::minutes(1)).to_rfc3339()),
                ),
                400,
            ),
            (
                with(
                    "until",
                    json!((Utc::now() + Duration::days(400)).to_rfc3339()),
                ),
                400,
            ),
            (with("until", json!("tomorrow")), 400),
            (with("reason", json!("  ")), 400),
            (with("rule_id", json!("two words")), 400),
            (
                with("alert_id", json!("6b2f518e-0c4d-4a61-9d3e-571a902bc411")),
                404,
            ),
            (with("extra", json!(1)), 400),
        ] {
            let r = test::call_service(&app, post(&analyst, &body)).await;
            assert_eq!(r.status(), status, "{b}: {body}");
        }

        let made: Value = test::call_and_read_body_json(&app, post(&analyst, &good)).await;
        assert_eq!(made["active"], true, "{b}");
        assert_eq!(made["created_by"], "analyst-user", "{b}");
        assert_eq!(made["hidden"], 0, "{b}");
        let id = made["id"].as_str().expect("id").to_string();

        let list = |q: &'static str| {
            let req = test::TestRequest::get()
                .uri(&format!("/api/suppressions{q}"))
                .insert_header(bearer(&viewer))
                .to_request();
            let app = &app;
            async move {
                let v: Value = test::call_and_read_body_json(app, req).await;
                v.as_array().expect("list").clone()
            }
        };
        assert_eq!(list("").await.len(), 1, "{b}");

        // The alert it was made from records it.
        let history: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri(&format!("/api/alerts/{}/history", a.id))
                .insert_header(bearer(&viewer))
                .to_request(),
        )
        .await;
        assert_eq!(history[0]["kind"], "suppressed", "{b}");
        assert_eq!(
            history[0]["text"], "authorised pen test, ticket 4411",
            "{b}"
        );

        let del = |t: &str, id: &str| {
            test::TestRequest::delete()
                .uri(&format!("/api/suppressions/{id}"))
                .insert_header(bearer(t))
                .to_request()
        };
        assert_eq!(
            test::call_service(&app, del(&viewer, &id)).await.status(),
            403,
            "{b}"
        );
        let revoked: Value = test::call_and_read_body_json(&app, del(&analyst, &id)).await;
        assert_eq!(revoked["active"], false, "{b}");
        assert_eq!(revoked["revoked_by"], "analyst-user", "{b}");
        assert_eq!(
            test::call_service(&app, del(&analyst, &id)).await.status(),
            409,
            "{b}"
        );
        assert_eq!(
            test::call_service(&app, del(&analyst, "nope"))
                .await
                .status(),
            400,
            "{b}"
        );
        assert!(list("").await.is_empty(), "{b}: revoked is not active");
        let all = list("?state=all").await;
        assert_eq!(all.len(), 1, "{b}: kept as the record of what it hid");
        assert_eq!(all[0]["active"], false, "{b}");
    }
}
