//! Database schema, as sea-orm migrations that run on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_alerts;
mod m20261122_000002_alert_indicators;
mod m20261122_000003_alert_triage;
mod m20261202_000004_verdict_rank;
mod m20261203_000005_accounts;
mod m20261203_000006_alert_workflow;
mod m20261203_000007_suppressions;
mod m20261203_000008_alert_revisions;
mod m20261203_000009_response;
mod m20261203_000010_agents;
mod m20261204_000011_agent_keys;
mod m20261205_000012_alert_incidents;
#[cfg(feature = "testing")]
pub mod testing;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_alerts::Migration),
            Box::new(m20261122_000002_alert_indicators::Migration),
            Box::new(m20261122_000003_alert_triage::Migration),
            Box::new(m20261202_000004_verdict_rank::Migration),
            Box::new(m20261203_000005_accounts::Migration),
            Box::new(m20261203_000006_alert_workflow::Migration),
            Box::new(m20261203_000007_suppressions::Migration),
            Box::new(m20261203_000008_alert_revisions::Migration),
            Box::new(m20261203_000009_response::Migration),
            Box::new(m20261203_000010_agents::Migration),
            Box::new(m20261204_000011_agent_keys::Migration),
            Box::new(m20261205_000012_alert_incidents::Migration),
        ]
    }
}
