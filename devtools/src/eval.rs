//! `soc-dev eval`: score the detections against the CrowdSec hub's tests.
//!
//! Each test's log file goes through the deployed SmartModule chain (`normalize` and
//! `filter`, the same `.wasm` the processor runs) and the processor's detector with every
//! shipped rule, fresh for each test, timed by the logs' own timestamps. Only storage and
//! transport are left out: they do not change which alerts are raised.
//!
//! Alerts are scored against `tests_index.jsonl` as sets of (attack family, source) per
//! test. A source matches an alert's group key or its source IP. An alert matching no
//! expected pair is *spurious* when the test expects no alert or its source is not one the
//! test accuses; an alert of another family against an accused source is counted apart as
//! *additional* (the hub's tests load only the scenarios under test, so they cannot say
//! whether it is right). Where the index records no overflow for a test that loads
//! scenarios (`expected_overflows: null`), the test's own `scenario.assert` names them.
//!
//! Tests that load no scenario at all are parser tests: they assert nothing about alerts.
//! An alert there is *corroborated* when a line that raised it (one naming its source) also
//! appears in a scenario test that accuses that source of that family: the hub's own label
//! for the same line. Other alerts there are *unscored*; the strict precision counts them
//! as spurious.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use soc_core::stream::chain::{Chain, ModuleRegistry};
use soc_core::stream::Record;
use soc_core::Alert;
use soc_processor::ioc::IocSet;
use soc_processor::pipeline::{detect, ProcessorStats};
use soc_processor::rules::detection::wildcard_match as wildcard;
use soc_processor::rules::detector::Detector;
use soc_processor::rules::{load_rules, Rule};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// The hub corpus: a folder with `tests_index.jsonl` and `tests/<name>/`.
    pub corpus: PathBuf,
    /// Scoring configuration (scope and family mapping).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Only tests whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Also list the alerts of every test.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub config: soc::settings::ConfigArgs,
}

#[derive(Debug, Deserialize)]
pub struct Mapping {
    supported_parsers: Vec<String>,
    enrichers: Vec<String>,
    scenario_families: Vec<ScenarioFamily>,
    rule_families: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ScenarioFamily {
    scenario: String,
    family: String,
}

/// Family of scenarios that do not describe an attack; their expectations are not scored.
const NOT_APPLICABLE: &str = "not-applicable";

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// `devtools/eval/crowdsec-hub.yaml`, compiled in.
    pub fn crowdsec_hub() -> Result<Mapping> {
        serde_norway::from_str(include_str!("../eval/crowdsec-hub.yaml"))
            .context("parsing the built-in crowdsec-hub mapping")
    }

    fn scenario_family(&self, scenario: &str) -> String {
        let name = scenario.rsplit('/').next().unwrap_or(scenario);
        self.scenario_families
            .iter()
            .find(|f| wildcard(&f.scenario, name))
            .map_or_else(|| name.to_string(), |f| f.family.clone())
    }

    fn rule_family(&self, rule_id: &str) -> String {
        self.rule_families
            .iter()
            .find(|(pat, _)| wildcard(pat, rule_id))
            .map_or_else(|| rule_id.to_string(), |(_, f)| f.clone())
    }

    fn parser_name(p: &str) -> String {
        // `./parsers/s01-parse/crowdsecurity/nginx-logs.yaml` -> `crowdsecurity/nginx-logs`
        let p = p.trim_end_matches(".yaml");
        let mut it = p.rsplit('/');
        let name = it.next().unwrap_or_default();
        match it.next() {
            Some(author) => format!("{author}/{name}"),
            None => name.to_string(),
        }
    }

    fn in_scope(&self, parsers: &[String]) -> bool {
        parsers.iter().all(|p| {
            let p = Self::parser_name(p);
            self.supported_parsers.contains(&p) || self.enrichers.iter().any(|e| wildcard(e, &p))
        })
    }
}

#[derive(Debug, Deserialize)]
struct HubTest {
    test: String,
    log_file: String,
    log_type: String,
    #[serde(default)]
    parsers: Vec<String>,
    #[serde(default)]
    scenarios: Vec<String>,
    #[serde(default)]
    overflows: Option<Vec<Overflow>>,
    /// (scenario, source) pairs from the test's `scenario.assert`, read when the index
    /// lists no overflow.
    #[serde(skip)]
    asserted: Vec<(String, String)>,
}

impl HubTest {
    fn loads_scenarios(&self) -> bool {
        self.scenarios.iter().any(|s| !s.trim().is_empty())
    }
}

/// (scenario, source) pairs a `scenario.assert` checks: `"SRC" in results[N].Overflow.
/// GetSources()` together with `results[N].Overflow.Alert.GetScenario() == "NAME"`.
fn parse_scenario_assert(text: &str) -> Vec<(String, String)> {
    let index_of = |line: &str| -> Option<usize> {
        let rest = line.split("results[").nth(1)?;
        rest.split(']').next()?.parse().ok()
    };
    let quoted = |s: &str| -> Option<String> { s.split('"').nth(1).map(str::to_string) };
    let mut sources: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut scenarios: BTreeMap<usize, String> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some(n) = index_of(line) else { continue };
        if line.ends_with(".Overflow.GetSources()") && line.starts_with('"') {
            if let Some(src) = quoted(line) {
                sources.entry(n).or_default().push(src);
            }
        } else if line.contains(".Overflow.Alert.GetScenario() ==") {
            if let Some(name) = line.rsplit_once("==").and_then(|(_, v)| quoted(v)) {
                scenarios.insert(n, name);
            }
        }
    }
    let mut out = Vec::new();
    for (n, srcs) in sources {
        if let Some(name) = scenarios.get(&n) {
            out.extend(srcs.into_iter().map(|s| (name.clone(), s)));
        }
    }
    out
}

/// The hub's labels by log line: for each line of a scenario test, the (family, source)
/// pairs that test accuses and the line names.
#[derive(Default)]
struct LineLabels(std::collections::HashMap<String, BTreeSet<(String, String)>>);

impl LineLabels {
    fn labels(&self, line: &str) -> Option<&BTreeSet<(String, String)>> {
        self.0.get(line)
    }
}

#[derive(Debug, Deserialize)]
struct Overflow {
    scenario: Option<String>,
    #[serde(default)]
    sources: Vec<String>,
}

/// What one test expected and what the pipeline raised.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub test: String,
    pub log_type: String,
    pub in_scope: bool,
    /// The test loads no scenario: it checks parsing only and asserts no alert either way.
    pub parser_only: bool,
    pub lines: usize,
    /// (family, source) pairs expected.
    pub expected: BTreeSet<(String, String)>,
    pub found: BTreeSet<(String, String)>,
    pub missed: BTreeSet<(String, String)>,
    /// (family, key) of alerts against no accused source.
    pub spurious: BTreeSet<(String, String)>,
    /// (family, key) of alerts of another family against an accused source.
    pub additional: BTreeSet<(String, String)>,
    /// (family, key) of alerts in a parser-only test that the hub labels elsewhere.
    pub corroborated: BTreeSet<(String, String)>,
    /// (family, key) of the other alerts in a parser-only test.
    pub unscored: BTreeSet<(String, String)>,
    /// Rule ids and keys of every alert raised.
    pub alerts: Vec<(String, String)>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Score {
    pub tests: usize,
    pub expected: usize,
    pub found: usize,
    pub missed: usize,
    pub spurious: usize,
    pub additional: usize,
    pub corroborated: usize,
    pub unscored: usize,
}

impl Score {
    fn add(&mut self, r: &TestResult) {
        self.tests += 1;
        self.expected += r.expected.len();
        self.found += r.found.len();
        self.missed += r.missed.len();
        self.spurious += r.spurious.len();
        self.additional += r.additional.len();
        self.corroborated += r.corroborated.len();
        self.unscored += r.unscored.len();
    }

    /// Share of expected alerts found.
    pub fn recall(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.found as f64 / self.expected as f64
        }
    }

    /// Share of raised alerts that are not spurious (additional ones count as raised, right),
    /// in tests that load scenarios.
    pub fn precision(&self) -> f64 {
        let raised = self.found + self.spurious + self.additional;
        if raised == 0 {
            1.0
        } else {
            1.0 - self.spurious as f64 / raised as f64
        }
    }

    /// Precision over every alert, those of parser-only tests included: corroborated ones
    /// count as right, unscored ones as spurious.
    pub fn strict_precision(&self) -> f64 {
        let raised =
            self.found + self.spurious + self.additional + self.corroborated + self.unscored;
        if raised == 0 {
            1.0
        } else {
            1.0 - (self.spurious + self.unscored) as f64 / raised as f64
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub tests: Vec<TestResult>,
    pub in_scope: Score,
    pub all: Score,
    pub by_log_type: BTreeMap<String, Score>,
    pub by_family: BTreeMap<String, Score>,
}

/// Feeds test logs through one compiled chain and a fresh detector per test.
pub struct Evaluator {
    chain: Chain,
    rules: Vec<Rule>,
    iocs: IocSet,
    mapping: Mapping,
}

impl Evaluator {
    pub fn new(config: &soc::settings::Settings, mapping: Mapping) -> Result<Evaluator> {
        let modules = ModuleRegistry::load(&config.assets.smartmodules()?)?;
        let settings = config.processor()?;
        let chain = modules.build_chain(&settings.chain, None)?;
        let rules = load_rules(&settings.rules, &settings.rule_overrides)?;
        let iocs = IocSet::load(&settings.indicators)?;
        Ok(Evaluator {
            chain,
            rules,
            iocs,
            mapping,
        })
    }

    /// The alerts (newest revision of each incident) a log raises.
    pub fn alerts_for(&mut self, lines: &[&str]) -> Result<Vec<Alert>> {
        // All lines carry one receive time: only years missing from syslog lines read it.
        let now = chrono::Utc::now();
        let ts = now.timestamp_millis();
        let mut detector = Detector::new(self.rules.clone()).with_indicators(self.iocs.clone());
        let stats = ProcessorStats::default();
        let mut latest: BTreeMap<uuid::Uuid, Alert> = BTreeMap::new();
        for (n, chunk) in lines.chunks(1000).enumerate() {
            let records: Vec<Record> = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| Record {
                    partition: 0,
                    offset: (n * 1000 + i) as u64,
                    timestamp_ms: ts,
                    key: None,
                    value: l.as_bytes().to_vec(),
                })
                .collect();
            let out = self.chain.process(&records)?;
            for a in detect(&mut detector, &out, now, &stats, 0) {
                latest.insert(a.id, a);
            }
        }
        let mut alerts: Vec<Alert> = latest.into_values().collect();
        alerts.sort_by(|a, b| (a.first_seen, &a.rule_id).cmp(&(b.first_seen, &b.rule_id)));
        Ok(alerts)
    }

    /// (family or `*` when the scenario is not pinned, source) pairs a test expects.
    fn expected(&self, t: &HubTest) -> BTreeSet<(String, String)> {
        let listed: Vec<(Option<&str>, &str)> = t
            .overflows
            .iter()
            .flatten()
            .flat_map(|o| {
                o.sources
                    .iter()
                    .map(|s| (o.scenario.as_deref(), s.as_str()))
            })
            .collect();
        let pairs = if listed.is_empty() {
            t.asserted
                .iter()
                .map(|(sc, s)| (Some(sc.as_str()), s.as_str()))
                .collect()
        } else {
            listed
        };
        let mut expected = BTreeSet::new();
        for (scenario, source) in pairs {
            let family = scenario.map(|s| self.mapping.scenario_family(s));
            match family.as_deref() {
                Some(NOT_APPLICABLE) => {}
                Some(f) => {
                    expected.insert((f.to_string(), source.to_string()));
                }
                None => {
                    expected.insert(("*".to_string(), source.to_string()));
                }
            }
        }
        expected
    }

    /// The hub's labels of every line of its scenario tests.
    fn line_labels(&self, tests: &[(HubTest, Vec<String>)]) -> LineLabels {
        let mut labels = LineLabels::default();
        for (t, lines) in tests.iter().filter(|(t, _)| t.loads_scenarios()) {
            let expected = self.expected(t);
            for line in lines {
                for (f, src) in expected.iter().filter(|(f, _)| f != "*") {
                    if names(line, src) {
                        labels
                            .0
                            .entry(line.clone())
                            .or_default()
                            .insert((f.clone(), src.clone()));
                    }
                }
            }
        }
        labels
    }

    fn score(
        &self,
        t: &HubTest,
        lines: &[String],
        alerts: &[Alert],
        labels: &LineLabels,
    ) -> TestResult {
        let expected = self.expected(t);
        // Expectations whose scenario is not pinned match any family on their source.
        let any_family: BTreeSet<String> = expected
            .iter()
            .filter(|(f, _)| f == "*")
            .map(|(_, s)| s.clone())
            .collect();
        let accused: BTreeSet<&str> = expected.iter().map(|(_, s)| s.as_str()).collect();
        let parser_only = !t.loads_scenarios();
        let mut found = BTreeSet::new();
        let mut spurious = BTreeSet::new();
        let mut additional = BTreeSet::new();
        let mut corroborated = BTreeSet::new();
        let mut unscored = BTreeSet::new();
        for a in alerts {
            let family = self.mapping.rule_family(&a.rule_id);
            let owned = alert_keys(a);
            let keys: Vec<&str> = owned.iter().map(String::as_str).collect();
            let hit = keys.iter().find_map(|k| {
                if expected.contains(&(family.clone(), k.to_string())) {
                    Some((family.clone(), k.to_string()))
                } else if any_family.contains(*k) {
                    Some(("*".to_string(), k.to_string()))
                } else {
                    None
                }
            });
            let pair = (family.clone(), a.group_key.clone());
            match hit {
                Some(pair) => {
                    found.insert(pair);
                }
                None if keys.iter().any(|k| accused.contains(k)) => {
                    additional.insert(pair);
                }
                None if parser_only => {
                    let labelled = keys.iter().any(|k| {
                        lines.iter().filter(|l| names(l, k)).any(|l| {
                            labels
                                .labels(l)
                                .is_some_and(|set| set.contains(&(family.clone(), k.to_string())))
                        })
                    });
                    if labelled {
                        corroborated.insert(pair);
                    } else {
                        unscored.insert(pair);
                    }
                }
                None => {
                    spurious.insert(pair);
                }
            }
        }
        let missed = expected.difference(&found).cloned().collect();
        TestResult {
            test: t.test.clone(),
            log_type: t.log_type.clone(),
            in_scope: self.mapping.in_scope(&t.parsers),
            parser_only,
            lines: lines.len(),
            expected,
            found,
            missed,
            spurious,
            additional,
            corroborated,
            unscored,
            alerts: alerts
                .iter()
                .map(|a| (a.rule_id.clone(), a.group_key.clone()))
                .collect(),
        }
    }

    /// How the scoring reads one alert of a test: an expected attack, a spurious alert, or
    /// neither (additional or unscored).
    pub fn label(&self, result: &TestResult, alert: &Alert) -> Label {
        let family = self.mapping.rule_family(&alert.rule_id);
        for k in alert_keys(alert) {
            if result.found.contains(&(family.clone(), k.to_string()))
                || result.found.contains(&("*".to_string(), k.to_string()))
            {
                return Label::Attack;
            }
        }
        let pair = (family, alert.group_key.clone());
        if result.corroborated.contains(&pair) {
            Label::Attack
        } else if result.spurious.contains(&pair) {
            Label::NotAttack
        } else {
            Label::Unscored
        }
    }

    /// Every in-scope test's alerts with their label.
    pub fn labelled_alerts(
        &mut self,
        corpus: &Path,
        only: Option<&str>,
    ) -> Result<Vec<(String, Alert, Label)>> {
        let mut out = Vec::new();
        let tests = read_tests(corpus)?;
        let labels = self.line_labels(&tests);
        for (t, lines) in tests.iter().filter(|(t, _)| selected(t, only)) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let alerts = self.alerts_for(&refs)?;
            let result = self.score(t, lines, &alerts, &labels);
            if !result.in_scope {
                continue;
            }
            for a in alerts {
                let label = self.label(&result, &a);
                out.push((t.test.clone(), a, label));
            }
        }
        Ok(out)
    }

    pub fn run(&mut self, corpus: &Path, only: Option<&str>) -> Result<Report> {
        let mut results = Vec::new();
        let tests = read_tests(corpus)?;
        let labels = self.line_labels(&tests);
        for (t, lines) in tests.iter().filter(|(t, _)| selected(t, only)) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let alerts = self.alerts_for(&refs)?;
            results.push(self.score(t, lines, &alerts, &labels));
        }
        if results.is_empty() {
            bail!(
                "no tests found in {}",
                corpus.join("tests_index.jsonl").display()
            );
        }
        Ok(summarize(results))
    }
}

/// What scoring says an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Attack,
    NotAttack,
    Unscored,
}

/// The hub's tests with their log lines (blank lines dropped).
fn read_tests(corpus: &Path) -> Result<Vec<(HubTest, Vec<String>)>> {
    let index = corpus.join("tests_index.jsonl");
    let text =
        std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut t: HubTest =
            serde_json::from_str(line).with_context(|| format!("{}:{}", index.display(), n + 1))?;
        if t.loads_scenarios() && t.overflows.as_ref().is_none_or(Vec::is_empty) {
            let assert = corpus.join("tests").join(&t.test).join("scenario.assert");
            if let Ok(text) = std::fs::read_to_string(&assert) {
                t.asserted = parse_scenario_assert(&text);
            }
        }
        let log = corpus.join("tests").join(&t.test).join(&t.log_file);
        let Ok(bytes) = std::fs::read(&log) else {
            tracing::warn!(test = %t.test, file = %log.display(), "log file missing; test skipped");
            continue;
        };
        let lines = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        out.push((t, lines));
    }
    Ok(out)
}

fn selected(t: &HubTest, only: Option<&str>) -> bool {
    only.is_none_or(|o| t.test.contains(o))
}

/// `line` names `source` as a whole token: `1.2.3.4` is named by `from 1.2.3.4:22` and
/// `[1.2.3.4]`, not by `11.2.3.4` or `1.2.3.45`.
/// What an alert can be matched on: its group key and source address, an IPv4 address
/// also in the IPv4-mapped IPv6 form some logs (and so the hub's labels) write.
fn alert_keys(a: &Alert) -> Vec<String> {
    let mut keys: Vec<String> = std::iter::once(a.group_key.clone())
        .chain(a.source_ip.clone())
        .collect();
    let mapped: Vec<String> = keys
        .iter()
        .filter(|k| k.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|k| format!("::ffff:{k}"))
        .collect();
    keys.extend(mapped);
    keys
}

fn names(line: &str, source: &str) -> bool {
    if source.is_empty() {
        return false;
    }
    line.match_indices(source).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let mut after = line[i + source.len()..].chars();
        let (next, then) = (after.next(), after.next());
        let joined_before = before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
        let joined_after = next.is_some_and(|c| c.is_ascii_alphanumeric())
            || (next == Some('.') && then.is_some_and(|c| c.is_ascii_digit()));
        !joined_before && !joined_after
    })
}

fn summarize(tests: Vec<TestResult>) -> Report {
    let mut in_scope = Score::default();
    let mut all = Score::default();
    let mut by_log_type: BTreeMap<String, Score> = BTreeMap::new();
    let mut by_family: BTreeMap<String, Score> = BTreeMap::new();
    for r in &tests {
        all.add(r);
        if r.in_scope {
            in_scope.add(r);
            by_log_type.entry(r.log_type.clone()).or_default().add(r);
            let mut fams: BTreeSet<&str> = BTreeSet::new();
            for (f, _) in r
                .expected
                .iter()
                .chain(&r.spurious)
                .chain(&r.additional)
                .chain(&r.corroborated)
                .chain(&r.unscored)
                .chain(&r.found)
            {
                fams.insert(f);
            }
            for f in fams {
                let s = by_family.entry(f.to_string()).or_default();
                s.tests += 1;
                s.expected += r.expected.iter().filter(|(x, _)| x == f).count();
                s.found += r.found.iter().filter(|(x, _)| x == f).count();
                s.missed += r.missed.iter().filter(|(x, _)| x == f).count();
                s.spurious += r.spurious.iter().filter(|(x, _)| x == f).count();
                s.additional += r.additional.iter().filter(|(x, _)| x == f).count();
                s.corroborated += r.corroborated.iter().filter(|(x, _)| x == f).count();
                s.unscored += r.unscored.iter().filter(|(x, _)| x == f).count();
            }
        }
    }
    Report {
        tests,
        in_scope,
        all,
        by_log_type,
        by_family,
    }
}

fn row(name: &str, s: &Score) -> String {
    format!(
        "{name:<24} {:>5} {:>8} {:>6} {:>6} {:>8} {:>10} {:>7} {:>8} {:>7.1}% {:>9.1}% {:>7.1}%",
        s.tests,
        s.expected,
        s.found,
        s.missed,
        s.spurious,
        s.additional,
        s.corroborated,
        s.unscored,
        100.0 * s.recall(),
        100.0 * s.precision(),
        100.0 * s.strict_precision()
    )
}

pub fn print(report: &Report, verbose: bool) {
    let header = format!(
        "{:<24} {:>5} {:>8} {:>6} {:>6} {:>8} {:>10} {:>7} {:>8} {:>8} {:>10} {:>8}",
        "",
        "tests",
        "expected",
        "found",
        "missed",
        "spurious",
        "additional",
        "corrob.",
        "unscored",
        "recall",
        "precision",
        "strict"
    );
    println!("In-scope tests by log type\n{header}");
    for (t, s) in &report.by_log_type {
        println!("{}", row(t, s));
    }
    println!("\nIn-scope tests by attack family\n{header}");
    for (f, s) in &report.by_family {
        println!("{}", row(f, s));
    }
    println!("\n{header}");
    println!("{}", row("in scope", &report.in_scope));
    println!("{}", row("all tests", &report.all));
    println!("\nMissed (in scope):");
    for r in report.tests.iter().filter(|r| r.in_scope) {
        for (f, s) in &r.missed {
            println!("  {:<36} {f} {s}", r.test);
        }
    }
    println!("\nSpurious (in scope):");
    for r in report.tests.iter().filter(|r| r.in_scope) {
        for (f, s) in &r.spurious {
            println!("  {:<36} {f} {s}", r.test);
        }
    }
    println!("\nCorroborated (in scope, parser tests; the hub labels the same line elsewhere):");
    for r in report.tests.iter().filter(|r| r.in_scope) {
        for (f, s) in &r.corroborated {
            println!("  {:<36} {f} {s}", r.test);
        }
    }
    println!("\nUnscored (in scope, parser tests; no label for these lines in the hub):");
    for r in report.tests.iter().filter(|r| r.in_scope) {
        for (f, s) in &r.unscored {
            println!("  {:<36} {f} {s}", r.test);
        }
    }
    if verbose {
        println!("\nAlerts per test:");
        for r in &report.tests {
            println!(
                "  {} [{}{}]: {:?}",
                r.test,
                r.log_type,
                if r.in_scope { ", in scope" } else { "" },
                r.alerts
            );
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mapping = match &args.mapping {
        Some(path) => Mapping::load(path)?,
        None => Mapping::crowdsec_hub()?,
    };
    let mut evaluator = Evaluator::new(&args.config.load()?, mapping)?;
    let report = evaluator.run(&args.corpus, args.only.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, args.verbose);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_asserts_name_scenario_and_source() {
        let text = r#"len(results) == 1
"81.150.104.130" in results[0].Overflow.GetSources()
results[0].Overflow.Sources["81.150.104.130"].IP == "81.150.104.130"
results[0].Overflow.Alert.GetScenario() == "crowdsecurity/http-bf-wordpress_bf"
"10.0.0.9" in results[1].Overflow.GetSources()
"#;
        assert_eq!(
            parse_scenario_assert(text),
            vec![(
                "crowdsecurity/http-bf-wordpress_bf".to_string(),
                "81.150.104.130".to_string()
            )],
            "a source without its scenario is not an expectation"
        );
    }

    #[test]
    fn sources_are_named_as_whole_tokens() {
        assert!(names("refused connect from host (1.2.3.4)", "1.2.3.4"));
        assert!(names("unknown[1.2.3.4]: SASL", "1.2.3.4"));
        assert!(names("from ::ffff:1.2.3.4 port 22", "1.2.3.4"));
        assert!(names("ends with 1.2.3.4.", "1.2.3.4"));
        assert!(!names("from 11.2.3.4 port 22", "1.2.3.4"));
        assert!(!names("from 1.2.3.45 port 22", "1.2.3.4"));
        assert!(!names("from 1.2.3.4.5", "1.2.3.4"));
        assert!(!names("anything", ""));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("ssh*bf*", "ssh-slow-bf"));
        assert!(wildcard("ssh*bf*", "ssh-bf_user-enum"));
        assert!(!wildcard("ssh*bf*", "http-bf"));
        assert!(wildcard("*-whitelist", "crowdsecurity/nextcloud-whitelist"));
        assert!(wildcard(
            "http-*-interface-probing",
            "http-sap-interface-probing"
        ));
        assert!(wildcard("exact", "exact"));
    }
}
