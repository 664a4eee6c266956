use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    /// JSON array of ATT&CK technique ids.
    #[sea_orm(column_type = "Text")]
    pub mitre: String,
    pub group_by: String,
    pub group_key: String,
    pub source_ip: Option<String>,
    pub host_name: Option<String>,
    pub count: i64,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
    /// JSON array of sample events.
    #[sea_orm(column_type = "Text")]
    pub evidence: String,
    pub revision: i64,
    /// JSON array of the indicators of compromise matched.
    #[sea_orm(column_type = "Text")]
    pub indicators: String,
    /// The attacker's incident the alert belongs to (`Alert::incident_id`).
    pub incident_id: Option<String>,
    /// `new`, `acknowledged`, `investigating` or `resolved`; set by analysts, reopened by
    /// the processor when a resolved incident gets new events.
    pub status: String,
    pub assignee: Option<String>,
    /// `true_positive`, `false_positive` or `benign`, once resolved.
    pub resolution: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolution_reason: Option<String>,
    pub workflow_updated_at: Option<DateTimeUtc>,
    /// JSON of the triage verdict (`soc_core::Triage`).
    #[sea_orm(column_type = "Text", nullable)]
    pub triage: Option<String>,
    /// `model`, `cache` or `fallback`: which path produced the stored verdict.
    pub verdict_source: Option<String>,
    /// 1 (highest) to 5.
    pub priority: Option<i32>,
    /// `Triage::rank` of the stored verdict: a write replaces it only with a higher one.
    pub verdict_rank: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
