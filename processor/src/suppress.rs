//! Suppressions: analysts mute a rule for one source, user or host until a time. The
//! processor withholds the matching alert updates (they are neither stored, published nor
//! triaged) and counts them on the suppression, in the batch's transaction.

use crate::Result;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use soc_core::clock::Clock;
use soc_core::db::suppression;
use soc_core::Alert;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::warn;

/// How long a new or revoked suppression may take to be applied.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The suppressions in force, read again from the database every [`REFRESH_EVERY`].
#[derive(Debug)]
pub struct Suppressions {
    db: DatabaseConnection,
    clock: Clock,
    loaded_at: Option<Instant>,
    active: Vec<suppression::Model>,
}

/// Alert updates withheld per suppression id.
pub type Hidden = HashMap<String, u64>;

impl Suppressions {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Self {
        Suppressions {
            db,
            clock,
            loaded_at: None,
            active: Vec::new(),
        }
    }

    /// Read the suppressions in force when the last read is older than [`REFRESH_EVERY`]. A
    /// failed read keeps the previous list: the batch's commit reports a database that is down.
    pub async fn refresh(&mut self, now: DateTime<Utc>) {
        if self
            .loaded_at
            .is_some_and(|t| self.clock.since(t) < REFRESH_EVERY)
        {
            return;
        }
        match self.load(now).await {
            Ok(active) => {
                self.active = active;
                self.loaded_at = Some(self.clock.now());
            }
            Err(e) => warn!(error = %e, "could not read suppressions; keeping the last list"),
        }
    }

    async fn load(&self, now: DateTime<Utc>) -> Result<Vec<suppression::Model>> {
        Ok(suppression::Entity::find()
            .filter(suppression::Column::RevokedAt.is_null())
            .filter(suppression::Column::Until.gt(now))
            .all(&self.db)
            .await?)
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Keep the alerts no suppression hides; count the others per suppression (the first
    /// that matches, so one update is counted once).
    pub fn apply(&self, alerts: Vec<Alert>, now: DateTime<Utc>) -> (Vec<Alert>, Hidden) {
        let mut hidden = Hidden::new();
        if self.active.is_empty() {
            return (alerts, hidden);
        }
        let kept = alerts
            .into_iter()
            .filter(|a| match self.active.iter().find(|s| s.hides(a, now)) {
                Some(s) => {
                    *hidden.entry(s.id.clone()).or_default() += 1;
                    false
                }
                None => true,
            })
            .collect();
        (kept, hidden)
    }
}
