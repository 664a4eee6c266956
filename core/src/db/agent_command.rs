//! A signed command for one agent, kept until the agent answers it or it expires.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_commands")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub action_id: String,
    pub agent_id: String,
    /// `apply` or `revert`.
    pub purpose: String,
    /// The `SignedCommand` as JSON, sent as is (also again after a reconnect).
    pub signed: String,
    /// `pending`, `accepted`, `applied`, `failed`, `refused`, `expired`.
    pub state: String,
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    pub reported_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
