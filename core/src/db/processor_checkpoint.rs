//! Where each processor partition stands: written in the same transaction as its alerts
//! and rule state, so a restart resumes exactly there.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processor_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub partition: i32,
    /// Next input offset to process.
    pub next_offset: i64,
    /// JSON array of alert ids written with this checkpoint and perhaps not yet published.
    #[sea_orm(column_type = "Text")]
    pub unpublished: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
