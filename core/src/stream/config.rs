//! Deployment files shared by both backends (`fluvio-config/`, embedded in the binary): topics in Fluvio's topic
//! YAML (`fluvio topic create --config`) and the processor's SmartModule chain.

use super::{ChainStep, DeploymentError, Result, StreamError, TopicSpec};
use crate::assets::Assets;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
struct TopicFile {
    meta: Meta,
    #[serde(default)]
    partition: Option<Partition>,
    #[serde(default)]
    retention: Option<Retention>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Partition {
    #[serde(default = "one")]
    count: u32,
    /// e.g. `2 GB`, `512 MiB`.
    #[serde(default)]
    max_size: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
struct Retention {
    time: Option<String>,
}

/// `30s`, `15m`, `12h`, `7d` -> seconds.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parse one topic file; `path` names it in errors.
pub fn parse_topic(text: &str, path: &Path) -> Result<TopicSpec> {
    let bad = |source: DeploymentError| StreamError::Deployment {
        path: path.to_path_buf(),
        source,
    };
    let f: TopicFile = serde_norway::from_str(text).map_err(|e| bad(e.into()))?;
    let retention_secs = match f.retention.and_then(|r| r.time) {
        Some(t) => {
            Some(parse_duration_secs(&t).ok_or_else(|| bad(DeploymentError::RetentionTime(t)))?)
        }
        None => None,
    };
    let max_partition_bytes = match f.partition.as_ref().and_then(|p| p.max_size.as_ref()) {
        Some(size) => Some(
            size.parse::<bytesize::ByteSize>()
                .map_err(|_| bad(DeploymentError::Size(size.clone())))?
                .as_u64(),
        ),
        None => None,
    };
    Ok(TopicSpec {
        name: f.meta.name,
        partitions: f.partition.map_or(1, |p| p.count.max(1)),
        retention_secs,
        max_partition_bytes,
    })
}

/// Every topic file in `topics/` of the deployment config.
pub fn topics_from(config: &Assets) -> Result<Vec<TopicSpec>> {
    config
        .files_with_extension("topics", &["yaml", "yml"])?
        .iter()
        .map(|f| parse_topic(&f.text(), &config.describe(&format!("topics/{}", f.name))))
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainFile {
    chain: Vec<ChainStep>,
}

/// The processor's chain from `chain.yaml` of the deployment config.
pub fn chain_from(config: &Assets) -> Result<Vec<ChainStep>> {
    let path = config.describe("chain.yaml");
    let bad = |source: DeploymentError| StreamError::Deployment {
        path: path.clone(),
        source,
    };
    let f = config
        .file("chain.yaml")?
        .ok_or_else(|| bad(DeploymentError::Missing))?;
    let chain: ChainFile = serde_norway::from_str(&f.text()).map_err(|e| bad(e.into()))?;
    Ok(chain.chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> crate::assets::Assets {
        crate::stream::shipped::deployment()
    }

    #[test]
    fn shipped_topics_parse() {
        let topics = topics_from(&config_dir()).expect("topics");
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&super::super::topics::RAW_LOGS));
        assert!(names.contains(&super::super::topics::ALERTS));
        assert!(names.contains(&super::super::topics::DEAD_LETTERS));
        assert!(topics.iter().all(|t| t.retention_secs.is_some()));
        let raw = topics
            .iter()
            .find(|t| t.name == super::super::topics::RAW_LOGS)
            .expect("raw");
        assert_eq!(raw.max_partition_bytes, Some(4_000_000_000), "`4 GB`");
        assert!(topics.iter().all(|t| t.max_partition_bytes.is_some()));
    }

    #[test]
    fn shipped_chain_parses() {
        let chain = chain_from(&config_dir()).expect("chain");
        assert_eq!(chain[0].name, "normalize");
        assert_eq!(chain[1].name, "filter");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("7d"), Some(604_800));
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("1h"), Some(3600));
        assert_eq!(parse_duration_secs("soon"), None);
        assert_eq!(parse_duration_secs("3 parsecs"), None);
    }
}
