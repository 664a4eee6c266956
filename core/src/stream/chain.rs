//! SmartModule chains run in-process by `fluvio-smartengine`, on the same `.wasm` files a
//! Fluvio cluster runs in its SPU.
//!
//! The engine has no CPU limit (its fuel is effectively unlimited), so only modules from the
//! project's own build directory are loaded.

use super::{ChainStep, Record, Result, StreamError};
use crate::assets::Assets;
use fluvio_smartengine::{
    SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig,
    DEFAULT_SMARTENGINE_VERSION,
};
use fluvio_smartmodule::dataplane::core::Encoder;
use fluvio_smartmodule::dataplane::record::Record as SmRecord;
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use std::collections::HashMap;
use std::sync::Arc;

/// The `.wasm` modules available to chains, by name (`normalize.wasm` is `normalize`).
#[derive(Clone)]
pub struct ModuleRegistry {
    engine: SmartEngine,
    modules: Arc<HashMap<String, Vec<u8>>>,
    origin: String,
}

impl std::fmt::Debug for ModuleRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleRegistry")
            .field("origin", &self.origin)
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ModuleRegistry {
    /// Load every `*.wasm` of `modules`, named after its file stem.
    pub fn load(modules: &Assets) -> Result<Self> {
        let loaded: HashMap<String, Vec<u8>> = modules
            .files_with_extension("", &["wasm"])?
            .into_iter()
            .map(|f| (f.stem().to_string(), f.data.into_owned()))
            .collect();
        if loaded.is_empty() {
            return Err(StreamError::NoModules(modules.origin()));
        }
        Ok(ModuleRegistry {
            engine: SmartEngine::new(),
            modules: Arc::new(loaded),
            origin: modules.origin(),
        })
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.modules.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn wasm(&self, name: &str) -> Option<&[u8]> {
        self.modules.get(name).map(Vec::as_slice)
    }

    /// Compile a chain (about 0.3 s a module): build once per consumer and reuse it.
    pub fn build_chain(&self, steps: &[ChainStep], memory_limit: Option<usize>) -> Result<Chain> {
        if steps.is_empty() {
            return Ok(Chain { inner: None });
        }
        let mut builder = SmartModuleChainBuilder::default();
        if let Some(limit) = memory_limit {
            builder.set_store_memory_limit(limit);
        }
        for step in steps {
            let bytes = self
                .modules
                .get(&step.name)
                .ok_or_else(|| StreamError::SmartModule {
                    name: step.name.clone(),
                    reason: format!(
                        "not found in {} (have: {})",
                        self.origin,
                        self.names().join(", ")
                    ),
                })?;
            let mut config = SmartModuleConfig::builder();
            config.smartmodule_names(vec![step.name.clone()]);
            for (k, v) in &step.params {
                config.param(k.clone(), v.clone());
            }
            let config = config.build().map_err(|e| StreamError::SmartModule {
                name: step.name.clone(),
                reason: e.to_string(),
            })?;
            builder.add_smart_module(config, bytes.clone());
        }
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let inner = builder
            .initialize(&self.engine)
            .map_err(|e| StreamError::SmartModule {
                name: names.join(","),
                reason: format!("{e:#}"),
            })?;
        Ok(Chain { inner: Some(inner) })
    }
}

/// A compiled chain with its own wasm store: one per consumer, used from one thread at a time.
pub struct Chain {
    inner: Option<SmartModuleChainInstance>,
}

impl Chain {
    /// Run records through the chain. Output records keep their source offset and timestamp.
    /// The records are left to the caller, which can run them again (or part of them)
    /// when the chain fails.
    pub fn process(&mut self, records: &[Record]) -> Result<Vec<Record>> {
        let Some(chain) = self.inner.as_mut() else {
            return Ok(records.to_vec());
        };
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let partition = first.partition;
        let base_offset = first.offset as i64;
        let base_timestamp = first.timestamp_ms;
        let sm_records: Vec<SmRecord> = records
            .iter()
            .map(|r| {
                let mut sm = match &r.key {
                    Some(k) => SmRecord::new_key_value(k.clone(), r.value.clone()),
                    None => SmRecord::new(r.value.clone()),
                };
                sm.preamble.set_offset_delta(r.offset as i64 - base_offset);
                sm.preamble
                    .set_timestamp_delta(r.timestamp_ms - base_timestamp);
                sm
            })
            .collect();
        let err = |reason: String| StreamError::SmartModule {
            name: "chain".to_string(),
            reason,
        };
        let mut raw = Vec::new();
        sm_records
            .encode(&mut raw, DEFAULT_SMARTENGINE_VERSION)
            .map_err(|e| err(e.to_string()))?;
        let input = SmartModuleInput::new(raw, base_offset, base_timestamp);
        let output = chain.process(input).map_err(|e| err(format!("{e:#}")))?;
        if let Some(e) = output.error {
            return Err(err(format!("{e:?}")));
        }
        Ok(output
            .successes
            .into_iter()
            .map(|r| Record {
                partition,
                offset: (base_offset + r.preamble.offset_delta()) as u64,
                timestamp_ms: base_timestamp + r.preamble.get_timestamp_delta(),
                key: r.key.map(|k| k.as_ref().to_vec()),
                value: r.value.as_ref().to_vec(),
            })
            .collect())
    }
}
