use crate::rules::RuleOverride;
use serde::Deserialize;
use soc_core::assets::Assets;
use soc_core::stream::ChainStep;
use std::collections::BTreeMap;

/// Configuration of the processor role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSettings {
    /// Name under which input offsets and checkpoints are stored.
    #[serde(default = "default_consumer_id")]
    pub consumer_id: String,
    /// Topic of raw log lines.
    #[serde(default = "default_input_topic")]
    pub input_topic: String,
    /// Topic alerts are published to.
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Partitions of the input topic this instance owns (empty: all of them).
    #[serde(default)]
    pub partitions: Vec<u32>,
    /// The SmartModule chain applied to the input on consume.
    #[serde(default = "default_chain")]
    pub chain: Vec<ChainStep>,
    /// The rule files: the shipped ones unless a directory replaces them.
    #[serde(skip, default = "crate::rules::shipped_rules")]
    pub rules: Assets,
    /// The indicator lists (`*.txt`): the shipped ones unless a directory replaces them.
    #[serde(skip, default = "crate::ioc::shipped_indicators")]
    pub indicators: Assets,
    /// Per-rule tuning by rule id, e.g. `threshold` and `window_secs`.
    #[serde(default)]
    pub rule_overrides: BTreeMap<String, RuleOverride>,
    /// Largest batch read from the input at once.
    #[serde(default = "default_batch_max_records")]
    pub batch_max_records: usize,
    /// Longest wait for the first record of a batch, in milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// LLM triage of incidents.
    #[serde(default)]
    pub triage: crate::triage::TriageSettings,
    /// Times triage's batching, caching, rate limits, breaker and retries (tests run it fast).
    #[serde(skip)]
    pub clock: soc_core::clock::Clock,
}

fn default_consumer_id() -> String {
    "processor".into()
}
fn default_input_topic() -> String {
    soc_core::stream::topics::RAW_LOGS.into()
}
fn default_alerts_topic() -> String {
    soc_core::stream::topics::ALERTS.into()
}
const fn default_batch_max_records() -> usize {
    2000
}
const fn default_batch_wait_ms() -> u64 {
    200
}

/// normalize, then the noise filter (dropping nothing until configured).
pub fn default_chain() -> Vec<ChainStep> {
    vec![
        ChainStep {
            name: "normalize".into(),
            params: BTreeMap::new(),
        },
        ChainStep {
            name: "filter".into(),
            params: BTreeMap::new(),
        },
    ]
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        ProcessorSettings {
            consumer_id: default_consumer_id(),
            input_topic: default_input_topic(),
            alerts_topic: default_alerts_topic(),
            partitions: Vec::new(),
            chain: default_chain(),
            rules: crate::rules::shipped_rules(),
            indicators: crate::ioc::shipped_indicators(),
            rule_overrides: BTreeMap::new(),
            batch_max_records: default_batch_max_records(),
            batch_wait_ms: default_batch_wait_ms(),
            triage: crate::triage::TriageSettings::default(),
            clock: soc_core::clock::Clock::System,
        }
    }
}
