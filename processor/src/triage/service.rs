//! The triage queue and its worker. The processor never waits on it: alerts leave with the
//! deterministic verdict attached, are queued here, and the model's verdict follows as an
//! update. Incidents are sent several to a call within a token budget, identical ones
//! (same fingerprint) are asked once and the answer reused, and a call is only made when the
//! limiter and the circuit breaker allow it.

use super::client::{estimate_tokens, CallError, ChatClient, ChatRequest};
use super::limits::{BreakerState, CircuitBreaker, RateLimiter};
use super::prompt;
use super::settings::TriageSettings;
use super::verdict::{self, InvalidAnswer};
use soc_core::clock::Clock;
use soc_core::{Alert, Triage, VerdictSource};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};
use uuid::Uuid;

/// Verdicts kept for alerts still being updated (oldest dropped first).
const BOARD_CAPACITY: usize = 100_000;
/// Recent alerts kept as context for investigations.
const RECENT_ALERTS: usize = 500;
/// Related alerts given per investigated incident.
const RELATED_PER_INCIDENT: usize = 5;

/// Counters for health, benchmarks and tests.
#[derive(Debug, Default)]
pub struct TriageStats {
    /// Model calls (a call may take several HTTP attempts).
    pub calls: AtomicU64,
    pub http_attempts: AtomicU64,
    /// 429 and 498 answers.
    pub rate_limited: AtomicU64,
    pub failed_calls: AtomicU64,
    pub invalid_answers: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Cost in millionths of a dollar.
    pub cost_micro_usd: AtomicU64,
    pub latency_ms_total: AtomicU64,
    /// Incidents queued for the model.
    pub submitted: AtomicU64,
    /// Final verdicts by source.
    pub model_verdicts: AtomicU64,
    pub cache_verdicts: AtomicU64,
    pub fallback_verdicts: AtomicU64,
    /// Incidents that found the queue full and kept the fallback.
    pub queue_dropped: AtomicU64,
    pub breaker_opened: AtomicU64,
    /// 1 while the breaker is open (the model is not called).
    pub breaker_open: AtomicU64,
    /// Incidents waiting now.
    pub queued: AtomicU64,
}

/// A call's record, for the `llm_calls` table.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub provider: String,
    pub model: String,
    pub stage: &'static str,
    pub incidents: u32,
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: Option<f64>,
    pub latency_ms: u64,
    pub status: &'static str,
    pub error: Option<String>,
}

/// What the worker hands to the writer: an alert with a new verdict, or a call's record.
#[derive(Debug, Clone)]
pub enum Update {
    Verdict(Box<Alert>),
    Call(CallRecord),
}

#[derive(Debug)]
struct Pending {
    alert: Alert,
    /// Of the alert as submitted (computed once; the worker compares it on every pass).
    fingerprint: String,
    /// 1 = waiting for triage, 2 = waiting for investigation.
    stage: u8,
    /// Calls already spent on this incident.
    calls: u32,
    since: Instant,
    /// The stage-one verdict, once there is one.
    triaged: Option<Triage>,
}

#[derive(Default)]
struct State {
    queue: HashMap<Uuid, Pending>,
    /// Verdicts for alerts (model, cache, or a final fallback).
    board: HashMap<Uuid, Triage>,
    board_order: VecDeque<Uuid>,
    /// Alerts already submitted once (each incident is queued once).
    submitted: HashSet<Uuid>,
    submitted_order: VecDeque<Uuid>,
    /// Model verdicts by fingerprint, with when they were made.
    cache: HashMap<String, (Triage, Instant)>,
    /// Fingerprints whose representative is between triage and investigation.
    in_flight: HashSet<String>,
    /// Incidents in the call being made now.
    in_call: usize,
    recent: VecDeque<Alert>,
}

impl State {
    fn remember(&mut self, id: Uuid, t: Triage) {
        if self.board.insert(id, t).is_none() {
            self.board_order.push_back(id);
            if self.board_order.len() > BOARD_CAPACITY {
                if let Some(old) = self.board_order.pop_front() {
                    self.board.remove(&old);
                }
            }
        }
    }
}

struct Shared {
    settings: TriageSettings,
    /// Why no call is ever made (`disabled`, `no_key`); `None` when the worker runs.
    off: Option<&'static str>,
    state: Mutex<State>,
    notify: Notify,
    stats: Arc<TriageStats>,
    clock: Clock,
}

/// The processor's side of triage: attach the current verdict, submit incidents.
#[derive(Clone)]
pub struct TriageHandle {
    shared: Arc<Shared>,
}

impl TriageHandle {
    /// The handle, and the worker to run when calls can be made.
    pub fn new(
        settings: TriageSettings,
        stats: Arc<TriageStats>,
    ) -> Result<(TriageHandle, Option<TriageWorker>), super::TriageError> {
        Self::with_clock(settings, stats, Clock::System)
    }

    /// As [`TriageHandle::new`], with every wait and window timed by `clock`.
    pub fn with_clock(
        settings: TriageSettings,
        stats: Arc<TriageStats>,
        clock: Clock,
    ) -> Result<(TriageHandle, Option<TriageWorker>), super::TriageError> {
        let key = settings.resolve_api_key();
        let off = if !settings.enabled {
            Some("disabled")
        } else if settings.needs_key_and_has_none() {
            Some("no_key")
        } else {
            None
        };
        if off.is_none() {
            settings.check_base_url()?;
        }
        let client = match off {
            None => Some(ChatClient::new(&settings, key, clock)?),
            Some(_) => None,
        };
        let shared = Arc::new(Shared {
            off,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            stats,
            settings: settings.clone(),
            clock,
        });
        match off {
            Some(why) => info!(
                reason = why,
                "LLM triage off: alerts carry the deterministic verdict"
            ),
            None => info!(
                profile = settings.profile.as_str(),
                base_url = settings.base_url(),
                model = settings.model(),
                "LLM triage on"
            ),
        }
        let worker = client.map(|client| TriageWorker {
            shared: shared.clone(),
            limiter: RateLimiter::new(settings.requests_per_minute, settings.tokens_per_minute),
            breaker: CircuitBreaker::new(
                settings.breaker_failures,
                Duration::from_secs(settings.breaker_cooldown_secs),
            ),
            client,
        });
        Ok((TriageHandle { shared }, worker))
    }

    pub fn stats(&self) -> &Arc<TriageStats> {
        &self.shared.stats
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Give each alert its current verdict: the model's (or a cached one) when there is one,
    /// with the priority floor following the new counts; otherwise the fallback.
    pub fn attach(&self, alerts: &mut [Alert]) {
        let st = self.state();
        for a in alerts.iter_mut() {
            a.triage = Some(match st.board.get(&a.id) {
                Some(t) if t.source != VerdictSource::Fallback => verdict::refresh(t, a),
                Some(t) => verdict::fallback(
                    a,
                    t.reason.as_deref().unwrap_or("pending"),
                    &self.shared.settings,
                ),
                None => verdict::fallback(
                    a,
                    self.shared.off.unwrap_or("pending"),
                    &self.shared.settings,
                ),
            });
        }
    }

    /// Queue new incidents for the model and refresh the ones waiting. Never blocks on the
    /// model; a full queue keeps the least urgent incidents on the fallback.
    pub fn submit(&self, alerts: &[Alert]) {
        if self.shared.off.is_some() || alerts.is_empty() {
            return;
        }
        let capacity = self.shared.settings.queue_capacity.max(1);
        let mut st = self.state();
        let mut added = false;
        for a in alerts {
            st.recent.push_back(a.clone());
            if st.recent.len() > RECENT_ALERTS {
                st.recent.pop_front();
            }
            if let Some(p) = st.queue.get_mut(&a.id) {
                if a.revision >= p.alert.revision {
                    p.alert = a.clone();
                }
                continue;
            }
            if !st.submitted.insert(a.id) {
                continue; // already triaged (or dropped) once
            }
            st.submitted_order.push_back(a.id);
            if st.submitted_order.len() > BOARD_CAPACITY {
                if let Some(old) = st.submitted_order.pop_front() {
                    st.submitted.remove(&old);
                }
            }
            if st.queue.len() >= capacity {
                // Evict the least urgent waiting incident if the new one is more urgent.
                let new_p = verdict::rule_priority(a);
                let worst = st
                    .queue
                    .iter()
                    .filter(|(_, p)| p.stage == 1)
                    .max_by_key(|(_, p)| (verdict::rule_priority(&p.alert), p.since))
                    .map(|(id, p)| (*id, verdict::rule_priority(&p.alert)));
                match worst {
                    Some((id, p)) if p > new_p => {
                        if let Some(old) = st.queue.remove(&id) {
                            let t =
                                verdict::fallback(&old.alert, "queue_full", &self.shared.settings);
                            st.remember(id, t);
                        }
                    }
                    _ => {
                        let t = verdict::fallback(a, "queue_full", &self.shared.settings);
                        st.remember(a.id, t);
                        self.shared
                            .stats
                            .queue_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                self.shared
                    .stats
                    .queue_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            st.queue.insert(
                a.id,
                Pending {
                    alert: a.clone(),
                    fingerprint: verdict::fingerprint(a),
                    stage: 1,
                    calls: 0,
                    since: self.shared.clock.now(),
                    triaged: None,
                },
            );
            self.shared.stats.submitted.fetch_add(1, Ordering::Relaxed);
            added = true;
        }
        self.shared
            .stats
            .queued
            .store(st.queue.len() as u64, Ordering::Relaxed);
        drop(st);
        if added {
            self.shared.notify.notify_one();
        }
    }

    /// Incidents waiting for the model or in a call now; zero once every submitted
    /// incident has its final verdict.
    pub fn busy(&self) -> usize {
        let st = self.state();
        st.queue.len() + st.in_call
    }

    /// The verdict held for an alert, if any.
    pub fn verdict(&self, id: &Uuid) -> Option<Triage> {
        self.state().board.get(id).cloned()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent across a panic elsewhere; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One batch taken from the queue.
struct Batch {
    stage: u8,
    items: Vec<Pending>,
}

pub struct TriageWorker {
    shared: Arc<Shared>,
    client: ChatClient,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
}

impl TriageWorker {
    fn settings(&self) -> &TriageSettings {
        &self.shared.settings
    }

    /// Run until shutdown, handing verdicts and call records to `updates`.
    pub async fn run(
        mut self,
        updates: mpsc::UnboundedSender<Update>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Cached answers need no call; hand them out first.
            self.resolve_from_cache(&updates);
            let (waiting, oldest) = {
                let st = lock(&self.shared.state);
                let oldest = st.queue.values().map(|p| p.since).min();
                (st.queue.len(), oldest)
            };
            let Some(oldest) = oldest else {
                tokio::select! {
                    _ = self.shared.notify.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let clock = self.shared.clock;
            let now = clock.now();
            if self.breaker.state(now) == BreakerState::Open {
                let wait = self.breaker.wait(now);
                debug!(wait_ms = wait.as_millis() as u64, "circuit breaker open");
                sleep_or_shutdown(clock, wait, &mut shutdown).await;
                continue;
            }
            // Let a batch fill up, unless it is already full.
            let ready_at = oldest + Duration::from_millis(self.settings().batch_wait_ms);
            if waiting < self.settings().batch_max_incidents && ready_at > now {
                tokio::select! {
                    _ = clock.sleep(ready_at - now) => {}
                    _ = self.shared.notify.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            // Wait out request caps and `retry-after` before choosing the batch, so it is as
            // full as can be; the token budget is checked against the batch's own size.
            let wait = self.limiter.delay(clock.now(), 0);
            if !wait.is_zero() {
                debug!(
                    wait_ms = wait.as_millis() as u64,
                    waiting, "rate limit: holding the queue"
                );
                sleep_or_shutdown(clock, wait, &mut shutdown).await;
                if *shutdown.borrow() {
                    break;
                }
                self.resolve_from_cache(&updates);
            }
            let Some(batch) = self.take_batch() else {
                continue;
            };
            self.call(batch, &updates).await;
        }
        info!("triage worker stopped");
    }

    /// Stage-one incidents whose fingerprint has a fresh verdict get it without a call.
    fn resolve_from_cache(&self, updates: &mpsc::UnboundedSender<Update>) {
        let ttl = Duration::from_secs(self.settings().cache_ttl_secs);
        let mut st = lock(&self.shared.state);
        let clock = self.shared.clock;
        st.cache.retain(|_, (_, at)| clock.since(*at) < ttl);
        if st.cache.is_empty() {
            return;
        }
        let hits: Vec<(Uuid, Triage)> = st
            .queue
            .iter()
            .filter(|(_, p)| p.stage == 1)
            .filter_map(|(id, p)| {
                let (cached, _) = st.cache.get(&p.fingerprint)?;
                Some((*id, cached.clone()))
            })
            .collect();
        for (id, cached) in hits {
            if let Some(p) = st.queue.remove(&id) {
                let t = verdict::from_cache(&cached, &p.alert, self.settings());
                self.shared
                    .stats
                    .cache_verdicts
                    .fetch_add(1, Ordering::Relaxed);
                finish(&mut st, p.alert, t, updates);
            }
        }
        self.shared
            .stats
            .queued
            .store(st.queue.len() as u64, Ordering::Relaxed);
    }

    /// The most urgent incidents of one stage, one per fingerprint, within the token budget.
    fn take_batch(&self) -> Option<Batch> {
        let s = self.settings();
        let mut st = lock(&self.shared.state);
        let mut order: Vec<(u8, u8, Instant, Uuid)> = st
            .queue
            .iter()
            .filter(|(_, p)| p.stage == 2 || !st.in_flight.contains(&p.fingerprint))
            .map(|(id, p)| (verdict::rule_priority(&p.alert), 2 - p.stage, p.since, *id))
            .collect();
        order.sort();
        let stage = order.first().map(|(_, s, _, _)| 2 - s)?;
        let mut fingerprints = HashSet::new();
        let mut tokens = 0u64;
        let mut items = Vec::new();
        for (_, st_rank, _, id) in order {
            if 2 - st_rank != stage || items.len() >= s.batch_max_incidents.max(1) {
                continue;
            }
            let Some(p) = st.queue.get(&id) else { continue };
            if stage == 1 && !fingerprints.insert(p.fingerprint.clone()) {
                continue; // an identical incident is in this batch; this one gets its answer
            }
            let t = estimate_tokens(
                &prompt::incident("i00", &p.alert, s.samples_per_incident).to_string(),
            );
            if !items.is_empty() && tokens + t > s.batch_token_budget as u64 {
                continue;
            }
            tokens += t;
            if let Some(p) = st.queue.remove(&id) {
                items.push(p);
            }
        }
        self.shared
            .stats
            .queued
            .store(st.queue.len() as u64, Ordering::Relaxed);
        st.in_call = items.len();
        (!items.is_empty()).then_some(Batch { stage, items })
    }

    fn request(&self, batch: &Batch) -> (ChatRequest, Vec<String>) {
        let refs: Vec<String> = (1..=batch.items.len()).map(|i| format!("i{i}")).collect();
        let n = self.settings().samples_per_incident;
        let incidents = batch
            .items
            .iter()
            .zip(&refs)
            .map(|(p, r)| prompt::incident(r, &p.alert, n))
            .collect();
        if batch.stage == 1 {
            return (
                ChatRequest {
                    system: prompt::triage_system(),
                    user: prompt::user_message(incidents, None),
                    schema_name: "triage",
                    schema: prompt::triage_schema(),
                },
                refs,
            );
        }
        let st = lock(&self.shared.state);
        let mut related = Vec::new();
        for p in &batch.items {
            let a = &p.alert;
            related.extend(
                st.recent
                    .iter()
                    .rev()
                    .filter(|r| r.id != a.id)
                    .filter(|r| {
                        (a.source_ip.is_some() && r.source_ip == a.source_ip)
                            || (a.host_name.is_some() && r.host_name == a.host_name)
                    })
                    .take(RELATED_PER_INCIDENT)
                    .map(prompt::related),
            );
        }
        (
            ChatRequest {
                system: prompt::investigation_system(),
                user: prompt::user_message(incidents, Some(related)),
                schema_name: "investigation",
                schema: prompt::investigation_schema(),
            },
            refs,
        )
    }

    async fn call(&mut self, batch: Batch, updates: &mpsc::UnboundedSender<Update>) {
        let (req, refs) = self.request(&batch);
        let outcome = self.client.call(&mut self.limiter, &req).await;
        let stats = &self.shared.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats
            .http_attempts
            .fetch_add(outcome.attempts as u64, Ordering::Relaxed);
        stats
            .rate_limited
            .fetch_add(outcome.rate_limited as u64, Ordering::Relaxed);
        stats
            .latency_ms_total
            .fetch_add(outcome.latency.as_millis() as u64, Ordering::Relaxed);
        metrics::histogram!("soc_triage_latency_seconds").record(outcome.latency.as_secs_f64());
        let stage_name = if batch.stage == 1 {
            "triage"
        } else {
            "investigation"
        };
        let (answer, tokens) = match &outcome.result {
            Ok(a) => (Some(a), (a.prompt_tokens, a.completion_tokens)),
            Err(_) => (None, (0, 0)),
        };
        stats.prompt_tokens.fetch_add(tokens.0, Ordering::Relaxed);
        stats
            .completion_tokens
            .fetch_add(tokens.1, Ordering::Relaxed);
        let cost = self.settings().cost(tokens.0, tokens.1);
        if let Some(c) = cost {
            stats
                .cost_micro_usd
                .fetch_add((c * 1_000_000.0).round() as u64, Ordering::Relaxed);
        }
        // Parse and check the answer against the batch.
        let parsed: Result<Parsed, CallError> = match &outcome.result {
            Err(e) => Err(e.clone()),
            Ok(a) if batch.stage == 1 => verdict::parse_triage(&a.content, &refs)
                .map(Parsed::Triage)
                .map_err(invalid),
            Ok(a) => verdict::parse_investigation(&a.content, &refs)
                .map(Parsed::Investigation)
                .map_err(invalid),
        };
        let (status, error) = match &parsed {
            Ok(_) => ("ok", None),
            Err(e) => (e.status_word(), Some(e.to_string())),
        };
        let _ = updates.send(Update::Call(CallRecord {
            provider: self.settings().profile.as_str().to_string(),
            model: answer
                .map(|a| a.model.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.client.model().to_string()),
            stage: stage_name,
            incidents: batch.items.len() as u32,
            attempts: outcome.attempts,
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            cost_usd: cost,
            latency_ms: outcome.latency.as_millis() as u64,
            status,
            error: error.clone(),
        }));
        let model = answer
            .map(|a| a.model.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.client.model().to_string());
        let now = self.shared.clock.now();
        match &parsed {
            Ok(_) => {
                self.breaker.success();
                metrics::gauge!("soc_triage_breaker_open").set(0.0);
                stats.breaker_open.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                if matches!(e, CallError::BadResponse(_)) {
                    stats.invalid_answers.fetch_add(1, Ordering::Relaxed);
                }
                let before = self.breaker.times_opened;
                self.breaker.failure(now);
                if self.breaker.times_opened > before {
                    stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
                    metrics::gauge!("soc_triage_breaker_open").set(1.0);
                    stats.breaker_open.store(1, Ordering::Relaxed);
                    warn!(error = %e, "circuit breaker opened: alerts keep the fallback verdict until the model answers again");
                } else {
                    warn!(error = %e, stage = stage_name, "model call failed");
                }
            }
        }
        let max_calls = self.settings().max_attempts_per_incident.max(1);
        let mut st = lock(&self.shared.state);
        for (mut p, r) in batch.items.into_iter().zip(&refs) {
            p.calls += 1;
            let fp = p.fingerprint.clone();
            let reason = match &parsed {
                Ok(Parsed::Triage(items)) => match items.get(r) {
                    Some(item) => {
                        let t = verdict::from_triage(&p.alert, item, &model);
                        if t.needs_investigation && p.calls < max_calls {
                            // Show the triage now; the investigation follows.
                            st.remember(p.alert.id, t.clone());
                            send_verdict(&p.alert, &t, updates);
                            st.in_flight.insert(fp);
                            p.stage = 2;
                            p.triaged = Some(t);
                            p.since = self.shared.clock.now();
                            st.queue.insert(p.alert.id, p);
                        } else {
                            st.cache.insert(fp, (t.clone(), self.shared.clock.now()));
                            stats.model_verdicts.fetch_add(1, Ordering::Relaxed);
                            finish(&mut st, p.alert, t, updates);
                        }
                        continue;
                    }
                    None => "invalid_answer",
                },
                Ok(Parsed::Investigation(items)) => match (items.get(r), p.triaged.clone()) {
                    (Some(item), Some(t1)) => {
                        let t = verdict::with_investigation(t1, &p.alert, item, self.settings());
                        st.in_flight.remove(&fp);
                        st.cache.insert(fp, (t.clone(), self.shared.clock.now()));
                        stats.model_verdicts.fetch_add(1, Ordering::Relaxed);
                        finish(&mut st, p.alert, t, updates);
                        continue;
                    }
                    _ => "invalid_answer",
                },
                Err(CallError::BadResponse(_)) => "invalid_answer",
                Err(e) if e.status_word() == "rate_limited" => "rate_limited",
                Err(_) => {
                    if self.breaker.state(now) == BreakerState::Closed {
                        "unreachable"
                    } else {
                        "breaker_open"
                    }
                }
            };
            if p.calls < max_calls {
                p.since = self.shared.clock.now();
                st.queue.insert(p.alert.id, p);
                continue;
            }
            // Out of calls: a triaged incident keeps the model's triage, else the fallback.
            st.in_flight.remove(&fp);
            match p.triaged.take() {
                Some(t1) => {
                    stats.model_verdicts.fetch_add(1, Ordering::Relaxed);
                    finish(&mut st, p.alert, t1, updates);
                }
                None => {
                    let t = verdict::fallback(&p.alert, reason, self.settings());
                    stats.fallback_verdicts.fetch_add(1, Ordering::Relaxed);
                    finish(&mut st, p.alert, t, updates);
                }
            }
        }
        st.in_call = 0;
        stats.queued.store(st.queue.len() as u64, Ordering::Relaxed);
    }
}

enum Parsed {
    Triage(HashMap<String, verdict::TriageItem>),
    Investigation(HashMap<String, verdict::InvestigationItem>),
}

fn invalid(e: InvalidAnswer) -> CallError {
    CallError::BadResponse(e.0)
}

fn send_verdict(alert: &Alert, t: &Triage, updates: &mpsc::UnboundedSender<Update>) {
    let mut a = alert.clone();
    a.triage = Some(t.clone());
    let _ = updates.send(Update::Verdict(Box::new(a)));
}

/// A final verdict: held for later revisions of the alert and sent as an update.
fn finish(st: &mut State, alert: Alert, t: Triage, updates: &mpsc::UnboundedSender<Update>) {
    st.remember(alert.id, t.clone());
    send_verdict(&alert, &t, updates);
}

async fn sleep_or_shutdown(clock: Clock, d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = clock.sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}
