//! Headless Chromium over the DevTools protocol, for the dashboard tests.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The rows of the alert table, as text.
pub const ROWS: &str = "JSON.stringify([...document.querySelectorAll('#alerts tr')].map(r => [...r.children].map(c => c.textContent)))";

pub struct Browser {
    child: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub async fn launch() -> Browser {
        let exe = std::env::var("SOC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&exe).exists(),
            "no Chromium at {exe}: apt-get install chromium, or set SOC_CHROMIUM"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr");
        // Chromium prints "DevTools listening on ws://..." once it is ready.
        let url = tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        });
        let url = tokio::time::timeout(Duration::from_secs(30), url)
            .await
            .expect("chromium ready in time")
            .expect("join")
            .expect("devtools url");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("devtools");
        Browser {
            child,
            ws,
            next_id: 0,
            session: None,
            _profile: profile,
        }
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("devtools answers")
                .expect("open")
                .expect("message");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    pub async fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": url})).await;
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        self.session = attached["sessionId"].as_str().map(str::to_string);
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Evaluate until `done` holds, for up to 20 s.
    pub async fn wait_for(&mut self, expression: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(expression).await;
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for `{expression}`; last value {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Browser {
    /// Set an input's value as typing would, and fire its events.
    pub async fn type_into(&mut self, id: &str, value: &str) {
        let v = serde_json::to_string(value).expect("json");
        self.eval(&format!(
            "(() => {{ const e = document.getElementById('{id}'); e.value = {v}; \
               e.dispatchEvent(new Event('input', {{bubbles: true}})); \
               e.dispatchEvent(new Event('change', {{bubbles: true}})); return 0; }})()"
        ))
        .await;
    }

    pub async fn sign_in(&mut self, user: &str, password: &str) {
        self.type_into("username", user).await;
        self.type_into("password", password).await;
        self.eval("document.getElementById('signin').requestSubmit(); 0")
            .await;
        self.wait_for("document.getElementById('status').textContent", |v| {
            v == "live"
        })
        .await;
    }

    /// A laptop-sized window, for screenshots an analyst would recognise.
    pub async fn desktop(&mut self) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// Save a PNG of the page under `target/screenshots/`, to look at after a run.
    pub async fn screenshot(&mut self, name: &str) {
        use base64::Engine;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("data"))
            .expect("base64");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot");
    }

    pub async fn rows(&mut self) -> Vec<Vec<String>> {
        let v = self.eval(ROWS).await;
        serde_json::from_str(v.as_str().expect("string")).expect("rows")
    }
}
