//! A response action and where it stands (`proposed` … `applied`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "actions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub alert_id: Option<String>,
    pub kind: String,
    /// The address, user, host or PID acted on, as shown.
    pub target: String,
    /// The event field the target was read from (`source.ip`), or `analyst`.
    pub target_field: String,
    /// The host whose agent carries it out.
    pub target_host: String,
    /// The command's typed parameters, as JSON.
    pub params: String,
    /// `policy`, `model` or `analyst`.
    pub proposed_by: String,
    /// The rule, model or user behind the proposal.
    pub proposer: String,
    pub state: String,
    pub reason: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
