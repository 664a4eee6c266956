//! Sigma rules (<https://sigmahq.io>): the detection block is read as is, the Sigma taxonomy's
//! field names are mapped to our ECS fields, `level` becomes the severity and `attack.tNNNN`
//! tags the ATT&CK techniques. A rule whose fields or modifiers we cannot evaluate is refused
//! at load, naming what is missing, rather than silently never matching.

use super::detection::DetectionError;
use super::{is_technique_id, Detection, Rule, RuleFormat, DEFAULT_WINDOW_SECS};
use serde_norway::Value as Yaml;
use soc_core::Severity;
use std::path::Path;

/// Sigma's web server taxonomy (W3C extended log field names) and process creation fields.
const FIELD_MAP: &[(&str, &str)] = &[
    ("c-ip", "source.ip"),
    ("ClientIP", "source.ip"),
    ("cs-method", "http.request.method"),
    ("cs-uri-query", "url.original"),
    ("cs-uri-stem", "url.path"),
    ("cs-uri", "url.original"),
    ("c-uri", "url.original"),
    ("c-useragent", "user_agent.original"),
    ("cs-user-agent", "user_agent.original"),
    ("sc-status", "http.response.status_code"),
    ("cs-referer", "http.request.referrer"),
    ("cs-host", "url.domain"),
    ("cs-version", "http.version"),
    ("Image", "process.executable"),
    ("CommandLine", "process.command_line"),
    ("ParentImage", "process.parent.executable"),
    ("ParentCommandLine", "process.parent.command_line"),
    ("User", "user.name"),
    ("CurrentDirectory", "process.working_directory"),
    ("ProcessId", "process.pid"),
    ("TargetFilename", "file.path"),
    ("DestinationIp", "destination.ip"),
    ("DestinationPort", "destination.port"),
    ("SourceIp", "source.ip"),
    ("SourcePort", "source.port"),
    ("DestinationHostname", "destination.domain"),
    ("QueryName", "dns.question.name"),
];

/// Raw auditd record fields (`logsource: {product: linux, service: auditd}`): the record
/// type is our `event.action` (compared case-insensitively), `a0`..`a9` the EXECVE arguments.
const AUDITD_FIELD_MAP: &[(&str, &str)] = &[
    ("type", "event.action"),
    ("exe", "process.executable"),
    ("comm", "process.name"),
    ("pid", "process.pid"),
    ("ppid", "process.parent.pid"),
    ("auid", "user.audit.id"),
    ("uid", "user.id"),
    ("name", "file.path"),
];

/// The ECS field a Sigma field name stands for. Dotted names are taken as ECS already.
pub fn map_field(field: &str) -> Option<String> {
    map_field_for(field, false)
}

fn map_field_for(field: &str, auditd: bool) -> Option<String> {
    if field.contains('.') {
        return Some(field.to_string());
    }
    if auditd {
        if let Some(n) = field.strip_prefix('a').filter(|n| n.len() == 1) {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                return Some(format!("process.args.{n}"));
            }
        }
        if let Some((_, ecs)) = AUDITD_FIELD_MAP.iter().find(|(f, _)| *f == field) {
            return Some((*ecs).to_string());
        }
    }
    FIELD_MAP
        .iter()
        .find(|(sigma, _)| *sigma == field)
        .map(|(_, ecs)| (*ecs).to_string())
}

/// Why a Sigma rule was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SigmaError {
    #[error("a Sigma rule needs a {0}")]
    Missing(&'static str),
    #[error("unknown Sigma level `{0}`")]
    Level(String),
    #[error("detection: {0}")]
    Detection(#[from] DetectionError),
}

fn severity(level: Option<&str>) -> Result<Severity, SigmaError> {
    Ok(match level.unwrap_or("medium") {
        "informational" | "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        other => return Err(SigmaError::Level(other.to_string())),
    })
}

/// `attack.t1190` and `attack.t1110.001` become T1190 and T1110.001; other tags are ignored.
fn techniques(tags: Option<&Yaml>) -> Vec<String> {
    let mut out: Vec<String> = tags
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .filter_map(|t| t.strip_prefix("attack."))
        .map(str::to_uppercase)
        .filter(|t| is_technique_id(t))
        .collect();
    out.dedup();
    out
}

pub fn from_sigma(doc: &Yaml, path: &Path) -> Result<Rule, SigmaError> {
    let text = |k: &str| doc.get(k).and_then(Yaml::as_str).map(str::to_string);
    let title = text("title").ok_or(SigmaError::Missing("title"))?;
    let block = doc
        .get("detection")
        .ok_or(SigmaError::Missing("detection"))?;
    let service = doc
        .get("logsource")
        .and_then(|l| l.get("service"))
        .and_then(Yaml::as_str);
    let auditd = service == Some("auditd");
    let detection = Detection::parse(block, &|f| map_field_for(f, auditd))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let references = doc
        .get("references")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .map(str::to_string)
        .collect();
    Ok(Rule {
        id: format!("sigma/{stem}"),
        title,
        description: text("description").unwrap_or_default(),
        severity: severity(doc.get("level").and_then(Yaml::as_str))?,
        mitre: techniques(doc.get("tags")),
        detection,
        // Who did it: the client of a web request, else the user, else the host, else (a
        // record that names none, like a raw auditd line) the log it came from.
        group_by: vec![
            "source.ip".into(),
            "user.name".into(),
            "host.hostname".into(),
            "event.dataset".into(),
        ],
        threshold: 1,
        window_secs: DEFAULT_WINDOW_SECS,
        distinct: None,
        count: super::Count::Events,
        covers: Vec::new(),
        references,
        format: RuleFormat::Sigma {
            sigma_id: text("id"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULE: &str = r#"
title: Path Traversal Exploitation Attempts
id: 7745c2ea-24a5-4290-b680-04359cb84b35
status: test
logsource:
    category: webserver
detection:
    selection:
        cs-uri-query|contains:
            - '../../../../../lib/password'
            - '/..%2F..%2F'
    condition: selection
level: medium
tags:
    - attack.initial-access
    - attack.t1190
"#;

    #[test]
    fn sigma_fields_levels_and_tags_map() {
        let doc: Yaml = serde_norway::from_str(RULE).expect("yaml");
        let r = from_sigma(&doc, Path::new("web_path_traversal.yml")).expect("rule");
        assert_eq!(r.id, "sigma/web_path_traversal");
        assert_eq!(r.severity, Severity::Medium);
        assert_eq!(r.mitre, vec!["T1190"]);
        assert_eq!(
            r.format,
            RuleFormat::Sigma {
                sigma_id: Some("7745c2ea-24a5-4290-b680-04359cb84b35".into())
            }
        );
        let hit =
            json!({"url": {"original": "/x/..%2f..%2fetc/passwd"}, "source": {"ip": "1.2.3.4"}});
        assert!(r.matches(&hit));
        assert!(!r.matches(&json!({"url": {"original": "/index.html"}})));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let doc: Yaml = serde_norway::from_str(
            "title: t\nlogsource: {product: windows}\ndetection: {sel: {EventID: 4625}, condition: sel}\n",
        )
        .expect("yaml");
        let err = from_sigma(&doc, Path::new("x.yml"))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("EventID"), "{err}");
    }
}
