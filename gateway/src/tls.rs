//! TLS for the gateway: the shared PEM loader.

pub use soc_core::tls::{server_config, TlsError};
