//! Sign-in, sessions, CSRF, tokens and the authorization matrix of every route.

use crate::common::{bearer, state, token, PASSWORD};
use actix_web::cookie::Cookie;
use actix_web::http::Method;
use actix_web::test;
use serde_json::{json, Value};
use soc_gateway::auth::{Access, Accounts, Role};
use soc_gateway::create_app;
use soc_migrations::testing::TestDb;

/// What each route must demand. Every route of the gateway has to be listed here: a route
/// added without deciding who may call it fails `every_route_has_the_expected_rule`.
fn expected(method: &Method, path: &str) -> Option<Access> {
    use Access::{Account, Agent, Public, Role as R};
    use Role::{Admin, Analyst, Viewer};
    Some(match (method.as_str(), path) {
        ("GET", "/") => Public,
        ("GET", "/api/health") => Public,
        ("GET", "/api/openapi.json") => Public,
        ("GET", "/api/docs") => Public,
        ("GET", "/api/docs/{tail:.*}") => Public,
        ("GET", "/api/health/live") => Public,
        ("POST", "/api/auth/signin") => Public,
        ("POST", "/api/auth/signout") => Account,
        ("POST", "/api/auth/password") => Account,
        ("GET", "/api/session") => Account,
        ("GET", "/api/alerts") => R(Viewer),
        ("GET", "/api/incidents") => R(Viewer),
        ("GET", "/api/alerts/{id}") => R(Viewer),
        ("PATCH", "/api/alerts/{id}") => R(Analyst),
        ("GET", "/api/alerts/{id}/history") => R(Viewer),
        ("GET", "/api/alerts/{id}/revisions") => R(Viewer),
        ("POST", "/api/alerts/{id}/notes") => R(Analyst),
        ("GET", "/api/suppressions") => R(Viewer),
        ("POST", "/api/suppressions") => R(Analyst),
        ("DELETE", "/api/suppressions/{id}") => R(Analyst),
        ("GET", "/metrics") => R(Viewer),
        ("GET", "/api/rules") => R(Viewer),
        ("GET", "/api/stats/alerts-over-time") => R(Viewer),
        ("GET", "/api/stats/top") => R(Viewer),
        ("GET", "/api/stats/pipeline") => R(Viewer),
        ("GET", "/ws/alerts") => R(Viewer),
        ("GET", "/api/tokens") => R(Viewer),
        ("POST", "/api/tokens") => R(Viewer),
        ("DELETE", "/api/tokens/{id}") => R(Viewer),
        ("GET", "/api/users") => R(Admin),
        ("POST", "/api/users") => R(Admin),
        ("PATCH", "/api/users/{username}") => R(Admin),
        ("GET", "/api/actions") => R(Viewer),
        ("POST", "/api/actions") => R(Analyst),
        ("GET", "/api/actions/{id}") => R(Viewer),
        ("POST", "/api/actions/{id}/approve") => R(Analyst),
        ("POST", "/api/actions/{id}/reject") => R(Analyst),
        ("POST", "/api/actions/{id}/revert") => R(Analyst),
        ("GET", "/api/response/switch") => R(Viewer),
        ("POST", "/api/response/switch") => R(Admin),
        ("GET", "/api/audit/verify") => R(Admin),
        ("GET", "/api/agents") => R(Viewer),
        ("POST", "/api/agents/enrollments") => R(Admin),
        ("POST", "/api/agents/enroll") => Public,
        ("DELETE", "/api/agents/{id}") => R(Admin),
        // Only an agent's own credential: no user's token or session.
        ("GET", "/ws/agent") => Agent,
        _ => return None,
    })
}

#[actix_web::test]
async fn every_route_has_the_expected_rule() {
    for r in soc_gateway::routes::table() {
        let want = expected(&r.method, r.path).unwrap_or_else(|| {
            panic!(
                "{} {} has no expectation in the authorization matrix",
                r.method, r.path
            )
        });
        assert_eq!(r.access, want, "{} {}", r.method, r.path);
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "6b2f518e-0c4d-4a61-9d3e-571a902bc411")
        .replace("{username}", "nobody")
        .replace("{tail:.*}", "index.html")
}

#[actix_web::test]
async fn every_route_times_every_role_answers_as_its_rule_says() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let mut tokens = vec![(None, "no credential")];
    for role in Role::ALL {
        tokens.push((Some((role, token(&db, role).await)), role.as_str()));
    }
    let mut checked = 0;
    for r in soc_gateway::routes::table() {
        for (cred, who) in &tokens {
            let mut req = test::TestRequest::default()
                .method(r.method.clone())
                .uri(&concrete(r.path));
            if let Some((_, t)) = cred {
                req = req.insert_header(bearer(t));
            }
            if r.method == Method::POST || r.method == Method::PATCH {
                req = req.set_json(json!({}));
            }
            let status = test::call_service(&app, req.to_request())
                .await
                .status()
                .as_u16();
            let role = cred.as_ref().map(|(r, _)| *r);
            let allowed = match (r.access, role) {
                (Access::Public, _) => true,
                (_, None) => {
                    assert_eq!(status, 401, "{} {} as {who}", r.method, r.path);
                    false
                }
                (Access::Account, Some(_)) => true,
                (Access::Agent, Some(_)) => {
                    assert_eq!(status, 401, "{} {} as {who}", r.method, r.path);
                    false
                }
                (Access::Role(min), Some(have)) => {
                    if have < min {
                        assert_eq!(status, 403, "{} {} as {who}", r.method, r.path);
                    }
                    have >= min
                }
            };
            if allowed {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{} {} as {who}: {status}",
                    r.method,
                    r.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 45 * 4, "{checked}");
}

async fn sign_in<S, B>(app: &S, user: &str, password: &str) -> (u16, Option<Cookie<'static>>, Value)
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
        test::TestRequest::post()
            .uri("/api/auth/signin")
            .set_json(json!({"username": user, "password": password}))
            .to_request(),
    )
    .await;
    let status = res.status().as_u16();
    let cookie = res
        .response()
        .cookies()
        .find(|c| c.name() == "soc_session")
        .map(|c| c.into_owned());
    let body: Value = serde_json::from_slice(&test::read_body(res).await).unwrap_or(Value::Null);
    (status, cookie, body)
}

#[actix_web::test]
async fn a_session_needs_its_csrf_token_to_change_anything_and_ends_at_sign_out() {
    for db in TestDb::all().await {
        let b = db.backend;
        token(&db, Role::Analyst).await; // makes `analyst-user`
        let app = test::init_service(create_app(state(&db))).await;
        let (status, cookie, body) = sign_in(&app, "analyst-user", PASSWORD).await;
        assert_eq!(status, 200, "{b}: {body}");
        let cookie = cookie.expect("session cookie");
        assert!(cookie.http_only() == Some(true), "{b}: HttpOnly");
        assert_eq!(
            cookie.same_site(),
            Some(actix_web::cookie::SameSite::Strict),
            "{b}"
        );
        assert_eq!(body["role"], "analyst", "{b}");
        let csrf = body["csrf_token"].as_str().expect("csrf token").to_string();

        let me: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri("/api/session")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(me["username"], "analyst-user", "{b}");
        assert_eq!(me["csrf_token"], csrf.as_str(), "{b}");

        let make_token = |csrf: Option<&str>, origin: Option<&str>| {
            let mut r = test::TestRequest::post()
                .uri("/api/tokens")
                .cookie(cookie.clone())
                .set_json(json!({"name": "script"}));
            if let Some(c) = csrf {
                r = r.insert_header(("X-CSRF-Token", c.to_string()));
            }
            if let Some(o) = origin {
                r = r
                    .insert_header(("Origin", o.to_string()))
                    .insert_header(("Host", "127.0.0.1:8080"));
            }
            r.to_request()
        };
        for (csrf, origin, want) in [
            (None, None, 403),
            (Some("forged"), None, 403),
            (Some(csrf.as_str()), Some("https://evil.example"), 403),
            (Some(csrf.as_str()), Some("http://127.0.0.1:8080"), 201),
            (Some(csrf.as_str()), None, 201),
        ] {
            let res = test::call_service(&app, make_token(csrf, origin)).await;
            assert_eq!(
                res.status().as_u16(),
                want,
                "{b}: csrf {csrf:?} origin {origin:?}"
            );
        }

        let res = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/api/auth/signout")
                .cookie(cookie.clone())
                .insert_header(("X-CSRF-Token", csrf.clone()))
                .to_request(),
        )
        .await;
        assert_eq!(res.status().as_u16(), 204, "{b}");
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/api/alerts")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(res.status().as_u16(), 401, "{b}: the session is gone");
    }
}

#[actix_web::test]
async fn wrong_passwords_are_refused_alike_and_then_rate_limited() {
    let db = TestDb::sqlite().await;
    token(&db, Role::Viewer).await;
    let app = test::init_service(create_app(state(&db))).await;
    let (s1, c1, b1) = sign_in(&app, "viewer-user", "wrong password!").await;
    let (s2, _, b2) = sign_in(&app, "no-such-user", "wrong password!").await;
    assert_eq!((s1, s2), (401, 401));
    assert!(c1.is_none());
    assert_eq!(b1["detail"], b2["detail"], "no hint which part was wrong");
    assert_eq!(b1["code"], "invalid_credentials");
    // The name's allowance is five failures; once it is spent, even the right password is
    // refused before it is checked.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(sign_in(&app, "viewer-user", "wrong password!").await.0);
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429]);
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/api/auth/signin")
            .set_json(json!({"username": "viewer-user", "password": PASSWORD}))
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Another name is not locked by this one.
    token(&db, Role::Admin).await;
    assert_eq!(sign_in(&app, "admin-user", PASSWORD).await.0, 200);
}

#[actix_web::test]
async fn expired_revoked_and_disabled_credentials_are_refused() {
    for db in TestDb::all().await {
        let b = db.backend;
        let app = test::init_service(create_app(state(&db))).await;
        let accounts = Accounts::new(db.conn.clone());
        let live = token(&db, Role::Analyst).await;
        let now = chrono::Utc::now();
        use secrecy::ExposeSecret;
        let expired = accounts
            .create_token(
                "analyst-user",
                "old",
                None,
                Some(now - chrono::Duration::seconds(1)),
                now - chrono::Duration::days(1),
            )
            .await
            .expect("token");
        let get = |t: &str| {
            test::TestRequest::get()
                .uri("/api/alerts")
                .insert_header(bearer(t))
                .to_request()
        };
        assert_eq!(
            test::call_service(&app, get(&live)).await.status(),
            200,
            "{b}"
        );
        assert_eq!(
            test::call_service(&app, get(expired.secret.expose_secret()))
                .await
                .status(),
            401,
            "{b}: expired"
        );
        assert_eq!(
            test::call_service(&app, get("soc_made-up")).await.status(),
            401,
            "{b}"
        );
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/api/alerts")
                .insert_header(("Authorization", "Basic YWRtaW46YWRtaW4="))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 401, "{b}: not a bearer token");

        // Revoked by its id, as listed.
        let listed: Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get()
                .uri("/api/tokens")
                .insert_header(bearer(&live))
                .to_request(),
        )
        .await;
        let id = listed
            .as_array()
            .expect("tokens")
            .iter()
            .find(|t| t["name"] == "test" && t["revoked_at"].is_null())
            .and_then(|t| t["id"].as_str())
            .expect("the live token is listed")
            .to_string();
        assert!(
            !listed.to_string().contains(&live),
            "{b}: secrets are never listed"
        );
        let second = token(&db, Role::Analyst).await;
        let res = test::call_service(
            &app,
            test::TestRequest::delete()
                .uri(&format!("/api/tokens/{id}"))
                .insert_header(bearer(&second))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 204, "{b}");
        assert_eq!(
            test::call_service(&app, get(&live)).await.status(),
            401,
            "{b}: revoked"
        );

        // Disabling the owner stops every token of theirs.
        assert_eq!(
            test::call_service(&app, get(&second)).await.status(),
            200,
            "{b}"
        );
        accounts
            .update_user("analyst-user", None, Some(true), now)
            .await
            .expect("disable");
        assert_eq!(
            test::call_service(&app, get(&second)).await.status(),
            401,
            "{b}: disabled"
        );

        // Demoting the owner demotes the token.
        let admin = token(&db, Role::Admin).await;
        let users = |t: &str| {
            test::TestRequest::get()
                .uri("/api/users")
                .insert_header(bearer(t))
                .to_request()
        };
        assert_eq!(
            test::call_service(&app, users(&admin)).await.status(),
            200,
            "{b}"
        );
        token(&db, Role::Viewer).await;
        accounts
            .update_user("viewer-user", Some(Role::Admin), None, now)
            .await
            .expect("promote");
        accounts
            .update_user("admin-user", Some(Role::Viewer), None, now)
            .await
            .expect("demote");
        assert_eq!(
            test::call_service(&app, users(&admin)).await.status(),
            403,
            "{b}: demoted"
        );
    }
}

#[actix_web::test]
async fn a_generated_password_must_be_changed_before_anything_else() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let admin = token(&db, Role::Admin).await;
    let created: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::post()
            .uri("/api/users")
            .insert_header(bearer(&admin))
            .set_json(json!({"username": "night-shift", "role": "analyst"}))
            .to_request(),
    )
    .await;
    let one_time = created["password"].as_str().expect("generated").to_string();
    assert_eq!(created["user"]["must_change_password"], true);
    assert!(created["user"].get("password_hash").is_none());

    let (status, cookie, body) = sign_in(&app, "night-shift", &one_time).await;
    assert_eq!(status, 200);
    assert_eq!(body["must_change_password"], true);
    let cookie = cookie.expect("cookie");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    let alerts = || {
        test::TestRequest::get()
            .uri("/api/alerts")
            .cookie(cookie.clone())
            .to_request()
    };
    let res = test::call_service(&app, alerts()).await;
    assert_eq!(res.status(), 403);
    let problem: Value = test::read_body_json(res).await;
    assert_eq!(problem["code"], "password_change_required");

    let change = |current: &str, new: &str| {
        test::TestRequest::post()
            .uri("/api/auth/password")
            .cookie(cookie.clone())
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .set_json(json!({"current_password": current, "new_password": new}))
            .to_request()
    };
    assert_eq!(
        test::call_service(&app, change(&one_time, "short"))
            .await
            .status(),
        400
    );
    assert_eq!(
        test::call_service(&app, change("not the password", "a long new passphrase"))
            .await
            .status(),
        401
    );
    assert_eq!(
        test::call_service(&app, change(&one_time, "a long new passphrase"))
            .await
            .status(),
        204
    );
    assert_eq!(test::call_service(&app, alerts()).await.status(), 200);
    assert_eq!(sign_in(&app, "night-shift", &one_time).await.0, 401);
    assert_eq!(
        sign_in(&app, "night-shift", "a long new passphrase")
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn hostile_bodies_get_problem_json_not_errors() {
    let db = TestDb::sqlite().await;
    let app = test::init_service(create_app(state(&db))).await;
    let admin = token(&db, Role::Admin).await;
    let viewer = token(&db, Role::Viewer).await;
    let huge = "x".repeat(200 * 1024);
    for (method, uri, t, body, want) in [
        (
            "POST",
            "/api/auth/signin",
            None,
            json!({"username": huge.clone(), "password": "x"}),
            400,
        ),
        (
            "POST",
            "/api/auth/signin",
            None,
            json!({"username": "a", "password": huge.clone()}),
            400,
        ),
        (
            "POST",
            "/api/auth/signin",
            None,
            json!({"username": 5, "password": []}),
            400,
        ),
        ("POST", "/api/auth/signin", None, json!({"user": "a"}), 400),
        (
            "POST",
            "/api/users",
            Some(&admin),
            json!({"username": "<script>", "role": "admin"}),
            400,
        ),
        (
            "POST",
            "/api/users",
            Some(&admin),
            json!({"username": "ok", "role": "root"}),
            400,
        ),
        (
            "POST",
            "/api/users",
            Some(&admin),
            json!({"username": "weak", "role": "viewer", "password": "123"}),
            400,
        ),
        (
            "POST",
            "/api/users",
            Some(&admin),
            json!({"username": "viewer-user", "role": "viewer"}),
            409,
        ),
        (
            "PATCH",
            "/api/users/admin-user",
            Some(&admin),
            json!({"disabled": true}),
            409,
        ),
        (
            "POST",
            "/api/tokens",
            Some(&viewer),
            json!({"name": "x", "role": "admin"}),
            403,
        ),
        (
            "POST",
            "/api/tokens",
            Some(&viewer),
            json!({"name": "", "role": "viewer"}),
            400,
        ),
        (
            "POST",
            "/api/tokens",
            Some(&viewer),
            json!({"name": "x", "expires_in_days": 0}),
            400,
        ),
        (
            "POST",
            "/api/tokens",
            Some(&viewer),
            json!({"name": "x", "expires_in_days": -1}),
            400,
        ),
        (
            "DELETE",
            "/api/tokens/not-an-id",
            Some(&viewer),
            Value::Null,
            404,
        ),
    ] {
        let mut req = test::TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(uri);
        if let Some(t) = t {
            req = req.insert_header(bearer(t));
        }
        if !body.is_null() {
            req = req.set_json(&body);
        }
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            status,
            want,
            "{method} {uri} {}",
            &body.to_string()[..body.to_string().len().min(80)]
        );
        assert_eq!(ct, "application/problem+json", "{method} {uri}");
    }
}
