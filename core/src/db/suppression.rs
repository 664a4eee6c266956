//! A rule muted for one source address, user or host until a time, with who asked and why.
//! The processor withholds the matching alert updates and counts them here.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "suppressions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub rule_id: String,
    /// `source.ip`, `user.name` or `host.name`.
    pub field: String,
    pub value: String,
    pub until: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
    /// Alert updates withheld so far.
    pub hidden: i64,
    pub last_hidden_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a suppression is matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Field {
    #[serde(rename = "source.ip")]
    SourceIp,
    #[serde(rename = "user.name")]
    UserName,
    #[serde(rename = "host.name")]
    HostName,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::SourceIp, Field::UserName, Field::HostName];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::SourceIp => "source.ip",
            Field::UserName => "user.name",
            Field::HostName => "host.name",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl Model {
    /// In force at `now`: not revoked and not past its end.
    pub fn active(&self, now: DateTimeUtc) -> bool {
        self.revoked_at.is_none() && self.until > now
    }

    /// Whether this suppression hides `alert` at `now`. A source or host matches the alert's
    /// own address or host, or its grouping key. A user matches an alert grouped by that user,
    /// or one whose every evidence event is that user's: an alert that also shows other users
    /// is not hidden by muting one of them.
    pub fn hides(&self, alert: &crate::Alert, now: DateTimeUtc) -> bool {
        if !self.active(now) || alert.rule_id != self.rule_id {
            return false;
        }
        let Some(field) = Field::parse(&self.field) else {
            return false;
        };
        let grouped = alert.group_by == field.as_str() && alert.group_key == self.value;
        grouped
            || match field {
                Field::SourceIp => alert.source_ip.as_deref() == Some(self.value.as_str()),
                Field::HostName => alert.host_name.as_deref() == Some(self.value.as_str()),
                Field::UserName => {
                    !alert.evidence.is_empty()
                        && alert.evidence.iter().all(|e| {
                            e.pointer("/user/name").and_then(|v| v.as_str())
                                == Some(self.value.as_str())
                        })
                }
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alert, Severity};
    use chrono::{Duration, TimeZone, Utc};
    use serde_json::json;

    fn alert(group_by: &str, key: &str, users: &[&str]) -> Alert {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
            .single()
            .expect("time");
        Alert {
            id: Alert::incident_id("soc/ssh-bruteforce", key, t),
            rule_id: "soc/ssh-bruteforce".into(),
            title: "t".into(),
            severity: Severity::High,
            mitre: vec![],
            group_by: group_by.into(),
            group_key: key.into(),
            source_ip: Some("203.0.113.9".into()),
            host_name: Some("web-1".into()),
            count: 1,
            first_seen: t,
            last_seen: t,
            evidence: users.iter().map(|u| json!({"user": {"name": u}})).collect(),
            revision: 1,
            indicators: vec![],
            incident_id: None,
            triage: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn muting(field: &str, value: &str, now: DateTimeUtc) -> Model {
        Model {
            id: "s".into(),
            rule_id: "soc/ssh-bruteforce".into(),
            field: field.into(),
            value: value.into(),
            until: now + Duration::hours(1),
            reason: "r".into(),
            created_by: "ana".into(),
            created_at: now,
            revoked_by: None,
            revoked_at: None,
            hidden: 0,
            last_hidden_at: None,
        }
    }

    #[test]
    fn matches_by_field_rule_and_time() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 11, 0, 0)
            .single()
            .expect("time");
        let a = alert("source.ip", "203.0.113.9", &["root", "root"]);
        assert!(muting("source.ip", "203.0.113.9", now).hides(&a, now));
        assert!(!muting("source.ip", "203.0.113.10", now).hides(&a, now));
        assert!(muting("host.name", "web-1", now).hides(&a, now));
        assert!(!muting("host.name", "web-2", now).hides(&a, now));
        assert!(muting("user.name", "root", now).hides(&a, now));
        // Another rule, past its end, revoked, or an unknown field: not hidden.
        let mut other = muting("source.ip", "203.0.113.9", now);
        other.rule_id = "soc/port-scan".into();
        assert!(!other.hides(&a, now));
        assert!(!muting("source.ip", "203.0.113.9", now).hides(&a, now + Duration::hours(2)));
        let mut revoked = muting("source.ip", "203.0.113.9", now);
        revoked.revoked_at = Some(now);
        assert!(!revoked.hides(&a, now));
        assert!(!muting("process.name", "sshd", now).hides(&a, now));
    }

    #[test]
    fn a_user_hides_only_alerts_that_are_all_theirs() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 11, 0, 0)
            .single()
            .expect("time");
        let mixed = alert("source.ip", "203.0.113.9", &["backup", "root"]);
        assert!(!muting("user.name", "backup", now).hides(&mixed, now));
        let grouped = alert("user.name", "backup", &["backup", "root"]);
        assert!(muting("user.name", "backup", now).hides(&grouped, now));
        let no_evidence = alert("source.ip", "203.0.113.9", &[]);
        assert!(!muting("user.name", "backup", now).hides(&no_evidence, now));
    }
}
