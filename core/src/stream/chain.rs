//! SmartModule chains run in-process by `fluvio-smartengine`, on the same `.wasm` files a
//! Fluvio cluster runs in its SPU.
//!
//! The engine has no CPU limit (its fuel is effectively unlimited), so only modules from the
//! project's own build directory are loaded.

use super::{ChainStep, Record, Result, StreamError};
use fluvio_smartengine::{
    SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig,
    DEFAULT_SMARTENGINE_VERSION,
};
use fluvio_smartmodule::dataplane::core::Encoder;
use fluvio_smartmodule::dataplane::record::Record as SmRecord;
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `.wasm` modules available to chains, by name (`normalize.wasm` is `normalize`).
#[derive(Clone)]
pub struct ModuleRegistry {
    engine: SmartEngine,
    modules: Arc<HashMap<String, Vec<u8>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for ModuleRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleRegistry")
            .field("dir", &self.dir)
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ModuleRegistry {
    /// Load every `*.wasm` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            StreamError::Config(format!(
                "cannot read SmartModule directory {}: {e} (build them with scripts/build-smartmodules.sh)",
                dir.display()
            ))
        })?;
        let mut modules = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let bytes = std::fs::read(&path)
                .map_err(|e| StreamError::Config(format!("cannot read {}: {e}", path.display())))?;
            modules.insert(name.to_string(), bytes);
        }
        Ok(ModuleRegistry {
            engine: SmartEngine::new(),
            modules: Arc::new(modules),
            dir: dir.to_path_buf(),
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
                        self.dir.display(),
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
    pub fn process(&mut self, records: Vec<Record>) -> Result<Vec<Record>> {
        let Some(chain) = self.inner.as_mut() else {
            return Ok(records);
        };
        let Some(first) = records.first() else {
            return Ok(records);
        };
        let partition = first.partition;
        let base_offset = first.offset as i64;
        let base_timestamp = first.timestamp_ms;
        let sm_records: Vec<SmRecord> = records
            .into_iter()
            .map(|r| {
                let mut sm = match r.key {
                    Some(k) => SmRecord::new_key_value(k, r.value),
                    None => SmRecord::new(r.value),
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
