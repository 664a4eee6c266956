//! Shared by the processor's integration tests: the checkout and the deployed wasm chain.

use soc_core::stream::chain::{Chain, ModuleRegistry};
use soc_core::stream::config::chain_from;
use soc_core::stream::shipped;

/// normalize → filter, as `fluvio-config/chain.yaml` deploys it.
pub fn chain() -> Chain {
    let modules = ModuleRegistry::load(&shipped::smartmodules()).expect("embedded SmartModules");
    let steps = chain_from(&shipped::deployment()).expect("chain.yaml");
    modules.build_chain(&steps, None).expect("chain compiles")
}
