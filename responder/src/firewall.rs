//! The agent's own nftables table: address sets with `flags interval, timeout` that the
//! kernel enforces and expires, and a separate table that isolates the host.
//!
//! Everything goes through `nft -j` with JSON built from the `nftables` crate's typed schema,
//! one atomic transaction per change. The agent touches only its own tables.

use crate::spans::{self, Family, Span};
use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range,
};
use nftables::schema::{
    Chain, Element, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`nft {args}` failed: {stderr}")]
    Nft { args: String, stderr: String },
    #[error("cannot read nft's answer: {0}")]
    Parse(String),
}

/// The agent's tables, and how to run `nft`.
#[derive(Debug)]
pub struct Firewall {
    /// The command that runs nft: `["nft"]`, or a wrapper in front of it.
    nft: Vec<String>,
    table: String,
    /// One change at a time: a change reads the set, computes, then writes.
    lock: Mutex<()>,
}

const SET_V4: &str = "blocked_v4";
const SET_V6: &str = "blocked_v6";

fn set_name(f: Family) -> &'static str {
    match f {
        Family::V4 => SET_V4,
        Family::V6 => SET_V6,
    }
}

impl Firewall {
    pub fn new(nft: Vec<String>, table: impl Into<String>) -> Self {
        Firewall {
            nft: if nft.is_empty() {
                vec!["nft".into()]
            } else {
                nft
            },
            table: table.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn isolate_table(&self) -> String {
        format!("{}_isolate", self.table)
    }

    async fn run(&self, args: &[&str], stdin: Option<String>) -> Result<String, FirewallError> {
        let mut cmd = tokio::process::Command::new(&self.nft[0]);
        cmd.args(&self.nft[1..])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_err = |source| FirewallError::Spawn {
            program: self.nft.join(" "),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(input) = stdin {
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(input.as_bytes()).await.map_err(spawn_err)?;
            }
        }
        let out = child.wait_with_output().await.map_err(spawn_err)?;
        if !out.status.success() {
            return Err(FirewallError::Nft {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn apply(&self, batch: Batch<'_>) -> Result<(), FirewallError> {
        let json = serde_json::to_string(&batch.to_nftables())
            .map_err(|e| FirewallError::Parse(e.to_string()))?;
        self.run(&["-j", "-f", "-"], Some(json)).await.map(|_| ())
    }

    /// Whether the agent's table is in the kernel (it is gone after `nft flush ruleset`).
    pub async fn present(&self) -> Result<bool, FirewallError> {
        match self
            .run(&["list", "table", "inet", &self.table], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(FirewallError::Nft { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the table, its sets and chains if missing, and puts the drop rules back in
    /// place (replacing, not duplicating, whatever its chains hold). Blocks already in the
    /// sets are kept.
    pub async fn ensure(&self) -> Result<(), FirewallError> {
        let _guard = self.lock.lock().await;
        let t = self.table.as_str();
        let mut b = Batch::new();
        b.add(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: t.into(),
            ..Default::default()
        }));
        for (name, ty) in [(SET_V4, SetType::Ipv4Addr), (SET_V6, SetType::Ipv6Addr)] {
            b.add(NfListObject::Set(Box::new(Set {
                family: NfFamily::INet,
                table: t.into(),
                name: name.into(),
                set_type: SetTypeValue::Single(ty),
                flags: Some(HashSet::from([SetFlag::Interval, SetFlag::Timeout])),
                ..Default::default()
            })));
        }
        for (chain, hook) in [("input", NfHook::Input), ("forward", NfHook::Forward)] {
            b.add(NfListObject::Chain(Chain {
                family: NfFamily::INet,
                table: t.into(),
                name: chain.into(),
                _type: Some(NfChainType::Filter),
                hook: Some(hook),
                // Before the usual filter chains (priority 0), so their accepts cannot
                // let a blocked address through first.
                prio: Some(-10),
                policy: Some(NfChainPolicy::Accept),
                ..Default::default()
            }));
            b.add_cmd(nftables::schema::NfCmd::Flush(
                nftables::schema::FlushObject::Chain(Chain {
                    family: NfFamily::INet,
                    table: t.into(),
                    name: chain.into(),
                    ..Default::default()
                }),
            ));
            for (proto, set) in [("ip", SET_V4), ("ip6", SET_V6)] {
                b.add(NfListObject::Rule(rule(
                    t,
                    chain,
                    vec![
                        matches(payload(proto, "saddr"), format!("@{set}")),
                        Statement::Drop(None),
                    ],
                )));
            }
        }
        self.apply(b).await
    }

    /// The blocked spans, with the seconds each has left.
    pub async fn blocked(&self) -> Result<Vec<(Family, Span)>, FirewallError> {
        let mut out = Vec::new();
        for f in [Family::V4, Family::V6] {
            out.extend(self.read_set(f).await?.into_iter().map(|s| (f, s)));
        }
        Ok(out)
    }

    async fn read_set(&self, f: Family) -> Result<Vec<Span>, FirewallError> {
        let text = self
            .run(
                &["-j", "list", "set", "inet", &self.table, set_name(f)],
                None,
            )
            .await?;
        let parsed: Nftables =
            serde_json::from_str(&text).map_err(|e| FirewallError::Parse(e.to_string()))?;
        let mut spans = Vec::new();
        for obj in parsed.objects.iter() {
            let NfObject::ListObject(NfListObject::Set(set)) = obj else {
                continue;
            };
            for e in set.elem.iter().flat_map(|e| e.iter()) {
                let (val, expires) = match e {
                    Expression::Named(NamedExpression::Elem(el)) => {
                        (el.val.as_ref(), el.expires.or(el.timeout))
                    }
                    other => (other, None),
                };
                let Some((start, end)) = value_bounds(val) else {
                    return Err(FirewallError::Parse(format!("unexpected element {val:?}")));
                };
                // An element without a timeout is not ours to expire; keep it for good.
                let expires = expires.unwrap_or(u32::MAX);
                if expires > 0 {
                    spans.push(Span {
                        start,
                        end,
                        expires,
                    });
                }
            }
        }
        spans.sort();
        Ok(spans)
    }

    /// Blocks these addresses and ranges, each for its seconds (or longer where a block
    /// already lasts longer), in one transaction.
    pub async fn block(&self, nets: &[(IpNet, u32)]) -> Result<(), FirewallError> {
        self.change(|f, current| {
            let new: Vec<Span> = nets
                .iter()
                .filter(|(n, _)| Family::of(n) == f)
                .map(|(n, ttl)| Span::of(n, *ttl))
                .collect();
            if new.is_empty() {
                current.to_vec()
            } else {
                spans::union(current, &new)
            }
        })
        .await
    }

    /// Adds spans of one family as they were (a restore after the kernel lost them).
    pub async fn restore(&self, family: Family, add: &[Span]) -> Result<(), FirewallError> {
        self.change(|f, current| {
            if f == family {
                spans::union(current, add)
            } else {
                current.to_vec()
            }
        })
        .await
    }

    /// Removes every address of these from the sets; the rest of a range stays blocked.
    pub async fn unblock(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        self.change(|f, current| {
            let gone: Vec<(u128, u128)> = nets
                .iter()
                .filter(|n| Family::of(n) == f)
                .map(spans::bounds)
                .collect();
            spans::subtract(current, &gone)
        })
        .await
    }

    async fn change(
        &self,
        want: impl Fn(Family, &[Span]) -> Vec<Span>,
    ) -> Result<(), FirewallError> {
        let _guard = self.lock.lock().await;
        // An element can expire between reading and writing, which fails the deletion:
        // read again and retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut b = Batch::new();
            let mut changes = 0;
            for f in [Family::V4, Family::V6] {
                let current = self.read_set(f).await?;
                let target = want(f, &current);
                let (delete, add) = spans::diff(&current, &target);
                changes += delete.len() + add.len();
                if !delete.is_empty() {
                    b.delete(NfListObject::Element(self.elements(f, &delete, false)));
                }
                if !add.is_empty() {
                    b.add(NfListObject::Element(self.elements(f, &add, true)));
                }
            }
            if changes == 0 {
                return Ok(());
            }
            match self.apply(b).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= 3 => return Err(e),
                Err(_) => continue,
            }
        }
    }

    fn elements(&self, f: Family, spans: &[Span], with_timeout: bool) -> Element<'static> {
        let elem = spans
            .iter()
            .map(|s| {
                let val = span_value(f, s);
                if with_timeout && s.expires != u32::MAX {
                    Expression::Named(NamedExpression::Elem(Elem {
                        val: Box::new(val),
                        timeout: Some(s.expires),
                        expires: None,
                        comment: None,
                        counter: None,
                    }))
                } else {
                    val
                }
            })
            .collect::<Vec<_>>();
        Element {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            name: set_name(f).into(),
            elem: elem.into(),
        }
    }

    /// Drops every packet in and out except loopback and the connections to `keep` (the
    /// gateway), in a table of its own so releasing is deleting it.
    pub async fn isolate(&self, keep: &[SocketAddr]) -> Result<(), FirewallError> {
        let _guard = self.lock.lock().await;
        let t = self.isolate_table();
        let mut b = Batch::new();
        b.add(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: t.clone().into(),
            ..Default::default()
        }));
        for (chain, hook, iface, peer, port) in [
            ("input", NfHook::Input, MetaKey::Iifname, "saddr", "sport"),
            ("output", NfHook::Output, MetaKey::Oifname, "daddr", "dport"),
        ] {
            b.add(NfListObject::Chain(Chain {
                family: NfFamily::INet,
                table: t.clone().into(),
                name: chain.into(),
                _type: Some(NfChainType::Filter),
                hook: Some(hook),
                prio: Some(-20),
                policy: Some(NfChainPolicy::Drop),
                ..Default::default()
            }));
            b.add_cmd(nftables::schema::NfCmd::Flush(
                nftables::schema::FlushObject::Chain(Chain {
                    family: NfFamily::INet,
                    table: t.clone().into(),
                    name: chain.into(),
                    ..Default::default()
                }),
            ));
            b.add(NfListObject::Rule(rule(
                &t,
                chain,
                vec![
                    Statement::Match(Match {
                        left: Expression::Named(NamedExpression::Meta(Meta { key: iface })),
                        right: Expression::String("lo".into()),
                        op: Operator::EQ,
                    }),
                    Statement::Accept(None),
                ],
            )));
            for k in keep {
                let proto = if k.is_ipv4() { "ip" } else { "ip6" };
                b.add(NfListObject::Rule(rule(
                    &t,
                    chain,
                    vec![
                        matches(payload(proto, peer), k.ip().to_string()),
                        Statement::Match(Match {
                            left: payload("tcp", port),
                            right: Expression::Number(u32::from(k.port())),
                            op: Operator::EQ,
                        }),
                        Statement::Accept(None),
                    ],
                )));
            }
        }
        self.apply(b).await
    }

    pub async fn isolated(&self) -> Result<bool, FirewallError> {
        match self
            .run(&["list", "table", "inet", &self.isolate_table()], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(FirewallError::Nft { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn release(&self) -> Result<(), FirewallError> {
        let _guard = self.lock.lock().await;
        if !self.isolated().await? {
            return Ok(());
        }
        let mut b = Batch::new();
        b.delete(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: self.isolate_table().into(),
            ..Default::default()
        }));
        self.apply(b).await
    }
}

fn rule<'a>(table: &str, chain: &str, expr: Vec<Statement<'a>>) -> Rule<'a> {
    Rule {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: expr.into(),
        ..Default::default()
    }
}

fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.to_string()),
            field: Cow::Owned(field.to_string()),
        },
    )))
}

fn matches(left: Expression<'static>, right: String) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::String(right.into()),
        op: Operator::EQ,
    })
}

fn span_value(f: Family, s: &Span) -> Expression<'static> {
    if let Some(net) = s.as_prefix(f) {
        if net.prefix_len() == net.max_prefix_len() {
            return Expression::String(net.addr().to_string().into());
        }
        return Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(net.addr().to_string().into())),
            len: u32::from(net.prefix_len()),
        }));
    }
    Expression::Range(Box::new(Range {
        range: [
            Expression::String(spans::from_u128(f, s.start).to_string().into()),
            Expression::String(spans::from_u128(f, s.end).to_string().into()),
        ],
    }))
}

fn value_bounds(val: &Expression) -> Option<(u128, u128)> {
    let addr = |e: &Expression| match e {
        Expression::String(s) => s.parse::<IpAddr>().ok(),
        _ => None,
    };
    match val {
        Expression::String(_) => addr(val).map(|a| {
            let v = spans::to_u128(&a);
            (v, v)
        }),
        Expression::Named(NamedExpression::Prefix(p)) => {
            let a = addr(&p.addr)?;
            let net = IpNet::new(a, u8::try_from(p.len).ok()?).ok()?;
            Some(spans::bounds(&net))
        }
        Expression::Range(r) => {
            let a = addr(&r.range[0])?;
            let b = addr(&r.range[1])?;
            Some((spans::to_u128(&a), spans::to_u128(&b)))
        }
        _ => None,
    }
}
