//! The append-only audit log: each entry carries the SHA-256 of its content and of the entry
//! before it, and the chain's head (last sequence number and hash) is kept in its own row.
//! Editing an entry breaks its hash; removing or reordering entries breaks the links or the
//! sequence; removing the newest entries disagrees with the head. `soc audit verify` runs
//! [`verify`].
//!
//! Appends are serialised by updating the head row first, inside the caller's transaction:
//! a row lock on PostgreSQL, the database write lock on SQLite. So several processes (the
//! processor proposing, the gateway approving) append to one chain.

use crate::db::{audit_entry, audit_head};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub fn genesis() -> String {
    "0".repeat(64)
}

/// What happened, by whom, to what.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    /// E.g. `action.approved`, `response.switch`.
    pub kind: String,
    /// The id of what it happened to.
    pub subject: String,
    pub detail: serde_json::Value,
}

/// The hash of one entry given the hash before it.
pub fn entry_hash(
    prev: &str,
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different entries hash the same bytes.
    for part in [
        prev,
        &seq.to_string(),
        &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        actor,
        kind,
        subject,
        detail,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes the chain's lock for the rest of the caller's transaction. Call it first in a
/// transaction that reads before it appends: on SQLite a transaction that read first cannot
/// take the write lock once another has written, and on PostgreSQL taking locks in one
/// order avoids deadlocks.
pub async fn lock<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Seq, Expr::col(audit_head::Column::Seq))
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await
        .map(|_| ())
}

/// Appends an entry inside the caller's transaction; returns its sequence number.
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    rec: &AuditRecord,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    append_many(txn, std::slice::from_ref(rec), at).await
}

/// Appends entries in order inside the caller's transaction, with one read and two
/// writes of the head and one insert per few hundred entries; returns the last entry's
/// sequence number (the head's, when there are none).
pub async fn append_many<C: ConnectionTrait>(
    txn: &C,
    recs: &[AuditRecord],
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let n = recs.len() as i64;
    // Taking the head's lock before reading it. The increment is always bound as a 64-bit
    // integer: PostgreSQL's cached statement for this text has one parameter type.
    audit_head::Entity::update_many()
        .col_expr(
            audit_head::Column::Seq,
            Expr::col(audit_head::Column::Seq).add(n),
        )
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    let head = audit_head::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("audit_head".into()))?;
    let at = at.trunc_subsecs(3);
    let mut prev = head.hash;
    let mut rows = Vec::with_capacity(recs.len());
    for (i, rec) in recs.iter().enumerate() {
        let seq = head.seq - n + 1 + i as i64;
        let detail = rec.detail.to_string();
        let hash = entry_hash(&prev, seq, at, &rec.actor, &rec.kind, &rec.subject, &detail);
        rows.push(audit_entry::ActiveModel {
            seq: ActiveValue::Set(seq),
            at: ActiveValue::Set(at),
            actor: ActiveValue::Set(rec.actor.clone()),
            kind: ActiveValue::Set(rec.kind.clone()),
            subject: ActiveValue::Set(rec.subject.clone()),
            detail: ActiveValue::Set(detail),
            prev_hash: ActiveValue::Set(std::mem::replace(&mut prev, hash.clone())),
            hash: ActiveValue::Set(hash),
        });
    }
    // Well under every backend's limit of bound parameters per statement.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        audit_entry::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    if recs.is_empty() {
        return Ok(head.seq);
    }
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Hash, Expr::value(prev))
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    Ok(head.seq)
}

/// How the log was found tampered with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    #[error("entry {seq} was edited: its hash does not match its content")]
    Edited { seq: i64 },
    #[error("entry {expected} is missing (the next entry is {found}): entries were removed or renumbered")]
    Missing { expected: i64, found: i64 },
    #[error("entry {seq} does not follow entry {}: entries were removed or reordered", seq - 1)]
    Unlinked { seq: i64 },
    #[error("the log ends at entry {last} but its head says {head}: the newest entries were removed or the head was changed")]
    Truncated { last: i64, head: i64 },
    #[error("database: {0}")]
    Db(String),
}

/// Checks the whole chain; returns how many entries it holds.
pub async fn verify(db: &DatabaseConnection) -> Result<i64, AuditError> {
    let db_err = |e: DbErr| AuditError::Db(e.to_string());
    let mut prev = genesis();
    let mut expected = 1i64;
    const PAGE: u64 = 1000;
    loop {
        let page = audit_entry::Entity::find()
            .filter(audit_entry::Column::Seq.gte(expected))
            .order_by_asc(audit_entry::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await
            .map_err(db_err)?;
        let n = page.len();
        for e in page {
            if e.seq != expected {
                return Err(AuditError::Missing {
                    expected,
                    found: e.seq,
                });
            }
            if e.prev_hash != prev {
                return Err(AuditError::Unlinked { seq: e.seq });
            }
            let h = entry_hash(&prev, e.seq, e.at, &e.actor, &e.kind, &e.subject, &e.detail);
            if h != e.hash {
                return Err(AuditError::Edited { seq: e.seq });
            }
            prev = e.hash;
            expected += 1;
        }
        if (n as u64) < PAGE {
            break;
        }
    }
    let last = expected - 1;
    let head = audit_head::Entity::find_by_id(1)
        .one(db)
        .await
        .map_err(db_err)?;
    match head {
        Some(h) if h.seq == last && (last == 0 || h.hash == prev) => Ok(last),
        Some(h) => Err(AuditError::Truncated { last, head: h.seq }),
        None => Err(AuditError::Truncated { last, head: -1 }),
    }
}
