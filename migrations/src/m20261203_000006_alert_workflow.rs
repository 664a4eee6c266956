use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Assignee,
    Resolution,
    ResolutionReason,
    WorkflowUpdatedAt,
}

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    Id,
    AlertId,
    At,
    Actor,
    Kind,
    FromValue,
    ToValue,
    Text,
}

/// The analyst's side of an alert: who owns it, how it was resolved and why, and an
/// append-only history of every change and note (`alerts.status` exists since the first
/// migration).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for col in [
            ColumnDef::new(Alerts::Assignee)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(Alerts::Resolution)
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new(Alerts::ResolutionReason)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Alerts::WorkflowUpdatedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alerts::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AlertEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AlertEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::AlertId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AlertEvents::Actor).string_len(64).not_null())
                    .col(ColumnDef::new(AlertEvents::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(AlertEvents::FromValue).text().null())
                    .col(ColumnDef::new(AlertEvents::ToValue).text().null())
                    .col(ColumnDef::new(AlertEvents::Text).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alert_events_alert")
                    .table(AlertEvents::Table)
                    .col(AlertEvents::AlertId)
                    .col(AlertEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlertEvents::Table).to_owned())
            .await?;
        for col in [
            Alerts::Assignee,
            Alerts::Resolution,
            Alerts::ResolutionReason,
            Alerts::WorkflowUpdatedAt,
        ] {
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
