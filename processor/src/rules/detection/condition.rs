//! A detection's `condition`: `and`, `or`, `not`, parentheses, `1 of <pattern>`,
//! `all of <pattern>` and `them` over the named selections.

use super::pattern::wildcard_match;
use super::Selection;
use std::collections::BTreeMap;

/// Why a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("aggregations in conditions (`| count()`) are not supported: use the rule's threshold, group_by and window_secs")]
    Aggregation,
    #[error("missing `)` in condition")]
    MissingParen,
    #[error("expected `of` after `{0}`")]
    ExpectedOf(String),
    #[error("expected a selection pattern after `of`")]
    ExpectedPattern,
    #[error("`{0}` names no selection")]
    NoSuchSelections(String),
    #[error("condition names unknown selection `{0}`")]
    UnknownSelection(String),
    #[error("unexpected {token} in condition `{condition}`")]
    Unexpected { token: String, condition: String },
}

#[derive(Debug, Clone)]
pub(super) enum Expr {
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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
        }
    }
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
    text: &'a str,
    toks: Vec<Tok>,
    pos: usize,
    selections: &'a BTreeMap<String, Selection>,
}

pub(super) fn parse_condition(
    text: &str,
    selections: &BTreeMap<String, Selection>,
) -> Result<Expr, ConditionError> {
    if text.contains('|') {
        return Err(ConditionError::Aggregation);
    }
    let mut p = CondParser {
        text,
        toks: tokenize(text),
        pos: 0,
        selections,
    };
    let e = p.or()?;
    if let Some(tok) = p.toks.get(p.pos) {
        return Err(p.unexpected(Some(tok)));
    }
    Ok(e)
}

impl CondParser<'_> {
    fn unexpected(&self, tok: Option<&Tok>) -> ConditionError {
        ConditionError::Unexpected {
            token: tok.map_or_else(|| "end".to_string(), Tok::to_string),
            condition: self.text.to_string(),
        }
    }

    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, ConditionError> {
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

    fn and(&mut self) -> Result<Expr, ConditionError> {
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

    fn not(&mut self) -> Result<Expr, ConditionError> {
        if self.peek_word() == Some("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ConditionError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::RParen) {
                    return Err(ConditionError::MissingParen);
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(w)) if w == "1" || w == "all" || w == "any" => {
                self.pos += 1;
                if self.peek_word() != Some("of") {
                    return Err(ConditionError::ExpectedOf(w));
                }
                self.pos += 1;
                let target = self
                    .peek_word()
                    .ok_or(ConditionError::ExpectedPattern)?
                    .to_string();
                self.pos += 1;
                let names: Vec<String> = self
                    .selections
                    .keys()
                    .filter(|n| target == "them" || wildcard_match(&target, n))
                    .cloned()
                    .collect();
                if names.is_empty() {
                    return Err(ConditionError::NoSuchSelections(target));
                }
                Ok(Expr::Of {
                    all: w == "all",
                    names,
                })
            }
            Some(Tok::Word(w)) if !matches!(w.as_str(), "and" | "or" | "not" | "of") => {
                if !self.selections.contains_key(&w) {
                    return Err(ConditionError::UnknownSelection(w));
                }
                self.pos += 1;
                Ok(Expr::Sel(w))
            }
            other => Err(self.unexpected(other.as_ref())),
        }
    }
}
