use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    IncidentId,
    SourceIp,
    GroupKey,
    LastSeen,
}

/// `alerts.incident_id`: the attacker's incident, so the alerts of several rules against one
/// source are one incident. Rows stored before are each their own incident.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .add_column(ColumnDef::new(Alerts::IncidentId).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Alerts::Table)
                    .value(Alerts::IncidentId, Expr::col(Alerts::Id))
                    .and_where(Expr::col(Alerts::IncidentId).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alerts_incident")
                    .table(Alerts::Table)
                    .col(Alerts::IncidentId)
                    .to_owned(),
            )
            .await?;
        // Finding an attacker's open incident: its newest alerts.
        manager
            .create_index(
                Index::create()
                    .name("idx_alerts_attacker_last_seen")
                    .table(Alerts::Table)
                    .col(Alerts::SourceIp)
                    .col(Alerts::GroupKey)
                    .col(Alerts::LastSeen)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_alerts_attacker_last_seen", "idx_alerts_incident"] {
            manager
                .drop_index(Index::drop().name(name).table(Alerts::Table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .drop_column(Alerts::IncidentId)
                    .to_owned(),
            )
            .await
    }
}
