//! Shared types of the SOC: the normalized event, the alert, and (with features) the stream
//! abstraction with its embedded and Fluvio backends, configuration and database entities.

pub mod alert;
pub mod event;

pub use alert::{Alert, Severity};
pub use event::Event;
