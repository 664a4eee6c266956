//! `soc-dev eval-lines`: labelled log lines against the parsers, the filter and the rules
//! that should count them, family by family.
//!
//! A vector file (`devtools/eval/lines/*.log`) names its family and the rules that count
//! its failures, then labels each line with the comment before it:
//!
//! ```text
//! # family: ssh
//! # rules: soc/ssh-bruteforce, soc/ssh-slow-bruteforce
//! # expect: failure source=198.51.100.7 user=alice attempts=1
//! Feb 12 14:10:21 h sshd[42]: Failed password for alice from 198.51.100.7 port 22 ssh2
//! # expect: benign
//! Feb 12 14:10:25 h sshd[42]: Accepted publickey for alice from 198.51.100.7 port 22 ssh2
//! ```
//!
//! A `failure` line is *recognised* when it passes the chain and one of the family's rules
//! selects it under its source address (a line labelled `attempts=0`, which only accompanies
//! an attempt other lines report, when it is read as a failure from that address); the user
//! read is compared with the label's. `attempts` (default
//! one, zero for a line that reports an attempt another line already did) are summed per
//! source and compared with what the family's first rule counts, run with a threshold of
//! one. A `benign` line that one of the family's rules selects is a *false positive*.
//!
//! With `--fail2ban`, the files are fail2ban's own test logs (`# failJSON: {...}` before
//! each labelled line, `"match"` and `"host"` the label), and the file's name picks the
//! rules from `devtools/eval/fail2ban.yaml`.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use soc::explain::Explainer;
use soc_processor::rules::detector::Detector;
use soc_processor::rules::Rule;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct EvalLinesArgs {
    /// Vector files or folders of them (default: the vectors shipped in devtools/eval/lines).
    pub paths: Vec<PathBuf>,
    /// The files are fail2ban test logs (its `fail2ban/tests/files/logs`).
    #[arg(long)]
    pub fail2ban: bool,
    /// List every line that was not recognised or was a false positive.
    #[arg(long)]
    pub verbose: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: soc::settings::ConfigArgs,
}

/// One labelled line.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub line: String,
    pub label: Label,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    Failure {
        source: Option<String>,
        user: Option<String>,
        attempts: u64,
    },
    Benign,
}

/// A file of labelled lines and the rules its failures feed.
#[derive(Debug, Clone)]
pub struct VectorFile {
    pub path: PathBuf,
    pub family: String,
    pub rules: Vec<String>,
    pub year: Option<i32>,
    pub lines: Vec<Labelled>,
    /// Whether the labels say how many attempts each line reports (fail2ban's do not).
    pub score_attempts: bool,
}

/// Scores of one family.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct FamilyScore {
    pub failure_lines: u64,
    pub recognised: u64,
    /// Failure lines labelled with a user, and those whose user was read right.
    pub users_labelled: u64,
    pub users_right: u64,
    pub attempts_expected: u64,
    pub attempts_counted: u64,
    /// Sources whose counted attempts differ from the expected.
    pub sources_miscounted: u64,
    pub benign_lines: u64,
    pub false_positives: u64,
}

impl FamilyScore {
    pub fn recall(&self) -> f64 {
        ratio(self.recognised, self.failure_lines)
    }

    fn add(&mut self, o: &FamilyScore) {
        self.failure_lines += o.failure_lines;
        self.recognised += o.recognised;
        self.users_labelled += o.users_labelled;
        self.users_right += o.users_right;
        self.attempts_expected += o.attempts_expected;
        self.attempts_counted += o.attempts_counted;
        self.sources_miscounted += o.sources_miscounted;
        self.benign_lines += o.benign_lines;
        self.false_positives += o.false_positives;
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub families: BTreeMap<String, FamilyScore>,
    pub total: FamilyScore,
    /// Lines that were missed or wrongly selected: (file, label, line, what happened).
    pub misses: Vec<(String, String, String, String)>,
}

/// Parse our vector format.
pub fn parse_vectors(path: &Path, text: &str) -> Result<VectorFile> {
    let mut file = VectorFile {
        path: path.to_path_buf(),
        family: String::new(),
        rules: Vec::new(),
        year: None,
        lines: Vec::new(),
        score_attempts: true,
    };
    let mut pending: Option<Label> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        if let Some(c) = raw.strip_prefix('#') {
            let c = c.trim();
            if let Some(v) = c.strip_prefix("family:") {
                file.family = v.trim().to_string();
            } else if let Some(v) = c.strip_prefix("rules:") {
                file.rules = v.split(',').map(|r| r.trim().to_string()).collect();
            } else if let Some(v) = c.strip_prefix("year:") {
                file.year = Some(v.trim().parse().with_context(at)?);
            } else if let Some(v) = c.strip_prefix("expect:") {
                pending = Some(parse_label(v).with_context(at)?);
            }
            continue;
        }
        if raw.trim().is_empty() {
            continue;
        }
        match pending.take() {
            Some(label) => file.lines.push(Labelled {
                line: raw.to_string(),
                label,
            }),
            None => bail!("{}: a line without an `# expect:` label", at()),
        }
    }
    if file.family.is_empty() || file.rules.is_empty() {
        bail!("{}: needs `# family:` and `# rules:`", path.display());
    }
    Ok(file)
}

fn parse_label(v: &str) -> Result<Label> {
    let mut words = v.split_whitespace();
    match words.next() {
        Some("benign") => Ok(Label::Benign),
        Some("failure") => {
            let (mut source, mut user, mut attempts) = (None, None, 1);
            for w in words {
                match w.split_once('=') {
                    Some(("source", s)) => source = Some(s.to_string()),
                    Some(("user", u)) => user = Some(u.to_string()),
                    Some(("attempts", a)) => attempts = a.parse()?,
                    _ => bail!("unknown label part `{w}`"),
                }
            }
            Ok(Label::Failure {
                source,
                user,
                attempts,
            })
        }
        other => bail!("label must be `failure ...` or `benign`, not {other:?}"),
    }
}

/// fail2ban's rules for each of its filters, as ours: `devtools/eval/fail2ban.yaml`.
#[derive(Debug, Deserialize)]
struct Fail2banMap {
    filters: BTreeMap<String, Vec<String>>,
}

/// Read a fail2ban test log: the line after each `# failJSON:` carries its label.
fn parse_fail2ban(path: &Path, text: &str, rules: Vec<String>) -> VectorFile {
    let mut lines = Vec::new();
    let mut pending: Option<Label> = None;
    for raw in text.lines() {
        if let Some(json) = raw.strip_prefix("# failJSON:") {
            pending = serde_json::from_str::<Value>(json.trim())
                .ok()
                .and_then(|v| {
                    // Lines tied to one of the filter's optional modes are left out.
                    if v.get("constraint").is_some() {
                        return None;
                    }
                    let matches = v.get("match").and_then(Value::as_bool)?;
                    Some(if matches {
                        Label::Failure {
                            source: v.get("host").and_then(Value::as_str).map(str::to_string),
                            user: v.get("user").and_then(Value::as_str).map(str::to_string),
                            attempts: 1,
                        }
                    } else {
                        Label::Benign
                    })
                });
            continue;
        }
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        if let Some(label) = pending.take() {
            lines.push(Labelled {
                line: raw.to_string(),
                label,
            });
        }
    }
    VectorFile {
        path: path.to_path_buf(),
        family: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rules,
        year: None,
        lines,
        score_attempts: false,
    }
}

/// The labelled files under `paths`.
pub fn read_files(paths: &[PathBuf], fail2ban: bool) -> Result<Vec<VectorFile>> {
    let map: Option<Fail2banMap> = if fail2ban {
        Some(serde_norway::from_str(include_str!(
            "../eval/fail2ban.yaml"
        ))?)
    } else {
        None
    };
    let mut files = Vec::new();
    for p in paths {
        let mut entries = if p.is_dir() {
            std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file())
                .collect::<Vec<_>>()
        } else {
            vec![p.clone()]
        };
        entries.sort();
        for f in entries {
            let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            match &map {
                Some(map) => {
                    let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                    if let Some(rules) = name.and_then(|n| map.filters.get(&n)) {
                        files.push(parse_fail2ban(&f, &text, rules.clone()));
                    }
                }
                None if f.extension().is_some_and(|e| e == "log") => {
                    files.push(parse_vectors(&f, &text)?);
                }
                None => {}
            }
        }
    }
    Ok(files)
}

/// The folder of the shipped vectors.
pub fn shipped_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/lines")
}

pub struct LineEvaluator {
    explainer: Explainer,
    rules: Vec<Rule>,
}

impl LineEvaluator {
    pub fn new(settings: &soc::settings::Settings) -> Result<Self> {
        let explainer = Explainer::new(settings)?;
        let rules = explainer.rules().to_vec();
        Ok(LineEvaluator { explainer, rules })
    }

    pub fn run(&mut self, files: &[VectorFile]) -> Result<Report> {
        let mut report = Report::default();
        for f in files {
            // A rule that is not loaded (an older rule set, a rules directory of your own)
            // counts nothing: its lines show as missed.
            for r in &f.rules {
                if !self.rules.iter().any(|x| &x.id == r) {
                    eprintln!("{}: rule `{r}` is not loaded", f.path.display());
                }
            }
            let score = self.score(f, &mut report.misses)?;
            report
                .families
                .entry(f.family.clone())
                .or_default()
                .add(&score);
            report.total.add(&score);
        }
        Ok(report)
    }

    fn score(
        &mut self,
        f: &VectorFile,
        misses: &mut Vec<(String, String, String, String)>,
    ) -> Result<FamilyScore> {
        let lines: Vec<String> = f.lines.iter().map(|l| l.line.clone()).collect();
        // Received "now" unless the file gives its year, like `soc up --replay --year`.
        let now = chrono::Utc::now().timestamp_millis();
        let (reports, _) = self.explainer.explain(&lines, now, f.year, false)?;
        let mut s = FamilyScore::default();
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        let name = f.path.display().to_string();
        for (l, r) in f.lines.iter().zip(&reports) {
            let kept = r.steps.iter().all(|s| s.kept);
            // Rules that count the line: they select it and it has their key.
            let selecting: Vec<&str> = r
                .selected_by
                .iter()
                .filter(|h| f.rules.contains(&h.rule) && !h.key.starts_with("not counted"))
                .map(|h| h.key.as_str())
                .collect();
            match &l.label {
                Label::Failure {
                    source,
                    user,
                    attempts,
                } => {
                    s.failure_lines += 1;
                    // A line that only accompanies an attempt another line reports (sshd's
                    // `Connection closed by invalid user ...`) need not be counted by a
                    // rule: it is recognised when it is read as a failure from its source.
                    let companion = *attempts == 0
                        && soc_processor::fields::lookup(&r.event, "event.outcome")
                            .and_then(Value::as_str)
                            == Some("failure")
                        && source.as_deref().is_none_or(|src| {
                            soc_processor::fields::lookup(&r.event, "source.ip")
                                .and_then(Value::as_str)
                                == Some(src)
                        });
                    let key_ok = companion
                        || match source {
                            Some(src) => selecting
                                .iter()
                                .any(|k| k.split_once('=').is_some_and(|(_, v)| v == src)),
                            None => !selecting.is_empty(),
                        };
                    let got_user = soc_processor::fields::lookup(&r.event, "user.name")
                        .and_then(Value::as_str);
                    if let Some(u) = user {
                        s.users_labelled += 1;
                        if got_user == Some(u.as_str()) {
                            s.users_right += 1;
                        }
                    }
                    if kept && key_ok {
                        s.recognised += 1;
                    } else {
                        let what = if !kept {
                            "dropped by the chain".to_string()
                        } else if selecting.is_empty() {
                            format!(
                                "no rule selects it (action {})",
                                soc_processor::fields::lookup(&r.event, "event.action")
                                    .map_or("none".to_string(), |v| v.to_string())
                            )
                        } else {
                            format!("counted under {}", selecting.join(", "))
                        };
                        misses.push((name.clone(), "failure".into(), l.line.clone(), what));
                    }
                    if let Some(src) = source.as_ref().filter(|_| f.score_attempts) {
                        *expected.entry(src.clone()).or_default() += attempts;
                    }
                }
                Label::Benign => {
                    s.benign_lines += 1;
                    if kept && !selecting.is_empty() {
                        s.false_positives += 1;
                        misses.push((
                            name.clone(),
                            "benign".into(),
                            l.line.clone(),
                            format!("selected under {}", selecting.join(", ")),
                        ));
                    }
                }
            }
        }
        // Attempts: the family's first rule, firing at one, over the file's kept events.
        let counted = self.attempts(&f.rules[0], &reports, now)?;
        for (src, exp) in &expected {
            let got = counted.get(src).copied().unwrap_or(0);
            s.attempts_expected += exp;
            s.attempts_counted += got;
            if got != *exp {
                s.sources_miscounted += 1;
                misses.push((
                    name.clone(),
                    "attempts".into(),
                    src.clone(),
                    format!("{got} counted, {exp} made"),
                ));
            }
        }
        Ok(s)
    }

    /// Attempts the rule counts per group key over the kept events, with a threshold of
    /// one and a day-long window.
    fn attempts(
        &self,
        rule_id: &str,
        reports: &[soc::explain::LineReport],
        now_ms: i64,
    ) -> Result<BTreeMap<String, u64>> {
        let Some(mut rule) = self.rules.iter().find(|r| r.id == rule_id).cloned() else {
            return Ok(BTreeMap::new());
        };
        rule.threshold = 1;
        rule.window_secs = 86_400;
        let mut detector = Detector::new(vec![rule]);
        let now = soc_core::time_from_millis(now_ms);
        let mut latest: BTreeMap<uuid::Uuid, soc_core::Alert> = BTreeMap::new();
        for r in reports.iter().filter(|r| r.steps.iter().all(|s| s.kept)) {
            for a in detector.process(&r.event, now_ms, now) {
                latest.insert(a.id, a);
            }
        }
        let mut by_key = BTreeMap::new();
        for a in latest.into_values() {
            *by_key.entry(a.group_key).or_default() += a.count;
        }
        Ok(by_key)
    }
}

fn row(name: &str, s: &FamilyScore) -> String {
    let attempts = if s.attempts_expected == 0 && s.attempts_counted == 0 {
        "attempts not labelled".to_string()
    } else {
        format!(
            "attempts {:>5}/{:<5} ({} sources off)",
            s.attempts_counted, s.attempts_expected, s.sources_miscounted
        )
    };
    format!(
        "{name:<28} {:>5}/{:<5} {:>6.1}%  users {:>4}/{:<4}  {attempts}  benign {:>4}, false positives {}",
        s.recognised,
        s.failure_lines,
        s.recall() * 100.0,
        s.users_right,
        s.users_labelled,
        s.benign_lines,
        s.false_positives
    )
}

pub fn print(report: &Report, verbose: bool) {
    println!("{:<28} recognised failure lines", "family");
    for (name, s) in &report.families {
        println!("{}", row(name, s));
    }
    println!("{}", row("total", &report.total));
    if verbose {
        for (file, label, line, what) in &report.misses {
            println!("  {label:<8} {file}: {what}\n           {line}");
        }
    }
}

pub fn run(args: EvalLinesArgs) -> Result<()> {
    let settings = args.config.load()?;
    let paths = if args.paths.is_empty() {
        vec![shipped_vectors()]
    } else {
        args.paths.clone()
    };
    let files = read_files(&paths, args.fail2ban)?;
    let mut eval = LineEvaluator::new(&settings)?;
    let report = eval.run(&files)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, args.verbose);
    }
    Ok(())
}
