//! Shared types of the SOC: the normalized event, the alert, and (with features) the stream
//! abstraction with its embedded and Fluvio backends, and the database entities.

pub mod alert;
pub mod event;
pub mod triage;

#[cfg(feature = "assets")]
pub mod assets;
#[cfg(feature = "clock")]
pub mod clock;
#[cfg(feature = "command")]
pub mod command;
#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "response")]
pub mod response;
#[cfg(feature = "stream")]
pub mod stream;
#[cfg(feature = "tls")]
pub mod tls;

pub use alert::{time_from_millis, Alert, Severity};
pub use event::Event;
pub use triage::{ActionKind, ActionStatus, ProposedAction, Triage, Verdict, VerdictSource};
