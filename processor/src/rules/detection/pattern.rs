//! One value test of a selection: equality, wildcards, substrings, regular expressions,
//! networks, presence and numeric comparisons, with Sigma's modifiers.

use crate::fields::lowercase;
use crate::net::{parse_cidr, parse_ip, CidrError};
use ipnet::IpNet;
use regex::Regex;
use serde_json::Value;
use serde_norway::Value as Yaml;
use wildmatch::WildMatch;

/// Why a value or its modifiers were refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PatternError {
    #[error("more than one matching modifier")]
    TwoMatchModifiers,
    #[error("unsupported modifier `{0}`")]
    UnsupportedModifier(String),
    #[error("null needs no modifier")]
    NullWithModifier,
    #[error("values must be strings, numbers or booleans")]
    NotAScalar,
    #[error(transparent)]
    Regex(#[from] regex::Error),
    #[error(transparent)]
    Cidr(#[from] CidrError),
    #[error("exists takes true or false")]
    ExistsNotBool,
    #[error("`{0}` is not a number")]
    NotANumber(String),
}

#[derive(Debug, Clone)]
pub(super) enum Pattern {
    /// Exact (lowercased unless `cased`).
    Eq {
        value: String,
        cased: bool,
    },
    /// A wildcard pattern (lowercased unless `cased`).
    Glob {
        pattern: WildMatch,
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
    Cidr(IpNet),
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
pub(super) enum NumOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

pub(super) fn pattern(mods: &[&str], val: &Yaml) -> Result<Pattern, PatternError> {
    let cased = mods.contains(&"cased");
    let mut kind = None;
    for m in mods {
        match *m {
            "all" | "cased" => {}
            "contains" | "startswith" | "endswith" | "re" | "cidr" | "exists" | "lt" | "lte"
            | "gt" | "gte" => {
                if kind.replace(*m).is_some() {
                    return Err(PatternError::TwoMatchModifiers);
                }
            }
            // Regex flags (Sigma `re|i`, `re|m`, `re|s`) are applied below.
            "i" | "m" | "s" if mods.contains(&"re") => {}
            other => return Err(PatternError::UnsupportedModifier(other.to_string())),
        }
    }
    if matches!(val, Yaml::Null) {
        return match kind {
            None => Ok(Pattern::Null),
            Some(_) => Err(PatternError::NullWithModifier),
        };
    }
    let raw = super::scalar(val).ok_or(PatternError::NotAScalar)?;
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
                    pattern: WildMatch::new(&fold(&raw)),
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
            Pattern::Re(Regex::new(&src)?)
        }
        Some("cidr") => Pattern::Cidr(parse_cidr(&raw)?),
        Some("exists") => Pattern::Exists(match raw.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(PatternError::ExistsNotBool),
        }),
        Some(op) => {
            let value: f64 = raw
                .parse()
                .map_err(|_| PatternError::NotANumber(raw.clone()))?;
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

pub(super) fn value_matches(p: &Pattern, v: &Value) -> bool {
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

/// How `soc explain` shows what a pattern wants.
impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Eq { value, .. } => write!(f, "{value:?}"),
            Pattern::Glob { pattern, .. } => write!(f, "like {pattern}"),
            Pattern::Contains { value, .. } => write!(f, "containing {value:?}"),
            Pattern::StartsWith { value, .. } => write!(f, "starting with {value:?}"),
            Pattern::EndsWith { value, .. } => write!(f, "ending with {value:?}"),
            Pattern::Re(re) => write!(f, "matching /{}/", re.as_str()),
            Pattern::Cidr(net) => write!(f, "in {net}"),
            Pattern::Exists(true) => f.write_str("present"),
            Pattern::Exists(false) => f.write_str("absent"),
            Pattern::Null => f.write_str("empty"),
            Pattern::Num { op, value } => {
                let op = match op {
                    NumOp::Lt => "<",
                    NumOp::Lte => "<=",
                    NumOp::Gt => ">",
                    NumOp::Gte => ">=",
                };
                write!(f, "{op} {value}")
            }
        }
    }
}

impl Pattern {
    /// `s` as is and lowercased (callers lowercase once per value).
    pub(super) fn matches_str(&self, s: &str, lower: &str) -> bool {
        let pick = |cased: bool| if cased { s } else { lower };
        match self {
            Pattern::Eq { value, cased } => pick(*cased) == value,
            Pattern::Glob { pattern, cased } => pattern.matches(pick(*cased)),
            Pattern::Contains { value, cased } => pick(*cased).contains(value.as_str()),
            Pattern::StartsWith { value, cased } => pick(*cased).starts_with(value.as_str()),
            Pattern::EndsWith { value, cased } => pick(*cased).ends_with(value.as_str()),
            Pattern::Re(re) => re.is_match(s),
            Pattern::Cidr(net) => parse_ip(s).is_some_and(|ip| net.contains(&ip)),
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

/// Does `s` match `pattern`, where `*` matches any run and `?` one character?
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    WildMatch::new(pattern).matches(s)
}
