//! The history of an alert's workflow: every status, assignment and resolution change and
//! every note, with who and when. Append-only.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "alert_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub alert_id: String,
    pub at: DateTimeUtc,
    /// A user name, or `system` for the processor.
    pub actor: String,
    /// `status`, `assignee`, `resolution`, `note`, `suppressed` or `reopened`.
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub from_value: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub to_value: Option<String>,
    /// The note, or the reason given with a resolution.
    #[sea_orm(column_type = "Text", nullable)]
    pub text: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
