use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    VerdictRank,
    VerdictSource,
}

/// `alerts.verdict_rank`: `Triage::rank` of the stored verdict, so the store keeps the winner
/// by comparing one number instead of restating which verdict wins in SQL.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .add_column(ColumnDef::new(Alerts::VerdictRank).big_integer().null())
                    .to_owned(),
            )
            .await?;
        // Verdicts stored before the column existed: a model or cached one ranks as a stage-1
        // model verdict from the epoch (any later model verdict replaces it, no fallback
        // does); a fallback ranks lowest.
        manager
            .exec_stmt(
                Query::update()
                    .table(Alerts::Table)
                    .value(Alerts::VerdictRank, Expr::val(1_i64 << 50 | 1_i64 << 47))
                    .and_where(Expr::col(Alerts::VerdictSource).is_in(["model", "cache"]))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Alerts::Table)
                    .value(Alerts::VerdictRank, Expr::val(0_i64))
                    .and_where(Expr::col(Alerts::VerdictSource).eq("fallback"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .drop_column(Alerts::VerdictRank)
                    .to_owned(),
            )
            .await
    }
}
