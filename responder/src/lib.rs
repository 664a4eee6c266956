//! The host response agent: receives commands signed by the gateway, checks each against
//! the signature, its address, expiry and nonce, and the host's own guard rails, runs the
//! closed vocabulary of actions (nftables blocks the kernel expires, process kills pinned
//! by pidfd, account locks, host isolation) and reports every outcome back.

pub mod agent;
pub mod executor;
pub mod firewall;
pub mod guard;
pub mod host;
pub mod journal;
pub mod settings;
pub mod spans;

pub use executor::{Executor, ExecutorConfig, ExecutorError};
pub use firewall::{Firewall, FirewallError};
pub use guard::Guardrails;
