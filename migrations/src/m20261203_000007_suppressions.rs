use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Suppressions {
    Table,
    Id,
    RuleId,
    Field,
    Value,
    Until,
    Reason,
    CreatedBy,
    CreatedAt,
    RevokedBy,
    RevokedAt,
    Hidden,
    LastHiddenAt,
}

/// Muting a rule for one source, user or host until a time. Rows are never deleted: a
/// revoked or expired suppression stays as the record of what it hid.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Suppressions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Suppressions::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::RuleId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::Field)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::Value)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::Until)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Suppressions::Reason).text().not_null())
                    .col(
                        ColumnDef::new(Suppressions::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::RevokedBy)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Suppressions::Hidden)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Suppressions::LastHiddenAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_suppressions_until")
                    .table(Suppressions::Table)
                    .col(Suppressions::Until)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Suppressions::Table).to_owned())
            .await
    }
}
