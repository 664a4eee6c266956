//! Response actions and their audit trail, shared by the processor (which proposes), the
//! gateway (which approves, dispatches and records results) and `soc audit verify`.

pub mod actions;
pub mod audit;

pub use actions::{ActionError, ActionState, Change, NewAction, ProposedBy};

/// Limits every action is held to, whoever approved it (the `limits` of the response
/// policy file). Agents hold limits of their own on top.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How long a block lasts; the kernel lifts it then.
    pub block_ttl_secs: u32,
    /// The longest any block may last (analysts included).
    pub max_block_ttl_secs: u32,
    /// The widest ranges a block may cover.
    pub widest_prefix_v4: u8,
    pub widest_prefix_v6: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            block_ttl_secs: 3600,
            max_block_ttl_secs: 86_400,
            widest_prefix_v4: 24,
            widest_prefix_v6: 48,
        }
    }
}
