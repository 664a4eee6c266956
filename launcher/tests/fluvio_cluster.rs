//! The same pipeline on a real Fluvio cluster: topics created, SmartModules registered from
//! the built `.wasm`, the chain applied by the SPU, the alert stored and published, and the
//! processor's consumer offset committed in the cluster.
//!
//! Runs when `FLUVIO_ENDPOINT` names a cluster's SC (e.g. `127.0.0.1:9003`); otherwise it
//! reports itself skipped, with the reason, and passes.

use soc_core::stream::fluvio::FluvioStream;
use soc_core::stream::{ConsumerSpec, LogStream, StartFrom, TopicSpec};
use soc_migrations::MigratorTrait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_bruteforce_on_a_fluvio_cluster() {
    let Ok(endpoint) = std::env::var("FLUVIO_ENDPOINT") else {
        eprintln!("skipped: FLUVIO_ENDPOINT is not set (no Fluvio cluster to test against)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let stream = FluvioStream::connect(&endpoint, dir.path().join("checkpoints"))
        .await
        .expect("connect to the cluster");
    let modules = stream
        .register_smartmodules(&soc_core::stream::shipped::smartmodules())
        .await
        .expect("register smartmodules");
    assert!(modules.contains(&"normalize".to_string()) && modules.contains(&"filter".to_string()));

    // Fresh topic names so the test can run again on the same cluster.
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let raw = format!("raw-logs-{suffix}");
    let alerts = format!("alerts-{suffix}");
    for name in [&raw, &alerts] {
        stream
            .ensure_topic(&TopicSpec {
                name: name.clone(),
                partitions: 1,
                retention_secs: Some(3600),
                max_partition_bytes: None,
            })
            .await
            .expect("create topic");
    }
    let stream: Arc<dyn LogStream> = Arc::new(stream);

    let mut replay = soc_connectors::replay::ReplayConfig::new(
        root().join("../shared/corpora/crowdsec-hub/tests/ssh-bf/ssh-bf.log"),
    );
    replay.topic = raw.clone();
    let report = soc_connectors::replay::replay(stream.as_ref(), &replay)
        .await
        .expect("replay to the cluster");
    assert_eq!(report.lines, 6);

    let db = soc_core::db::connect(&format!("sqlite://{}/soc.sqlite", dir.path().display()))
        .await
        .expect("db");
    soc_migrations::Migrator::up(&db, None)
        .await
        .expect("migrate");
    let settings = soc_processor::ProcessorSettings {
        consumer_id: format!("processor-{suffix}"),
        input_topic: raw.clone(),
        alerts_topic: alerts.clone(),
        chain: soc_core::stream::config::chain_from(&soc_core::stream::shipped::deployment())
            .expect("chain"),
        // Small batches: each drain ends on a returned record, so the offset is committed.
        batch_max_records: 3,
        ..Default::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let stats = Arc::new(soc_processor::pipeline::ProcessorStats::default());
    let processor = tokio::spawn(soc_processor::run(
        settings,
        stream.clone(),
        db.clone(),
        stats.clone(),
        shutdown,
    ));

    // The alert arrives on the alerts topic...
    let mut consumer = stream
        .consumer(ConsumerSpec {
            topic: alerts.clone(),
            partition: 0,
            consumer_id: format!("test-{suffix}"),
            chain: vec![],
            start: StartFrom::Beginning,
        })
        .await
        .expect("alerts consumer");
    let mut last = serde_json::Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while last["count"] != 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert on {alerts}; last {last}"
        );
        for r in consumer
            .next_batch(100, Duration::from_secs(2))
            .await
            .expect("read alerts")
        {
            last = serde_json::from_slice(&r.value).expect("alert json");
        }
    }
    assert_eq!(last["source_ip"], "35.188.49.176");
    assert_eq!(
        stats.records.load(std::sync::atomic::Ordering::Relaxed),
        6,
        "chain ran in the SPU"
    );

    // ...and is in the database.
    use sea_orm::EntityTrait;
    let rows = soc_core::db::alert::Entity::find()
        .all(&db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].count, 6);

    // ...and the processor's offset is stored in the cluster, after the work was committed.
    let admin = fluvio::Fluvio::connect_with_config(&fluvio::FluvioClusterConfig::new(&endpoint))
        .await
        .expect("second client");
    let consumer_id = format!("processor-{suffix}");
    let mut stored = None;
    for _ in 0..50 {
        stored = admin
            .consumer_offsets()
            .await
            .expect("consumer offsets")
            .into_iter()
            .find(|o| o.consumer_id == consumer_id && o.topic == raw)
            .map(|o| o.offset);
        if stored == Some(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored,
        Some(5),
        "last of the six records, committed in the cluster"
    );

    let _ = stop.send(true);
    processor.await.expect("join").expect("processor");
}
