//! Where verdicts go once the worker has them: the alert's row (only ever replacing a verdict
//! that the new one supersedes), the `alerts` topic (so the dashboard and responders see it),
//! and one `llm_calls` row per model call.

use super::service::{CallRecord, Update};
use crate::publish::publish;
use crate::response::ResponsePolicy;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};
use soc_core::clock::Clock;
use soc_core::db::{alert, llm_call};
use soc_core::stream::LogStream;
use soc_core::Alert;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

/// Most updates written together.
const BATCH: usize = 200;

pub async fn write_updates(
    mut rx: mpsc::UnboundedReceiver<Update>,
    db: DatabaseConnection,
    stream: Arc<dyn LogStream>,
    topic: String,
    clock: Clock,
    policy: Arc<ResponsePolicy>,
) {
    let mut buf = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut buf, BATCH).await > 0 {
        let mut alerts = Vec::new();
        for u in buf.drain(..) {
            match u {
                Update::Verdict(a) => alerts.push(*a),
                Update::Call(c) => {
                    if let Err(e) = record_call(&db, &c).await {
                        warn!(error = %e, "could not record a model call");
                    }
                }
            }
        }
        for a in &alerts {
            // A database hiccup must not lose the verdict: retry a few times, then log.
            let mut delays = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(4)
                .build();
            while let Err(e) = store_verdict(&db, a).await {
                let Some(delay) = delays.next() else {
                    warn!(alert = %a.id, error = %e, "could not store a verdict");
                    break;
                };
                clock.sleep(delay).await;
            }
            let proposals = crate::actions::proposals(&policy, a);
            if !proposals.is_empty() {
                if let Err(e) = record_proposals(&db, &proposals, policy.max_auto_per_minute).await
                {
                    warn!(alert = %a.id, error = %e, "could not record proposed actions");
                }
            }
        }
        if let Err(e) = publish(stream.as_ref(), &topic, &alerts).await {
            warn!(error = %e, count = alerts.len(), "could not publish verdict updates");
        }
    }
}

/// Write an alert's verdict unless the stored one wins (`Triage::rank`: a model verdict is
/// never replaced by a fallback, nor an investigation by a triage).
pub async fn store_verdict(db: &DatabaseConnection, a: &Alert) -> Result<(), sea_orm::DbErr> {
    let Some(t) = &a.triage else { return Ok(()) };
    let json = serde_json::to_string(t).unwrap_or_default();
    let rank = t.rank();
    alert::Entity::update_many()
        .col_expr(alert::Column::Triage, Expr::value(json))
        .col_expr(alert::Column::VerdictSource, Expr::value(t.source.as_str()))
        .col_expr(alert::Column::Priority, Expr::value(t.priority as i32))
        .col_expr(alert::Column::VerdictRank, Expr::value(rank))
        .filter(alert::Column::Id.eq(a.id.to_string()))
        .filter(
            Condition::any()
                .add(alert::Column::VerdictRank.is_null())
                .add(alert::Column::VerdictRank.lte(rank)),
        )
        .exec(db)
        .await?;
    Ok(())
}

async fn record_proposals(
    db: &DatabaseConnection,
    proposals: &[crate::actions::Proposal],
    max_auto_per_minute: u32,
) -> Result<(), soc_core::response::ActionError> {
    let txn = db.begin().await?;
    crate::actions::record(&txn, proposals, max_auto_per_minute, Utc::now()).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn record_call(db: &DatabaseConnection, c: &CallRecord) -> Result<(), sea_orm::DbErr> {
    let row = llm_call::ActiveModel {
        id: ActiveValue::NotSet,
        created_at: ActiveValue::Set(Utc::now()),
        provider: ActiveValue::Set(c.provider.clone()),
        model: ActiveValue::Set(c.model.clone()),
        stage: ActiveValue::Set(c.stage.to_string()),
        incidents: ActiveValue::Set(c.incidents as i32),
        attempts: ActiveValue::Set(c.attempts as i32),
        prompt_tokens: ActiveValue::Set(c.prompt_tokens as i64),
        completion_tokens: ActiveValue::Set(c.completion_tokens as i64),
        cost_usd: ActiveValue::Set(c.cost_usd),
        latency_ms: ActiveValue::Set(c.latency_ms as i64),
        status: ActiveValue::Set(c.status.to_string()),
        error: ActiveValue::Set(c.error.clone()),
    };
    llm_call::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}
