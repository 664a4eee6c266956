//! Who is asking: users with roles, their dashboard sessions and API tokens, and the guard
//! that checks every request against the access rule of its route.
//!
//! Passwords are hashed with argon2id; session and token secrets are random 256-bit values
//! stored only as SHA-256 hashes (they are not guessable, so a slow hash would add nothing).

pub mod accounts;
pub mod guard;
pub mod limiter;
pub mod password;
pub mod secret;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use accounts::{AccountError, Accounts};
pub use guard::{Access, Principal};

/// What a signed-in user may do; each role may do everything the roles below it may.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads alerts and the live stream.
    Viewer,
    /// Works alerts as well.
    Analyst,
    /// Manages users and every token as well.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| format!("`{s}` is not a role (viewer, analyst, admin)"))
    }
}

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "soc_session";
/// Header that carries the session's CSRF token on every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";
