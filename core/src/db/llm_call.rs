use sea_orm::entity::prelude::*;

/// One call to the triage model: what it cost and how long it took.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "llm_calls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: DateTimeUtc,
    /// Profile of the server, e.g. `groq`.
    pub provider: String,
    pub model: String,
    /// `triage` or `investigation`.
    pub stage: String,
    /// Incidents answered by this call.
    pub incidents: i32,
    /// HTTP attempts, retries included.
    pub attempts: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// From the configured price table; absent when the model has no price.
    #[sea_orm(column_type = "Double", nullable)]
    pub cost_usd: Option<f64>,
    pub latency_ms: i64,
    /// `ok`, `invalid_answer`, `rate_limited`, `unreachable` or `rejected`.
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
