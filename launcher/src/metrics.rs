//! The processor's and the triage service's own counters, copied into the Prometheus
//! recorder when `/metrics` is scraped.

use soc_gateway::metrics::Sampler;
use soc_processor::pipeline::ProcessorStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The processor's and triage's counters as JSON, for `/api/stats/pipeline`.
pub fn processor_snapshot(stats: Arc<ProcessorStats>) -> soc_gateway::metrics::Snapshot {
    Box::new(move || {
        let t = &stats.triage;
        serde_json::json!({
            "processor": {
                "records": load(&stats.records),
                "invalid_records": load(&stats.invalid_records),
                "alert_updates": load(&stats.alerts),
                "suppressed": load(&stats.suppressed),
                "parse_failures": load(&stats.parse_failures),
                "lag": stats.lag.lock().map(|l| l.clone()).unwrap_or_default(),
                "partitions_ready": load(&stats.partitions_ready),
            },
            "triage": {
                "calls": load(&t.calls),
                "failed_calls": load(&t.failed_calls),
                "latency_ms_total": load(&t.latency_ms_total),
                "prompt_tokens": load(&t.prompt_tokens),
                "completion_tokens": load(&t.completion_tokens),
                "cost_usd": load(&t.cost_micro_usd) as f64 / 1e6,
                "queued": load(&t.queued),
                "breaker_opened": load(&t.breaker_opened),
                "breaker_open": load(&t.breaker_open) == 1,
                "verdicts": {
                    "model": load(&t.model_verdicts),
                    "cache": load(&t.cache_verdicts),
                    "fallback": load(&t.fallback_verdicts),
                },
            },
        })
    })
}

pub fn processor_sampler(stats: Arc<ProcessorStats>) -> Sampler {
    Box::new(move || {
        use metrics::{counter, gauge};
        counter!("soc_processor_records_total").absolute(load(&stats.records));
        counter!("soc_processor_invalid_records_total").absolute(load(&stats.invalid_records));
        counter!("soc_processor_suppressed_total").absolute(load(&stats.suppressed));
        counter!("soc_processor_stream_resets_total").absolute(load(&stats.stream_resets));
        gauge!("soc_processor_partitions_ready").set(load(&stats.partitions_ready) as f64);
        let t = &stats.triage;
        counter!("soc_triage_calls_total").absolute(load(&t.calls));
        counter!("soc_triage_http_attempts_total").absolute(load(&t.http_attempts));
        counter!("soc_triage_rate_limited_total").absolute(load(&t.rate_limited));
        counter!("soc_triage_failed_calls_total").absolute(load(&t.failed_calls));
        counter!("soc_triage_invalid_answers_total").absolute(load(&t.invalid_answers));
        counter!("soc_triage_tokens_total", "kind" => "prompt").absolute(load(&t.prompt_tokens));
        counter!("soc_triage_tokens_total", "kind" => "completion")
            .absolute(load(&t.completion_tokens));
        gauge!("soc_triage_cost_usd").set(load(&t.cost_micro_usd) as f64 / 1e6);
        counter!("soc_triage_submitted_total").absolute(load(&t.submitted));
        for (source, n) in [
            ("model", &t.model_verdicts),
            ("cache", &t.cache_verdicts),
            ("fallback", &t.fallback_verdicts),
        ] {
            counter!("soc_triage_verdicts_total", "source" => source).absolute(load(n));
        }
        counter!("soc_triage_queue_dropped_total").absolute(load(&t.queue_dropped));
        counter!("soc_triage_breaker_opened_total").absolute(load(&t.breaker_opened));
        gauge!("soc_triage_queue_depth").set(load(&t.queued) as f64);
    })
}
