//! An enrolled response agent. Its credential is stored as a hash only.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub host: String,
    pub credential_hash: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub last_seen: Option<DateTimeUtc>,
    pub version: Option<String>,
    pub dry_run: bool,
    pub revoked_at: Option<DateTimeUtc>,
    /// The gateway key set's version the agent last said it holds.
    pub keys_version: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
