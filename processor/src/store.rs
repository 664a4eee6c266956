//! The processor's durable side: alerts, rule state and the input checkpoint, written in one
//! database transaction per batch so a crash at any point neither loses nor repeats work.

use crate::error::{Error, Result};
use crate::rules::detector::StateChanges;
use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait,
};
use soc_core::db::{alert, processor_checkpoint, rule_state};
use soc_core::Alert;

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

    /// One transaction: upsert alerts, apply rule-state changes, move the checkpoint.
    pub async fn commit_batch(
        &self,
        consumer: &str,
        partition: u32,
        next_offset: u64,
        alerts: &[Alert],
        changes: &StateChanges,
    ) -> Result<()> {
        let txn = self.db.begin().await?;
        for chunk in alerts.chunks(CHUNK) {
            let models = chunk
                .iter()
                .map(|a| alert::Model::from(a).into_active_model());
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
        txn.commit().await?;
        Ok(())
    }
}
