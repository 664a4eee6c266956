//! The processor: consumes normalized events (the raw topic through the SmartModule chain),
//! runs the rules, writes alerts to the database and the `alerts` topic, and has incidents
//! triaged by an LLM off the hot path.

pub mod actions;
pub mod error;
pub mod fields;
pub mod ioc;
pub mod net;
pub mod pipeline;
pub mod publish;
pub mod response;
pub mod rules;
pub mod settings;
pub mod store;
pub mod suppress;
pub mod triage;

pub use error::{Error, Result};
pub use pipeline::run;
pub use settings::ProcessorSettings;
