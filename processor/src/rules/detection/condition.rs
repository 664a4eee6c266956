//! A detection's `condition`: `and`, `or`, `not`, parentheses, `1 of <pattern>`,
//! `all of <pattern>` and `them` over the named selections.

use super::pattern::wildcard_match;
use super::Selection;
use std::collections::BTreeMap;

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

pub(super) fn parse_condition(
    text: &str,
    selections: &BTreeMap<String, Selection>,
) -> Result<Expr, String> {
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
