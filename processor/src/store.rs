//! The processor's durable side: alerts, rule state and the input checkpoint, written in one
//! database transaction per batch so a crash at any point neither loses nor repeats work.

use crate::error::{Error, Result};
use crate::rules::detector::StateChanges;
use crate::suppress::Hidden;
use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use soc_core::db::{
    alert, alert_event, alert_revision, processor_checkpoint, rule_state, suppression,
};
use soc_core::Alert;
use std::collections::HashMap;

/// Rows per multi-row statement: well under SQLite's bound-variable limit.
const CHUNK: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub next_offset: u64,
    /// Alerts written with this checkpoint that may not have reached the alerts topic.
    pub unpublished: Vec<String>,
}

/// The incoming verdict column where its rank is at least the stored one's (`Triage::rank`
/// decides which verdict wins; SQL only compares the numbers).
fn keep_winning_verdict(column: &str) -> Expr {
    Expr::cust(format!(
        "CASE WHEN alerts.verdict_rank IS NULL OR excluded.verdict_rank >= alerts.verdict_rank \
         THEN excluded.{column} ELSE alerts.{column} END"
    ))
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Store { db }
    }

    /// The pool this store writes through.
    pub fn connection(&self) -> DatabaseConnection {
        self.db.clone()
    }

    pub async fn checkpoint(&self, consumer: &str, partition: u32) -> Result<Option<Checkpoint>> {
        let row =
            processor_checkpoint::Entity::find_by_id((consumer.to_string(), partition as i32))
                .one(&self.db)
                .await?;
        // The unpublished list is what a restart republishes: an unreadable one must stop
        // the processor rather than silently drop alerts that never reached the topic.
        row.map(|r| {
            let unpublished = serde_json::from_str(&r.unpublished).map_err(|e| Error::Corrupt {
                what: format!("checkpoint of {consumer}/{partition} (unpublished alerts)"),
                source: e.into(),
            })?;
            Ok(Checkpoint {
                next_offset: r.next_offset.max(0) as u64,
                unpublished,
            })
        })
        .transpose()
    }

    /// Saved rule state of one partition: (rule id, group key, state JSON).
    pub async fn rule_state(
        &self,
        consumer: &str,
        partition: u32,
    ) -> Result<Vec<(String, String, String)>> {
        let rows = rule_state::Entity::find()
            .filter(rule_state::Column::Consumer.eq(consumer))
            .filter(rule_state::Column::Partition.eq(partition as i32))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.rule_id, r.group_key, r.state))
            .collect())
    }

    pub async fn alerts_by_id(&self, ids: &[String]) -> Result<Vec<Alert>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = alert::Entity::find()
            .filter(alert::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| {
                let id = m.id.clone();
                Alert::try_from(m).map_err(|e| Error::Corrupt {
                    what: format!("alert {id}"),
                    source: e.into(),
                })
            })
            .collect()
    }

    /// [`Store::commit_batch_proposing`] without proposals.
    pub async fn commit_batch(
        &self,
        consumer: &str,
        partition: u32,
        next_offset: u64,
        alerts: &[Alert],
        changes: &StateChanges,
        hidden: &Hidden,
    ) -> Result<HashMap<uuid::Uuid, uuid::Uuid>> {
        self.commit_batch_proposing(
            consumer,
            partition,
            next_offset,
            alerts,
            changes,
            hidden,
            &[],
            0,
        )
        .await
    }

    /// One transaction: upsert alerts, reopen resolved incidents that have new events, count
    /// what suppressions withheld, apply rule-state changes, record the verdicts' proposed
    /// actions (approving what the policy may, at most `max_auto_per_minute`), move the
    /// checkpoint. Returns the incident each alert was filed under.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_batch_proposing(
        &self,
        consumer: &str,
        partition: u32,
        next_offset: u64,
        alerts: &[Alert],
        changes: &StateChanges,
        hidden: &Hidden,
        proposals: &[crate::actions::Proposal],
        max_auto_per_minute: u32,
    ) -> Result<HashMap<uuid::Uuid, uuid::Uuid>> {
        let txn = self.db.begin().await?;
        let before = stored(&txn, alerts).await?;
        let incidents = assign_incidents(&txn, alerts, &before).await?;
        for chunk in alerts.chunks(CHUNK) {
            let models = chunk.iter().map(|a| {
                let mut m = alert::Model::from(a);
                m.incident_id = incidents.get(&a.id).map(ToString::to_string);
                m.into_active_model()
            });
            alert::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::column(alert::Column::Id)
                        .update_columns([
                            alert::Column::Count,
                            alert::Column::LastSeen,
                            alert::Column::FirstSeen,
                            alert::Column::Evidence,
                            alert::Column::Indicators,
                            alert::Column::Severity,
                            alert::Column::Revision,
                            alert::Column::UpdatedAt,
                        ])
                        // The processor's verdict is the fallback (or a copy of the model's):
                        // it never replaces a better verdict the triage writer stored.
                        .value(alert::Column::Triage, keep_winning_verdict("triage"))
                        .value(alert::Column::Priority, keep_winning_verdict("priority"))
                        .value(
                            alert::Column::VerdictSource,
                            keep_winning_verdict("verdict_source"),
                        )
                        // Last: the conditions above compare the stored rank.
                        .value(
                            alert::Column::VerdictRank,
                            keep_winning_verdict("verdict_rank"),
                        )
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        reopen(&txn, alerts, &before).await?;
        record_milestones(&txn, alerts, &before).await?;
        count_hidden(&txn, hidden).await?;
        for chunk in changes.upserts.chunks(CHUNK) {
            let models = chunk.iter().map(|(rule, key, state)| {
                rule_state::Model {
                    consumer: consumer.to_string(),
                    partition: partition as i32,
                    rule_id: rule.clone(),
                    group_key: key.clone(),
                    state: state.clone(),
                }
                .into_active_model()
            });
            rule_state::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([
                        rule_state::Column::Consumer,
                        rule_state::Column::Partition,
                        rule_state::Column::RuleId,
                        rule_state::Column::GroupKey,
                    ])
                    .update_column(rule_state::Column::State)
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        for (rule, key) in &changes.deletes {
            rule_state::Entity::delete_many()
                .filter(rule_state::Column::Consumer.eq(consumer))
                .filter(rule_state::Column::Partition.eq(partition as i32))
                .filter(rule_state::Column::RuleId.eq(rule.as_str()))
                .filter(rule_state::Column::GroupKey.eq(key.as_str()))
                .exec(&txn)
                .await?;
        }
        let ids: Vec<String> = alerts.iter().map(|a| a.id.to_string()).collect();
        let cp = processor_checkpoint::Model {
            consumer: consumer.to_string(),
            partition: partition as i32,
            next_offset: next_offset as i64,
            unpublished: serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()),
            updated_at: Utc::now(),
        };
        processor_checkpoint::Entity::insert(cp.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    processor_checkpoint::Column::Consumer,
                    processor_checkpoint::Column::Partition,
                ])
                .update_columns([
                    processor_checkpoint::Column::NextOffset,
                    processor_checkpoint::Column::Unpublished,
                    processor_checkpoint::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if !proposals.is_empty() {
            crate::actions::record(&txn, proposals, max_auto_per_minute, Utc::now())
                .await
                .map_err(|e| match e {
                    soc_core::response::ActionError::Db(e) => Error::Database(e),
                    other => Error::Database(sea_orm::DbErr::Custom(other.to_string())),
                })?;
        }
        txn.commit().await?;
        Ok(incidents)
    }
}

/// How long an attacker may stay quiet and its next alert still join the same incident.
pub const INCIDENT_GAP_SECS: i64 = 3600;

/// The incident of each alert of the batch: the one it already has, else the incident of
/// the same attacker (source address, else grouping key) whose alerts were last seen no more
/// than [`INCIDENT_GAP_SECS`] before this alert began (earlier in the batch or stored),
/// else a new one named after the attacker and the alert's start. Stored with the alerts
/// in the batch's transaction, so a replay after a crash finds the same incidents.
async fn assign_incidents(
    txn: &DatabaseTransaction,
    alerts: &[Alert],
    before: &HashMap<String, Stored>,
) -> Result<HashMap<uuid::Uuid, uuid::Uuid>> {
    let gap = chrono::Duration::seconds(INCIDENT_GAP_SECS);
    let mut out = HashMap::new();
    // Per attacker: the incident and the latest time seen in it, as this batch goes.
    let mut open: HashMap<String, (uuid::Uuid, chrono::DateTime<Utc>)> = HashMap::new();
    for a in alerts {
        let attacker = a.attacker().to_string();
        let kept = before
            .get(&a.id.to_string())
            .and_then(|s| s.incident_id.as_deref())
            .and_then(|i| i.parse().ok());
        let joined = match open.get(&attacker) {
            Some((id, last)) if a.first_seen <= *last + gap => Some(*id),
            _ => None,
        };
        let id = match kept.or(joined) {
            Some(id) => id,
            None => match latest_incident(txn, a, a.first_seen - gap).await? {
                Some(id) => id,
                None => Alert::attacker_incident_id(&attacker, a.first_seen),
            },
        };
        let last = open
            .get(&attacker)
            .filter(|(open_id, _)| *open_id == id)
            .map_or(a.last_seen, |(_, l)| (*l).max(a.last_seen));
        open.insert(attacker, (id, last));
        out.insert(a.id, id);
    }
    Ok(out)
}

/// The incident of the attacker's most recent stored alert seen at or after `since`.
async fn latest_incident(
    txn: &DatabaseTransaction,
    a: &Alert,
    since: chrono::DateTime<Utc>,
) -> Result<Option<uuid::Uuid>> {
    let query = alert::Entity::find()
        .select_only()
        .column(alert::Column::Id)
        .column(alert::Column::IncidentId)
        .filter(alert::Column::LastSeen.gte(since))
        .filter(alert::Column::Id.ne(a.id.to_string()));
    let query = match &a.source_ip {
        Some(ip) => query.filter(alert::Column::SourceIp.eq(ip.as_str())),
        None => query
            .filter(alert::Column::SourceIp.is_null())
            .filter(alert::Column::GroupKey.eq(a.group_key.as_str())),
    };
    let row: Option<(String, Option<String>)> = query
        .order_by_desc(alert::Column::LastSeen)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(row.and_then(|(id, incident)| incident.unwrap_or(id).parse().ok()))
}

/// What the database holds of the batch's alerts before the batch: their event count, their
/// severity, and whether analysts resolved them.
#[derive(Debug)]
struct Stored {
    count: i64,
    severity: String,
    resolved: bool,
    incident_id: Option<String>,
}

async fn stored(txn: &DatabaseTransaction, alerts: &[Alert]) -> Result<HashMap<String, Stored>> {
    let mut out = HashMap::new();
    let ids: Vec<String> = alerts.iter().map(|a| a.id.to_string()).collect();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, i64, String, String, Option<String>)> = alert::Entity::find()
            .select_only()
            .column(alert::Column::Id)
            .column(alert::Column::Count)
            .column(alert::Column::Severity)
            .column(alert::Column::Status)
            .column(alert::Column::IncidentId)
            .filter(alert::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(txn)
            .await?;
        for (id, count, severity, status, incident_id) in rows {
            out.insert(
                id,
                Stored {
                    count,
                    severity,
                    resolved: status == "resolved",
                    incident_id,
                },
            );
        }
    }
    Ok(out)
}

/// Which power of two an event count has reached.
fn magnitude(count: i64) -> u32 {
    64 - count.max(0).leading_zeros()
}

/// Record the batch's milestones: a new incident, an incident whose event count doubled,
/// one whose severity changed. Bounded: about 64 rows an incident at most.
async fn record_milestones(
    txn: &DatabaseTransaction,
    alerts: &[Alert],
    before: &HashMap<String, Stored>,
) -> Result<()> {
    let now = Utc::now();
    let rows: Vec<alert_revision::ActiveModel> = alerts
        .iter()
        .filter(|a| match before.get(&a.id.to_string()) {
            None => true,
            Some(s) => {
                magnitude(a.count as i64) > magnitude(s.count) || s.severity != a.severity.as_str()
            }
        })
        .map(|a| alert_revision::ActiveModel {
            alert_id: Set(a.id.to_string()),
            revision: Set(a.revision as i64),
            count: Set(a.count as i64),
            severity: Set(a.severity.as_str().to_string()),
            last_seen: Set(a.last_seen),
            recorded_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        alert_revision::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::columns([
                    alert_revision::Column::AlertId,
                    alert_revision::Column::Revision,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// A resolved incident that got new events is open again: back to `new`, its resolution
/// kept in the history only. A revision with no new events (a replay, a verdict) keeps the
/// analyst's decision.
async fn reopen(
    txn: &DatabaseTransaction,
    alerts: &[Alert],
    before: &HashMap<String, Stored>,
) -> Result<()> {
    let resolved: HashMap<&String, i64> = before
        .iter()
        .filter(|(_, s)| s.resolved)
        .map(|(id, s)| (id, s.count))
        .collect();
    if resolved.is_empty() {
        return Ok(());
    }
    let mut newest: HashMap<String, u64> = HashMap::new();
    for a in alerts {
        let id = a.id.to_string();
        if resolved.contains_key(&id) {
            let c = newest.entry(id).or_default();
            *c = (*c).max(a.count);
        }
    }
    let now = Utc::now();
    for (id, count) in newest {
        let before = resolved.get(&id).copied().unwrap_or(i64::MAX);
        if count as i64 <= before {
            continue;
        }
        alert::Entity::update_many()
            .col_expr(alert::Column::Status, Expr::value("new"))
            .col_expr(
                alert::Column::Resolution,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                alert::Column::ResolutionReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(alert::Column::WorkflowUpdatedAt, Expr::value(now))
            .filter(alert::Column::Id.eq(id.as_str()))
            .exec(txn)
            .await?;
        alert_event::ActiveModel {
            alert_id: Set(id.clone()),
            at: Set(now),
            actor: Set("system".into()),
            kind: Set("reopened".into()),
            from_value: Set(Some("resolved".into())),
            to_value: Set(Some("new".into())),
            text: Set(Some(format!(
                "{} new events after it was resolved",
                count as i64 - before
            ))),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        tracing::info!(alert = %id, "resolved incident has new events; reopened");
    }
    Ok(())
}

/// Add the batch's withheld alert updates to their suppressions' counts.
async fn count_hidden(txn: &DatabaseTransaction, hidden: &Hidden) -> Result<()> {
    let now = Utc::now();
    for (id, n) in hidden {
        suppression::Entity::update_many()
            .col_expr(
                suppression::Column::Hidden,
                sea_orm::sea_query::ExprTrait::add(
                    Expr::col(suppression::Column::Hidden),
                    *n as i64,
                ),
            )
            .col_expr(suppression::Column::LastHiddenAt, Expr::value(now))
            .filter(suppression::Column::Id.eq(id.as_str()))
            .exec(txn)
            .await?;
    }
    Ok(())
}
