//! Shared by the processor's integration tests: the checkout and the deployed wasm chain.

use soc_core::stream::chain::{Chain, ModuleRegistry};
use soc_core::stream::config::chain_from_dir;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// normalize → filter, as `fluvio-config/chain.yaml` deploys it.
pub fn chain() -> Chain {
    let modules = ModuleRegistry::load_dir(&repo().join("smartmodules/dist"))
        .expect("SmartModules built (scripts/build-smartmodules.sh)");
    let steps = chain_from_dir(&repo().join("fluvio-config")).expect("chain.yaml");
    modules.build_chain(&steps, None).expect("chain compiles")
}
