//! `soc keys`: the gateway's command-signing keys. Rotation makes a new active key and keeps
//! the old one trusted; a running gateway sends the new key set to every agent, signed by
//! the old key they trust. Once every agent holds it (`soc keys list`), retire the old key.

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Subcommand;
use sea_orm::TransactionTrait;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use soc_core::db::agent;
use soc_core::response::audit::{self, AuditRecord};
use soc_gateway::response::keyring;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// The signing keys, and which agents hold the current key set.
    List,
    /// Make a new active signing key; the old one stays trusted until it is retired.
    Rotate,
    /// Stop trusting a previous key. Refused while an enrolled agent has not adopted the
    /// current key set (it would be left trusting no key), unless --force.
    Retire {
        key_id: String,
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(cmd: KeysCmd, path: &Path, db: &DatabaseConnection) -> Result<()> {
    match cmd {
        KeysCmd::List => {
            let ring = keyring::load_or_create(path)?;
            println!("key set version {}", ring.version());
            for (i, k) in ring.public_keys().iter().enumerate() {
                let role = if i == 0 { "active" } else { "previous" };
                println!("  {}  {role}", k.key_id);
            }
            for a in agents(db).await? {
                let held = a.keys_version.unwrap_or(0);
                let state = if held >= ring.version() as i64 {
                    "current"
                } else {
                    "behind"
                };
                println!("agent {} on {}: version {held} ({state})", a.id, a.host);
            }
            Ok(())
        }
        KeysCmd::Rotate => {
            let old = keyring::load_or_create(path)?;
            let ring = keyring::rotate(path, Utc::now())?;
            record(
                db,
                "keys.rotated",
                ring.active().key_id(),
                serde_json::json!({ "version": ring.version(), "previous": old.active().key_id() }),
            )
            .await?;
            println!(
                "new active key {} (version {}); {} stays trusted until `soc keys retire {}`",
                ring.active().key_id(),
                ring.version(),
                old.active().key_id(),
                old.active().key_id()
            );
            println!("a running gateway sends the new key set to its agents within a second");
            Ok(())
        }
        KeysCmd::Retire { key_id, force } => {
            let ring = keyring::load(path)?;
            let behind: Vec<agent::Model> = agents(db)
                .await?
                .into_iter()
                .filter(|a| a.keys_version.unwrap_or(0) < ring.version() as i64)
                .collect();
            if !behind.is_empty() && !force {
                let names: Vec<String> = behind
                    .iter()
                    .map(|a| format!("{} on {}", a.id, a.host))
                    .collect();
                bail!(
                    "{} agent(s) do not hold key set {} yet and would trust no key after this: {}; \
                     wait until they connect, or pass --force and enroll them again",
                    behind.len(),
                    ring.version(),
                    names.join(", ")
                );
            }
            let ring = keyring::retire(path, &key_id, Utc::now())?;
            record(
                db,
                "keys.retired",
                &key_id,
                serde_json::json!({ "version": ring.version(), "forced": force && !behind.is_empty() }),
            )
            .await?;
            println!("retired {key_id}; key set version {}", ring.version());
            Ok(())
        }
    }
}

async fn agents(db: &DatabaseConnection) -> Result<Vec<agent::Model>> {
    agent::Entity::find()
        .filter(agent::Column::RevokedAt.is_null())
        .order_by_asc(agent::Column::Host)
        .all(db)
        .await
        .context("reading the agents")
}

/// Key changes go into the response audit chain beside every action.
async fn record(
    db: &DatabaseConnection,
    kind: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let txn = db.begin().await?;
    audit::lock(&txn).await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    audit::append(
        &txn,
        &AuditRecord {
            actor: format!("cli:{user}"),
            kind: kind.into(),
            subject: subject.into(),
            detail,
        },
        Utc::now(),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
