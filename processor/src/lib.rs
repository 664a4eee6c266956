//! The processor: consumes normalized events (the raw topic through the SmartModule chain),
//! runs the rules, and writes alerts to the database and the `alerts` topic.

pub mod error;
pub mod ioc;
pub mod pipeline;
pub mod rules;
pub mod settings;
pub mod store;

pub use error::{Error, Result};
pub use pipeline::run;
pub use settings::ProcessorSettings;
