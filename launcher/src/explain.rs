//! `soc explain`: what the pipeline makes of log lines, step by step, in the manner of
//! `cscli explain` and `wazuh-logtest`: the event the parser built, whether each chain step
//! kept it (and which filter parameter dropped it), which rules select it, why the others
//! of its dataset do not, and the alerts the lines raise together.
//!
//! It runs the same `.wasm` chain, rules and indicator lists as `soc up`, from the same
//! configuration, so what it says is what the processor does.

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use soc_core::stream::chain::{Chain, ModuleRegistry};
use soc_core::stream::{ChainStep, Record};
use soc_processor::ioc::IocSet;
use soc_processor::rules::detection::SelectionCheck;
use soc_processor::rules::detector::Detector;
use soc_processor::rules::{load_rules, Rule};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use crate::settings::Settings;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Log lines to explain. With none, lines are read from `--file` or standard input.
    pub lines: Vec<String>,
    /// Read the lines from this file (`-` for standard input).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// The year of timestamps written without one (default: inferred from the current
    /// time, never in the future).
    #[arg(long)]
    pub year: Option<i32>,
    /// One JSON object per line, and one for the alerts, instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also say why rules of other datasets do not select a line.
    #[arg(long)]
    pub all_rules: bool,
}

/// What happened to one line.
#[derive(Debug, Serialize)]
pub struct LineReport {
    pub line: String,
    /// The event after the last step that kept it (after normalization when the first
    /// step dropped it).
    pub event: Value,
    /// Each chain step: kept or dropped, and why it dropped.
    pub steps: Vec<StepReport>,
    /// Rules that select the event, with the key they count it under.
    pub selected_by: Vec<RuleHit>,
    /// Rules of the event's dataset (all rules with `--all-rules`) that do not select it.
    pub not_selected: Vec<RuleMiss>,
    /// Rules not examined (other datasets).
    pub other_rules: usize,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub kept: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleHit {
    pub rule: String,
    /// `field=value` the rule counts under, or why it cannot count the event.
    pub key: String,
    pub threshold: u64,
    pub window_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct RuleMiss {
    pub rule: String,
    pub condition: String,
    pub selections: Vec<SelectionCheck>,
}

/// An alert the lines raise together.
#[derive(Debug, Serialize)]
pub struct AlertSummary {
    pub rule: String,
    pub key: String,
    pub count: u64,
    pub severity: String,
}

pub struct Explainer {
    /// `prefixes[i]` runs the chain's steps `0..=i`.
    prefixes: Vec<(ChainStep, Chain)>,
    rules: Vec<Rule>,
    iocs: IocSet,
}

impl Explainer {
    pub fn new(settings: &Settings) -> Result<Explainer> {
        let processor = settings.processor()?;
        let modules = ModuleRegistry::load(&settings.assets.smartmodules()?)?;
        let mut prefixes = Vec::new();
        for i in 0..processor.chain.len() {
            let chain = modules
                .build_chain(&processor.chain[..=i], None)
                .with_context(|| {
                    format!("building the chain up to `{}`", processor.chain[i].name)
                })?;
            prefixes.push((processor.chain[i].clone(), chain));
        }
        let rules = load_rules(&processor.rules, &processor.rule_overrides)?;
        let iocs = IocSet::load(&processor.indicators)?;
        Ok(Explainer {
            prefixes,
            rules,
            iocs,
        })
    }

    /// The rules it checks lines against.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Explain `lines`, received at `received_ms`, and the alerts they raise together.
    pub fn explain(
        &mut self,
        lines: &[String],
        received_ms: i64,
        year: Option<i32>,
        all_rules: bool,
    ) -> Result<(Vec<LineReport>, Vec<AlertSummary>)> {
        let records: Vec<Record> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let bytes = l.as_bytes().to_vec();
                Record {
                    partition: 0,
                    offset: i as u64,
                    timestamp_ms: received_ms,
                    key: None,
                    value: match year {
                        Some(y) => soc_core::event::with_year(bytes, y),
                        None => bytes,
                    },
                }
            })
            .collect();
        // What each prefix of the chain leaves of every line, by offset.
        let mut after: Vec<BTreeMap<u64, Value>> = Vec::new();
        for (step, chain) in &mut self.prefixes {
            let out = chain
                .process(&records)
                .with_context(|| format!("running the chain up to `{}`", step.name))?;
            after.push(
                out.into_iter()
                    .map(|r| {
                        let v = serde_json::from_slice(&r.value).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&r.value).into_owned())
                        });
                        (r.offset, v)
                    })
                    .collect(),
            );
        }
        let mut reports = Vec::new();
        let mut detector = Detector::new(self.rules.clone()).with_indicators(self.iocs.clone());
        let mut alerts: BTreeMap<uuid::Uuid, soc_core::Alert> = BTreeMap::new();
        let now = soc_core::time_from_millis(received_ms);
        for (i, line) in lines.iter().enumerate() {
            let offset = i as u64;
            let mut steps = Vec::new();
            let mut event = Value::Null;
            let mut survived = true;
            for (n, (step, _)) in self.prefixes.iter().enumerate() {
                match after[n].get(&offset) {
                    Some(v) if survived => {
                        event = v.clone();
                        steps.push(StepReport {
                            step: step.name.clone(),
                            kept: true,
                            reason: None,
                        });
                    }
                    _ if survived => {
                        survived = false;
                        steps.push(StepReport {
                            step: step.name.clone(),
                            kept: false,
                            reason: Some(drop_reason(step, &event)),
                        });
                    }
                    _ => {}
                }
            }
            let (selected_by, not_selected, other_rules) = if survived {
                for a in detector.process(&event, received_ms, now) {
                    alerts.insert(a.id, a);
                }
                self.rules_for(&event, all_rules)
            } else {
                (Vec::new(), Vec::new(), 0)
            };
            reports.push(LineReport {
                line: line.clone(),
                event,
                steps,
                selected_by,
                not_selected,
                other_rules,
            });
        }
        let summaries = alerts
            .into_values()
            .map(|a| AlertSummary {
                key: format!("{}={}", a.group_by, a.group_key),
                rule: a.rule_id,
                count: a.count,
                severity: a.severity.as_str().to_string(),
            })
            .collect();
        Ok((reports, summaries))
    }

    fn rules_for(&self, event: &Value, all: bool) -> (Vec<RuleHit>, Vec<RuleMiss>, usize) {
        let dataset = soc_processor::fields::lookup(event, "event.dataset")
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let mut hits = Vec::new();
        let mut misses = Vec::new();
        let mut others = 0;
        let matched: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.matches(event))
            .map(|r| r.id.as_str())
            .collect();
        for rule in &self.rules {
            if rule.matches(event) {
                let cover = self
                    .rules
                    .iter()
                    .find(|c| c.covers.contains(&rule.id) && matched.contains(&c.id.as_str()));
                hits.push(RuleHit {
                    rule: rule.id.clone(),
                    key: match (cover, rule.key_of(event)) {
                        (Some(c), _) => {
                            format!("not counted: {} detects the same and counts it", c.id)
                        }
                        (None, Some((field, value))) => format!("{field}={value}"),
                        (None, None) => format!("not counted: no {}", rule.group_by.join(" or ")),
                    },
                    threshold: rule.threshold,
                    window_secs: rule.window_secs,
                });
                continue;
            }
            let same_dataset = match rule.detection.required_values("event.dataset") {
                None => true,
                Some(values) => dataset
                    .as_deref()
                    .is_some_and(|d| values.iter().any(|v| v == d)),
            };
            if all || same_dataset {
                misses.push(RuleMiss {
                    rule: rule.id.clone(),
                    condition: rule.detection.condition().to_string(),
                    selections: rule.detection.explain(event),
                });
            } else {
                others += 1;
            }
        }
        (hits, misses, others)
    }
}

/// Why a chain step dropped an event: for the `filter` module, the parameter that matched.
fn drop_reason(step: &ChainStep, event: &Value) -> String {
    if step.name != "filter" {
        return format!("dropped by `{}`", step.name);
    }
    let field = |path: &str| -> Vec<String> {
        match soc_processor::fields::lookup(event, path) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    };
    for (param, path) in [
        ("drop_kinds", "event.kind"),
        ("drop_categories", "event.category"),
        ("drop_outcomes", "event.outcome"),
        ("drop_datasets", "event.dataset"),
        ("drop_actions", "event.action"),
    ] {
        let listed: Vec<&str> = step
            .params
            .get(param)
            .map(|v| v.split(',').map(str::trim).collect())
            .unwrap_or_default();
        if let Some(v) = field(path)
            .into_iter()
            .find(|v| listed.contains(&v.as_str()))
        {
            return format!("{path} is {v:?}, listed in the filter's `{param}`");
        }
    }
    "dropped by `filter`".to_string()
}

/// The fields worth a glance, in this order.
const SUMMARY_FIELDS: [&str; 14] = [
    "@timestamp",
    "event.kind",
    "event.dataset",
    "event.action",
    "event.category",
    "event.outcome",
    "event.reason",
    "event.attempts",
    "source.ip",
    "user.name",
    "service.name",
    "url.original",
    "http.response.status_code",
    "log.truncated_bytes",
];

fn print_text(reports: &[LineReport], alerts: &[AlertSummary]) {
    for (i, r) in reports.iter().enumerate() {
        println!("line {}: {}", i + 1, r.line);
        let fields: Vec<String> = SUMMARY_FIELDS
            .iter()
            .filter_map(|f| {
                soc_processor::fields::lookup(&r.event, f).map(|v| match v {
                    Value::String(s) => format!("{f}={s}"),
                    Value::Array(items) => format!(
                        "{f}={}",
                        items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    other => format!("{f}={other}"),
                })
            })
            .collect();
        if soc_processor::fields::lookup(&r.event, "event.kind").and_then(Value::as_str)
            == Some(soc_core::event::KIND_UNPARSED)
        {
            println!("  parsed:    no parser recognised the line (kept as event.kind=unparsed)");
        } else {
            println!("  parsed:    {}", fields.join("  "));
        }
        for s in &r.steps {
            match &s.reason {
                None => println!("  {:<10} kept", format!("{}:", s.step)),
                Some(why) => println!("  {:<10} dropped: {why}", format!("{}:", s.step)),
            }
        }
        if r.steps.iter().any(|s| !s.kept) {
            println!("  rules:     none (the line never reaches them)");
            println!();
            continue;
        }
        if r.selected_by.is_empty() {
            println!("  rules:     selected by none");
        }
        for h in &r.selected_by {
            match h.key.strip_prefix("not counted: ") {
                Some(why) => println!("  selected:  {} but does not count it: {why}", h.rule),
                None => println!(
                    "  selected:  {} counts it under {} ({} in {} s raise an alert)",
                    h.rule, h.key, h.threshold, h.window_secs
                ),
            }
        }
        for m in &r.not_selected {
            let failed: Vec<String> = m
                .selections
                .iter()
                .filter_map(|s| s.why_not.as_ref().map(|w| format!("`{}`: {w}", s.name)))
                .collect();
            if failed.is_empty() {
                // Every selection matched: a `not` in the condition excludes the line.
                let matched: Vec<String> = m
                    .selections
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect();
                println!(
                    "  not:       {}: {} matched, and the condition `{}` excludes that",
                    m.rule,
                    matched.join(", "),
                    m.condition
                );
            } else {
                println!("  not:       {}: {}", m.rule, failed.join("; "));
            }
        }
        if r.other_rules > 0 {
            println!(
                "  ({} rules of other datasets not shown; --all-rules shows them)",
                r.other_rules
            );
        }
        println!();
    }
    if alerts.is_empty() {
        println!("alerts: none from these lines");
    } else {
        println!("alerts from these lines together:");
        for a in alerts {
            println!(
                "  {} {} {}: {} matching",
                a.severity, a.rule, a.key, a.count
            );
        }
    }
}

fn read_lines(args: &ExplainArgs) -> Result<Vec<String>> {
    let mut lines = args.lines.clone();
    let from_stdin = args.file.as_deref() == Some(std::path::Path::new("-"))
        || (args.file.is_none() && lines.is_empty());
    if from_stdin {
        for l in std::io::stdin().lock().lines() {
            lines.push(l.context("reading standard input")?);
        }
    } else if let Some(path) = &args.file {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_string));
    }
    Ok(lines)
}

pub fn run(settings: &Settings, args: ExplainArgs) -> Result<()> {
    if let Some(y) = args.year {
        anyhow::ensure!((1970..=9999).contains(&y), "--year {y}: not a year");
    }
    let lines = read_lines(&args)?;
    let mut explainer = Explainer::new(settings)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (reports, alerts) = explainer.explain(&lines, now, args.year, args.all_rules)?;
    if args.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r)?);
        }
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "alerts": alerts }))?
        );
    } else {
        print_text(&reports, &alerts);
    }
    Ok(())
}
