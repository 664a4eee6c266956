//! The live connectors (syslog, HTTP ingest, file tail) as configured: bound before
//! anything starts, so a port in use or a bad certificate stops the start with its reason,
//! then run as stages beside the pipeline, all writing through one bounded sink.

use crate::settings::{ReadFrom, Settings};
use anyhow::{Context, Result};
use soc_connectors::http::{HttpIngest, HttpIngestConfig};
use soc_connectors::sink::{Sink, SinkConfig};
use soc_connectors::syslog::{SyslogConfig, SyslogMode, SyslogSource};
use soc_connectors::tail::{FileTail, TailConfig};
use soc_core::stream::LogStream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A stage to run: its name and its work.
pub type Stage = (
    &'static str,
    Pin<Box<dyn Future<Output = Result<()>> + Send>>,
);

/// The configured connectors, bound.
pub struct Connectors {
    syslog: Vec<SyslogSource>,
    http: Option<(HttpIngestConfig, std::net::TcpListener)>,
    tail: Option<TailConfig>,
    max_pending_bytes: usize,
}

impl Connectors {
    pub async fn bind(settings: &Settings) -> Result<Connectors> {
        let ingest = &settings.ingest;
        let mut syslog = Vec::new();
        let mut modes = Vec::new();
        if let Some(addr) = ingest.syslog.udp {
            modes.push((SyslogMode::Udp, addr));
        }
        if let Some(addr) = ingest.syslog.tcp {
            modes.push((SyslogMode::Tcp, addr));
        }
        if let Some(addr) = ingest.syslog.tls {
            let (Some(cert), Some(key)) = (&ingest.syslog.tls_cert, &ingest.syslog.tls_key) else {
                anyhow::bail!(
                    "syslog over TLS needs a certificate and key: set [ingest.syslog] tls_cert and tls_key"
                );
            };
            modes.push((
                SyslogMode::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                addr,
            ));
        }
        for (mode, addr) in modes {
            let mut config = SyslogConfig::new(mode, addr);
            config.max_line_bytes = ingest.max_line_bytes;
            config.max_connections = ingest.syslog.max_connections;
            syslog.push(
                SyslogSource::bind(config)
                    .await
                    .context("starting a syslog listener")?,
            );
        }
        let http = match ingest.http.listen {
            Some(addr) => {
                let mut config = HttpIngestConfig::new(addr, ingest.http.tokens.clone());
                config.max_body_bytes = ingest.http.max_body_bytes;
                config.max_line_bytes = ingest.max_line_bytes;
                if ingest.http.tls {
                    let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) else {
                        anyhow::bail!("[ingest.http] tls needs [tls] cert and key");
                    };
                    config.tls = Some((cert.clone(), key.clone()));
                }
                let listener =
                    HttpIngest::bind_listener(&config).context("starting HTTP ingest")?;
                Some((config, listener))
            }
            None => None,
        };
        let tail = if ingest.tail.include.is_empty() {
            None
        } else {
            let mut config = TailConfig::new(ingest.tail.include.clone());
            config.exclude = ingest.tail.exclude.clone();
            config.read_from = match ingest.tail.read_from {
                ReadFrom::Beginning => soc_connectors::tail::ReadFrom::Beginning,
                ReadFrom::End => soc_connectors::tail::ReadFrom::End,
            };
            config.poll_interval = Duration::from_millis(ingest.tail.poll_interval_ms.max(10));
            config.max_line_bytes = ingest.max_line_bytes;
            Some(config)
        };
        Ok(Connectors {
            syslog,
            http,
            tail,
            max_pending_bytes: ingest.max_pending_bytes,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.syslog.is_empty() && self.http.is_none() && self.tail.is_none()
    }

    /// What listens where, for the start-up message.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .syslog
            .iter()
            .map(|s| format!("{} on {}", s.connector().name(), s.local_addr()))
            .collect();
        if let Some((config, listener)) = &self.http {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            if let Ok(addr) = listener.local_addr() {
                out.push(format!("http ingest on {scheme}://{addr}/ingest"));
            }
        }
        if let Some(tail) = &self.tail {
            out.push(format!("file tail of {}", tail.include.join(", ")));
        }
        out
    }

    /// The stages: one per connector, and the writer they share.
    pub fn stages(
        self,
        stream: Arc<dyn LogStream>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Vec<Stage>> {
        let mut stages: Vec<Stage> = Vec::new();
        if self.is_empty() {
            return Ok(stages);
        }
        let (sink, writer) = Sink::start(
            stream.clone(),
            SinkConfig {
                max_pending_bytes: self.max_pending_bytes,
                ..SinkConfig::default()
            },
        );
        for source in self.syslog {
            let name = match source.connector() {
                soc_connectors::internal_events::Connector::SyslogUdp => "syslog udp",
                soc_connectors::internal_events::Connector::SyslogTls => "syslog tls",
                _ => "syslog tcp",
            };
            let (sink, shutdown) = (sink.clone(), shutdown.clone());
            stages.push((
                name,
                Box::pin(async move { Ok(source.run(sink, shutdown).await?) }),
            ));
        }
        if let Some((config, listener)) = self.http {
            let server = HttpIngest::new(config, listener, sink.clone(), stream.clone())?;
            let shutdown = shutdown.clone();
            stages.push((
                "http ingest",
                Box::pin(async move { Ok(server.run(shutdown).await?) }),
            ));
        }
        if let Some(config) = self.tail {
            let tail = FileTail::new(config, stream)?;
            let (sink, shutdown) = (sink.clone(), shutdown.clone());
            stages.push((
                "file tail",
                Box::pin(async move { Ok(tail.run(sink, shutdown).await?) }),
            ));
        }
        // The writer ends once every connector has let go of its handle, after the last
        // lines they read are durable.
        drop(sink);
        stages.push((
            "ingest writer",
            Box::pin(async move { writer.await.context("writing received lines") }),
        ));
        Ok(stages)
    }
}
