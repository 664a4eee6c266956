use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Triage,
    VerdictSource,
    Priority,
}

#[derive(DeriveIden)]
enum LlmCalls {
    Table,
    Id,
    CreatedAt,
    Provider,
    Model,
    Stage,
    Incidents,
    Attempts,
    PromptTokens,
    CompletionTokens,
    CostUsd,
    LatencyMs,
    Status,
    Error,
}

/// The triage verdict on alerts (JSON, plus its source and priority as columns to filter on)
/// and one row per model call with its tokens, cost and latency.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [
            ColumnDef::new(Alerts::Triage).text().null().to_owned(),
            ColumnDef::new(Alerts::VerdictSource)
                .string_len(16)
                .null()
                .to_owned(),
            ColumnDef::new(Alerts::Priority).integer().null().to_owned(),
        ] {
            let mut col = col;
            manager
                .alter_table(
                    Table::alter()
                        .table(Alerts::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(LlmCalls::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(LlmCalls::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LlmCalls::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LlmCalls::Provider).string().not_null())
                    .col(ColumnDef::new(LlmCalls::Model).string().not_null())
                    .col(ColumnDef::new(LlmCalls::Stage).string().not_null())
                    .col(ColumnDef::new(LlmCalls::Incidents).integer().not_null())
                    .col(ColumnDef::new(LlmCalls::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(LlmCalls::PromptTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LlmCalls::CompletionTokens)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LlmCalls::CostUsd).double().null())
                    .col(ColumnDef::new(LlmCalls::LatencyMs).big_integer().not_null())
                    .col(ColumnDef::new(LlmCalls::Status).string().not_null())
                    .col(ColumnDef::new(LlmCalls::Error).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LlmCalls::Table).to_owned())
            .await?;
        for col in [Alerts::Triage, Alerts::VerdictSource, Alerts::Priority] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alerts::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
