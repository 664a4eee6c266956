//! The `detection` block of a rule: the common subset of Sigma.
//!
//! Named selections, each a map of `field|modifier: value(s)` (all fields must match; a list
//! of values matches when any does, or every one with `|all`), a list of such maps (any map),
//! or a list of keywords searched in the message. A `condition` combines them with `and`,
//! `or`, `not`, parentheses, `1 of <pattern>`, `all of <pattern>` and `them`.
//!
//! As in Sigma, strings compare case-insensitively and plain values may use the `*` and `?`
//! wildcards; `|cased` compares exactly and `|re` is a regular expression.

use regex::Regex;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Fields a keyword list is searched in, first present wins.
const KEYWORD_FIELDS: [&str; 2] = ["message", "log.original"];

#[derive(Debug, Clone)]
pub struct Detection {
    selections: BTreeMap<String, Selection>,
    condition: Expr,
}

#[derive(Debug, Clone)]
enum Selection {
    /// Any of these maps; each map needs all its field matchers.
    Maps(Vec<Vec<FieldMatch>>),
    /// Any of these strings occurs in the message.
    Keywords(Vec<Pattern>),
}

#[derive(Debug, Clone)]
struct FieldMatch {
    path: Vec<String>,
    /// Every pattern must match (`|all`); otherwise any.
    all: bool,
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// Exact (lowercased unless `cased`).
    Eq {
        value: String,
        cased: bool,
    },
    /// A wildcard pattern (lowercased unless `cased`).
    Glob {
        pattern: Vec<char>,
        cased: bool,
    },
    Contains {
        value: String,
        cased: bool,
    },
    StartsWith {
        value: String,
        cased: bool,
    },
    EndsWith {
        value: String,
        cased: bool,
    },
    Re(Regex),
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
    /// The field is present (and not null) or absent.
    Exists(bool),
    /// `null` in Sigma: the field is absent or empty.
    Null,
    Num {
        op: NumOp,
        value: f64,
    },
}

#[derive(Debug, Clone, Copy)]
enum NumOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone)]
enum Expr {
    Sel(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `1 of` / `all of` the selections whose names match a pattern (`them`: all).
    Of {
        all: bool,
        names: Vec<String>,
    },
}

/// Why a detection block was refused, for the loader to report with the file name.
pub type ParseError = String;

impl Detection {
    /// Parse a Sigma-style `detection` mapping. `map_field` renames fields (Sigma taxonomy to
    /// ECS); it returns `None` for a field the caller cannot supply.
    pub fn parse(
        block: &Yaml,
        map_field: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Detection, ParseError> {
        let Yaml::Mapping(map) = block else {
            return Err("detection must be a mapping".into());
        };
        let mut selections = BTreeMap::new();
        let mut condition = None;
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                return Err("detection keys must be strings".into());
            };
            match name {
                "condition" => {
                    let text = match v {
                        Yaml::String(s) => s.clone(),
                        Yaml::Sequence(items) if items.len() == 1 => items[0]
                            .as_str()
                            .ok_or("condition must be a string")?
                            .to_string(),
                        _ => return Err("condition must be one string".into()),
                    };
                    condition = Some(text);
                }
                // Sigma's `timeframe` belongs to correlations; the rule's window replaces it.
                "timeframe" => {}
                _ => {
                    let sel = parse_selection(name, v, map_field)?;
                    selections.insert(name.to_string(), sel);
                }
            }
        }
        let text = condition.ok_or("detection needs a condition")?;
        let condition = parse_condition(&text, &selections)?;
        Ok(Detection {
            selections,
            condition,
        })
    }

    pub fn matches(&self, event: &Value) -> bool {
        self.eval(&self.condition, event)
    }

    /// The values `field` must equal for the detection to match at all, when the condition
    /// requires it (a selection ANDed at the top whose every alternative pins the field with
    /// plain values). The detector uses it to skip rules that cannot match an event.
    pub fn required_values(&self, field: &str) -> Option<Vec<String>> {
        let names: Vec<&String> = match &self.condition {
            Expr::Sel(n) => vec![n],
            Expr::And(items) => items
                .iter()
                .filter_map(|e| match e {
                    Expr::Sel(n) => Some(n),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        'selections: for name in names {
            let Some(Selection::Maps(maps)) = self.selections.get(name) else {
                continue;
            };
            let mut values = Vec::new();
            for m in maps {
                let Some(f) = m.iter().find(|f| !f.all && f.path.join(".") == field) else {
                    continue 'selections;
                };
                for p in &f.patterns {
                    match p {
                        Pattern::Eq {
                            value,
                            cased: false,
                        } => values.push(value.clone()),
                        _ => continue 'selections,
                    }
                }
            }
            if !values.is_empty() {
                return Some(values);
            }
        }
        None
    }

    fn eval(&self, expr: &Expr, event: &Value) -> bool {
        match expr {
            Expr::Sel(name) => self
                .selections
                .get(name)
                .is_some_and(|s| selection_matches(s, event)),
            Expr::Not(e) => !self.eval(e, event),
            Expr::And(es) => es.iter().all(|e| self.eval(e, event)),
            Expr::Or(es) => es.iter().any(|e| self.eval(e, event)),
            Expr::Of { all, names } => {
                let mut it = names
                    .iter()
                    .filter_map(|n| self.selections.get(n))
                    .map(|s| selection_matches(s, event));
                if *all {
                    it.all(|b| b)
                } else {
                    it.any(|b| b)
                }
            }
        }
    }
}

fn parse_selection(
    name: &str,
    v: &Yaml,
    map_field: &dyn Fn(&str) -> Option<String>,
) -> Result<Selection, ParseError> {
    match v {
        Yaml::Mapping(_) => Ok(Selection::Maps(vec![parse_map(name, v, map_field)?])),
        Yaml::Sequence(items) if items.iter().all(|i| matches!(i, Yaml::Mapping(_))) => {
            let maps = items
                .iter()
                .map(|i| parse_map(name, i, map_field))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Selection::Maps(maps))
        }
        Yaml::Sequence(items) => {
            let mut pats = Vec::new();
            for i in items {
                let s = scalar(i).ok_or_else(|| format!("selection `{name}`: bad keyword"))?;
                pats.push(Pattern::Contains {
                    value: s.to_lowercase(),
                    cased: false,
                });
            }
            Ok(Selection::Keywords(pats))
        }
        Yaml::String(s) => Ok(Selection::Keywords(vec![Pattern::Contains {
            value: s.to_lowercase(),
            cased: false,
        }])),
        _ => Err(format!(
            "selection `{name}` must be a mapping, a list of mappings or a list of keywords"
        )),
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_map(
    name: &str,
    v: &Yaml,
    map_field: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<FieldMatch>, ParseError> {
    let Yaml::Mapping(map) = v else {
        return Err(format!("selection `{name}` must be a mapping"));
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let key = k
            .as_str()
            .ok_or_else(|| format!("selection `{name}`: field names must be strings"))?;
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default();
        let mapped = map_field(field).ok_or_else(|| {
            format!("selection `{name}`: field `{field}` has no mapping to an event field")
        })?;
        let mods: Vec<&str> = parts.collect();
        let values: Vec<&Yaml> = match v {
            Yaml::Sequence(items) => items.iter().collect(),
            other => vec![other],
        };
        let all = mods.contains(&"all");
        let mut patterns = Vec::new();
        for val in values {
            patterns.push(
                pattern(&mods, val).map_err(|e| format!("selection `{name}`, `{key}`: {e}"))?,
            );
        }
        out.push(FieldMatch {
            path: mapped.split('.').map(str::to_string).collect(),
            all,
            patterns,
        });
    }
    Ok(out)
}

fn pattern(mods: &[&str], val: &Yaml) -> Result<Pattern, ParseError> {
    let cased = mods.contains(&"cased");
    let mut kind = None;
    for m in mods {
        match *m {
            "all" | "cased" => {}
            "contains" | "startswith" | "endswith" | "re" | "cidr" | "exists" | "lt" | "lte"
            | "gt" | "gte" => {
                if kind.replace(*m).is_some() {
                    return Err("more than one matching modifier".into());
                }
            }
            // Regex flags (Sigma `re|i`, `re|m`, `re|s`) are applied below.
            "i" | "m" | "s" if mods.contains(&"re") => {}
            other => return Err(format!("unsupported modifier `{other}`")),
        }
    }
    if matches!(val, Yaml::Null) {
        return match kind {
            None => Ok(Pattern::Null),
            Some(_) => Err("null needs no modifier".into()),
        };
    }
    let raw = scalar(val).ok_or("values must be strings, numbers or booleans")?;
    let fold = |s: &str| {
        if cased {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    Ok(match kind {
        None => {
            if raw.contains(['*', '?']) && !raw.contains('\\') {
                Pattern::Glob {
                    pattern: fold(&raw).chars().collect(),
                    cased,
                }
            } else {
                Pattern::Eq {
                    value: fold(&unescape(&raw)),
                    cased,
                }
            }
        }
        Some("contains") => Pattern::Contains {
            value: fold(&raw),
            cased,
        },
        Some("startswith") => Pattern::StartsWith {
            value: fold(&raw),
            cased,
        },
        Some("endswith") => Pattern::EndsWith {
            value: fold(&raw),
            cased,
        },
        Some("re") => {
            let mut flags = String::new();
            for f in ["i", "m", "s"] {
                if mods.contains(&f) {
                    flags.push_str(f);
                }
            }
            let src = if flags.is_empty() {
                raw
            } else {
                format!("(?{flags}){raw}")
            };
            Pattern::Re(Regex::new(&src).map_err(|e| e.to_string())?)
        }
        Some("cidr") => {
            let (net, prefix) = parse_cidr(&raw)?;
            Pattern::Cidr { net, prefix }
        }
        Some("exists") => Pattern::Exists(match raw.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err("exists takes true or false".into()),
        }),
        Some(op) => {
            let value: f64 = raw
                .parse()
                .map_err(|_| format!("`{raw}` is not a number"))?;
            let op = match op {
                "lt" => NumOp::Lt,
                "lte" => NumOp::Lte,
                "gt" => NumOp::Gt,
                _ => NumOp::Gte,
            };
            Pattern::Num { op, value }
        }
    })
}

/// Sigma escapes: `\*`, `\?` and `\\` stand for the characters themselves.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('*' | '?' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn lookup<'a>(event: &'a Value, path: &[String]) -> Option<&'a Value> {
    super::lookup_segments(event, path.iter().map(String::as_str)).filter(|v| !v.is_null())
}

fn selection_matches(sel: &Selection, event: &Value) -> bool {
    match sel {
        Selection::Maps(maps) => maps
            .iter()
            .any(|m| m.iter().all(|f| field_matches(f, event))),
        Selection::Keywords(pats) => {
            let text = KEYWORD_FIELDS
                .iter()
                .find_map(|f| super::lookup(event, f).and_then(Value::as_str));
            let Some(text) = text else { return false };
            let lower = lowercase(text);
            pats.iter().any(|p| p.matches_str(text, &lower))
        }
    }
}

fn field_matches(f: &FieldMatch, event: &Value) -> bool {
    let v = lookup(event, &f.path);
    let one = |p: &Pattern| match p {
        Pattern::Exists(want) => v.is_some() == *want,
        Pattern::Null => v.is_none_or(|v| v.as_str() == Some("")),
        _ => v.is_some_and(|v| value_matches(p, v)),
    };
    if f.all {
        return f.patterns.iter().all(one);
    }
    // The common case, a string against a list of patterns: lowercase it once, not per pattern.
    if let Some(Value::String(s)) = v {
        let lower = lowercase(s);
        return f.patterns.iter().any(|p| match p {
            Pattern::Exists(want) => *want,
            Pattern::Null => s.is_empty(),
            _ => p.matches_str(s, &lower),
        });
    }
    f.patterns.iter().any(one)
}

/// `s` lowercased, without allocating when it has no uppercase letters.
pub(crate) fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        std::borrow::Cow::Owned(s.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn value_matches(p: &Pattern, v: &Value) -> bool {
    match v {
        Value::String(s) => p.matches_str(s, &lowercase(s)),
        Value::Number(n) => {
            if let Pattern::Num { op, value } = p {
                return n.as_f64().is_some_and(|x| match op {
                    NumOp::Lt => x < *value,
                    NumOp::Lte => x <= *value,
                    NumOp::Gt => x > *value,
                    NumOp::Gte => x >= *value,
                });
            }
            let s = n.to_string();
            p.matches_str(&s, &s)
        }
        Value::Bool(b) => {
            let s = if *b { "true" } else { "false" };
            p.matches_str(s, s)
        }
        Value::Array(items) => items.iter().any(|i| value_matches(p, i)),
        _ => false,
    }
}

impl Pattern {
    /// `s` as is and lowercased (callers lowercase once per value).
    fn matches_str(&self, s: &str, lower: &str) -> bool {
        let pick = |cased: bool| if cased { s } else { lower };
        match self {
            Pattern::Eq { value, cased } => pick(*cased) == value,
            Pattern::Glob { pattern, cased } => glob(pattern, pick(*cased)),
            Pattern::Contains { value, cased } => pick(*cased).contains(value.as_str()),
            Pattern::StartsWith { value, cased } => pick(*cased).starts_with(value.as_str()),
            Pattern::EndsWith { value, cased } => pick(*cased).ends_with(value.as_str()),
            Pattern::Re(re) => re.is_match(s),
            Pattern::Cidr { net, prefix } => {
                parse_ip(s).is_some_and(|ip| in_cidr(&ip, net, *prefix))
            }
            Pattern::Num { op, value } => s.parse::<f64>().is_ok_and(|x| match op {
                NumOp::Lt => x < *value,
                NumOp::Lte => x <= *value,
                NumOp::Gt => x > *value,
                NumOp::Gte => x >= *value,
            }),
            Pattern::Exists(_) | Pattern::Null => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as dual-stack servers log clients) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An IP address as written in logs, in canonical form.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().map(canonical)
}

/// `net/prefix`, e.g. `198.51.100.0/24`.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (net, prefix) = s.split_once('/').ok_or("cidr needs a prefix length")?;
    let net = parse_ip(net).ok_or_else(|| format!("bad network `{net}`"))?;
    let prefix: u8 = prefix.parse().map_err(|_| "bad prefix length")?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("prefix /{prefix} is too long"));
    }
    Ok((net, prefix))
}

/// Does `ip` fall in `net/prefix`? IPv4-mapped IPv6 addresses count as IPv4.
pub fn in_cidr(ip: &IpAddr, net: &IpAddr, prefix: u8) -> bool {
    match (canonical(*ip), net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(a) & mask == u32::from(*b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(a) & mask == u128::from(*b) & mask
        }
        _ => false,
    }
}

/// Does `s` match `pattern`, where `*` matches any run and `?` one character?
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    glob(&chars, s)
}

/// Wildcard match (`*` any run, `?` one char), iterative with one backtrack point.
fn glob(pattern: &[char], s: &str) -> bool {
    let text: Vec<char> = s.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

// ---- conditions ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' | ' ' | '\t' | '\n' => {
                if !word.is_empty() {
                    out.push(Tok::Word(std::mem::take(&mut word)));
                }
                match c {
                    '(' => out.push(Tok::LParen),
                    ')' => out.push(Tok::RParen),
                    _ => {}
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(Tok::Word(word));
    }
    out
}

struct CondParser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    selections: &'a BTreeMap<String, Selection>,
}

fn parse_condition(text: &str, selections: &BTreeMap<String, Selection>) -> Result<Expr, String> {
    if text.contains('|') {
        return Err("aggregations in conditions (`| count()`) are not supported: use the rule's threshold, group_by and window_secs".into());
    }
    let mut p = CondParser {
        toks: tokenize(text),
        pos: 0,
        selections,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected `{:?}` in condition `{text}`",
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

impl CondParser<'_> {
    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.peek_word() == Some("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.not()?];
        while self.peek_word() == Some("and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek_word() == Some("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::RParen) {
                    return Err("missing `)` in condition".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(w)) if w == "1" || w == "all" || w == "any" => {
                self.pos += 1;
                if self.peek_word() != Some("of") {
                    return Err(format!("expected `of` after `{w}`"));
                }
                self.pos += 1;
                let target = self
                    .peek_word()
                    .ok_or("expected a selection pattern after `of`")?
                    .to_string();
                self.pos += 1;
                let names: Vec<String> = self
                    .selections
                    .keys()
                    .filter(|n| target == "them" || wildcard_match(&target, n))
                    .cloned()
                    .collect();
                if names.is_empty() {
                    return Err(format!("`{target}` names no selection"));
                }
                Ok(Expr::Of {
                    all: w == "all",
                    names,
                })
            }
            Some(Tok::Word(w)) if !matches!(w.as_str(), "and" | "or" | "not" | "of") => {
                if !self.selections.contains_key(&w) {
                    return Err(format!("condition names unknown selection `{w}`"));
                }
                self.pos += 1;
                Ok(Expr::Sel(w))
            }
            other => Err(format!("unexpected {other:?} in condition")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn det(yaml: &str) -> Detection {
        let v: Yaml = serde_yaml::from_str(yaml).expect("yaml");
        Detection::parse(&v, &|f| Some(f.to_string())).expect("detection")
    }

    fn http(path: &str, ua: &str, status: u16) -> Value {
        json!({"event": {"dataset": "http.access", "category": ["web"]},
               "url": {"original": path}, "user_agent": {"original": ua},
               "http": {"response": {"status_code": status}}, "source": {"ip": "10.1.2.3"},
               "message": format!("GET {path}")})
    }

    #[test]
    fn modifiers_match_case_insensitively() {
        let d = det("sel:\n  url.original|contains: ['UNION SELECT', '../']\ncondition: sel");
        assert!(d.matches(&http("/x?id=1 union select 1", "", 200)));
        assert!(d.matches(&http("/a/../../etc", "", 200)));
        assert!(!d.matches(&http("/index.html", "", 200)));
        let d = det("sel:\n  url.original|startswith: /wp-\n  user_agent.original|endswith: bot\ncondition: sel");
        assert!(d.matches(&http("/WP-login.php", "EvilBot", 200)));
        assert!(!d.matches(&http("/WP-login.php", "Firefox", 200)));
        let d = det("sel:\n  url.original|cased|contains: UNION\ncondition: sel");
        assert!(!d.matches(&http("/union", "", 200)));
    }

    #[test]
    fn all_requires_every_value_and_lists_are_or() {
        let d = det("sel:\n  url.original|contains|all: [select, from]\ncondition: sel");
        assert!(d.matches(&http("/q?select+x+from+y", "", 200)));
        assert!(!d.matches(&http("/q?select+x", "", 200)));
    }

    #[test]
    fn wildcards_regex_numbers_and_cidr() {
        let d = det("sel:\n  url.original: '/cgi-bin/*.sh'\ncondition: sel");
        assert!(d.matches(&http("/cgi-bin/test.sh", "", 200)));
        assert!(!d.matches(&http("/cgi-bin/test.shx", "", 200)));
        let d = det("sel:\n  url.original: '/a?c'\ncondition: sel");
        assert!(d.matches(&http("/abc", "", 200)));
        assert!(!d.matches(&http("/abbc", "", 200)));
        let d = det("sel:\n  url.original|re: '\\$\\{jndi:'\ncondition: sel");
        assert!(d.matches(&http("/${jndi:ldap://x}", "", 200)));
        let d = det("sel:\n  http.response.status_code|gte: 400\ncondition: sel");
        assert!(d.matches(&http("/", "", 404)));
        assert!(!d.matches(&http("/", "", 200)));
        let d = det("sel:\n  http.response.status_code: 404\ncondition: sel");
        assert!(d.matches(&http("/", "", 404)));
        let d = det("sel:\n  source.ip|cidr: 10.0.0.0/8\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  source.ip|cidr: 192.168.0.0/16\ncondition: sel");
        assert!(!d.matches(&http("/", "", 200)));
    }

    #[test]
    fn conditions_combine_selections() {
        let d = det(
            "sel_a:\n  url.original|contains: admin\nsel_b:\n  url.original|contains: login\nfilter:\n  user_agent.original: good\ncondition: (1 of sel_*) and not filter",
        );
        assert!(d.matches(&http("/admin", "bad", 200)));
        assert!(d.matches(&http("/login", "bad", 200)));
        assert!(!d.matches(&http("/login", "GOOD", 200)));
        assert!(!d.matches(&http("/home", "bad", 200)));
        let d = det(
            "a:\n  url.original|contains: x\nb:\n  user_agent.original|contains: y\ncondition: all of them",
        );
        assert!(d.matches(&http("/x", "y", 200)));
        assert!(!d.matches(&http("/x", "z", 200)));
        let d = det("a:\n  url.original: /a\nb:\n  url.original: /b\nc:\n  user_agent.original: u\ncondition: a or b and c");
        assert!(d.matches(&http("/a", "", 200)), "and binds tighter than or");
        assert!(!d.matches(&http("/b", "", 200)));
    }

    #[test]
    fn keywords_search_the_message_and_lists_of_maps_are_alternatives() {
        let d = det("keywords:\n  - 'GET /SECRET'\ncondition: keywords");
        assert!(d.matches(&http("/secret", "", 200)));
        let d = det("sel:\n  - url.original: /a\n  - user_agent.original: u\ncondition: sel");
        assert!(d.matches(&http("/a", "", 200)));
        assert!(d.matches(&http("/b", "U", 200)));
        assert!(!d.matches(&http("/b", "v", 200)));
    }

    #[test]
    fn null_and_exists() {
        let d = det("sel:\n  user.name: null\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  user_agent.original|exists: true\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  user.name|exists: true\ncondition: sel");
        assert!(!d.matches(&http("/", "", 200)));
    }

    #[test]
    fn bad_detections_are_refused_with_a_reason() {
        let parse = |y: &str| {
            let v: Yaml = serde_yaml::from_str(y).expect("yaml");
            Detection::parse(&v, &|f| Some(f.to_string())).expect_err("refused")
        };
        assert!(
            parse("sel:\n  a|base64offset|contains: x\ncondition: sel").contains("base64offset")
        );
        assert!(parse("sel:\n  a: x\ncondition: sel and other").contains("other"));
        assert!(parse("sel:\n  a: x\ncondition: sel | count() > 5").contains("threshold"));
        assert!(parse("sel:\n  a|re: '('\ncondition: sel").contains("regex"));
        assert!(parse("sel:\n  a: x").contains("condition"));
    }

    #[test]
    fn cidr_handles_v6_and_mapped_v4() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert!(in_cidr(&ip, &"10.0.0.0".parse().expect("net"), 8));
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        assert!(in_cidr(&ip, &"2001:db8::".parse().expect("net"), 32));
        assert!(!in_cidr(&ip, &"2001:db9::".parse().expect("net"), 32));
    }

    #[test]
    fn required_values_are_found_only_when_the_condition_needs_them() {
        let d = det("http:\n  event.dataset: [http.access, HTTP.error]\nx:\n  url.original|contains: a\ncondition: http and x");
        assert_eq!(
            d.required_values("event.dataset"),
            Some(vec!["http.access".to_string(), "http.error".to_string()])
        );
        let d = det("http:\n  event.dataset: http.access\nx:\n  url.original|contains: a\ncondition: http or x");
        assert_eq!(d.required_values("event.dataset"), None);
        let d = det("sel:\n  - event.dataset: sshd\n  - user.name: root\ncondition: sel");
        assert_eq!(d.required_values("event.dataset"), None);
        let d = det("sel:\n  event.dataset|contains: ssh\ncondition: sel");
        assert_eq!(d.required_values("event.dataset"), None);
    }
}
