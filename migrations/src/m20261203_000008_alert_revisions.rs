use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlertRevisions {
    Table,
    AlertId,
    Revision,
    Count,
    Severity,
    LastSeen,
    RecordedAt,
}

/// Milestones of an incident's growth, for its timeline: its first revision, each time its
/// event count doubles, and each change of severity. At most about 64 rows an incident.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AlertRevisions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AlertRevisions::AlertId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertRevisions::Revision)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertRevisions::Count)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertRevisions::Severity)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertRevisions::LastSeen)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertRevisions::RecordedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AlertRevisions::AlertId)
                            .col(AlertRevisions::Revision),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlertRevisions::Table).to_owned())
            .await
    }
}
