//! Response commands: what the gateway asks an agent to do, signed with the gateway's
//! Ed25519 key, and what the agent reports back.
//!
//! The signature covers the exact bytes of the command's JSON (`payload`), so nothing has to
//! be canonicalised and nothing unsigned is ever parsed as a command. An agent accepts a
//! command only when [`TrustedKeys::verify`] passes and the agent's own checks (addressed to
//! it, not expired, nonce never seen, target not protected) pass as well.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use uuid::Uuid;

pub mod keys;

/// Signed bytes start with this, so a signature made for something else never verifies a
/// command.
const DOMAIN: &[u8] = b"soc-command-v1\n";

/// An address or a CIDR range to block. A bare address is a /32 or /128; a range must not
/// have host bits set (`10.0.0.5/24` is refused as ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpTarget(IpNet);

impl IpTarget {
    pub fn net(&self) -> IpNet {
        self.0
    }
}

impl From<IpAddr> for IpTarget {
    fn from(a: IpAddr) -> Self {
        IpTarget(IpNet::from(a))
    }
}

impl FromStr for IpTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(IpTarget::from(a));
        }
        let net: IpNet = s
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has host bits set (did you mean {})",
                net.trunc()
            ));
        }
        Ok(IpTarget(net))
    }
}

impl fmt::Display for IpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for IpTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A host name as agents report it and policies name it: letters, digits, dots, dashes,
/// underscores; no leading dash; at most 253 bytes.
pub fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A user name an agent may pass to usermod as one argument: POSIX portable characters,
/// no option-like leading dash, at most 32 bytes (as `useradd` accepts by default).
pub fn valid_user_name(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 32
        && !u.starts_with('-')
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The closed vocabulary an agent executes: typed parameters, no shell strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Drop traffic from these addresses and ranges until the kernel expires them.
    BlockIp {
        targets: Vec<IpTarget>,
        ttl_secs: u32,
    },
    UnblockIp {
        targets: Vec<IpTarget>,
    },
    /// Kill `pid` only if that process started no later than `started_not_after` (when it
    /// was seen), so a PID reused by a newer process is never killed.
    KillProcess {
        pid: u32,
        started_not_after: DateTime<Utc>,
    },
    LockUser {
        user: String,
    },
    UnlockUser {
        user: String,
    },
    /// Drop all traffic except loopback and the connection to the gateway.
    IsolateHost,
    ReleaseHost,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::BlockIp { .. } => "block_ip",
            Action::UnblockIp { .. } => "unblock_ip",
            Action::KillProcess { .. } => "kill_process",
            Action::LockUser { .. } => "lock_user",
            Action::UnlockUser { .. } => "unlock_user",
            Action::IsolateHost => "isolate_host",
            Action::ReleaseHost => "release_host",
        }
    }
}

/// One instruction to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Unique per command; reports name it.
    pub id: Uuid,
    /// The action record this command carries out (or reverts).
    pub action_id: Uuid,
    /// The agent it is addressed to.
    pub agent: String,
    pub action: Action,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Random, never reused: the agent refuses a nonce it has seen.
    pub nonce: String,
}

/// A command as it travels: its JSON, the key that signed it and the signature.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub key_id: String,
    pub payload: String,
    /// Base64 of the Ed25519 signature over the domain tag and `payload`.
    pub signature: String,
}

impl fmt::Debug for SignedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCommand")
            .field("key_id", &self.key_id)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl SignedCommand {
    /// The command id, read without trusting anything, so a refusal can name the command
    /// it refuses. Nil when the payload has none.
    pub fn claimed_id(&self) -> Uuid {
        serde_json::from_str::<serde_json::Value>(&self.payload)
            .ok()
            .and_then(|v| v.get("id")?.as_str()?.parse().ok())
            .unwrap_or(Uuid::nil())
    }
}

/// Why an agent refused a command. Nothing of a refused command executes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("signed by unknown key `{0}`")]
    UnknownKey(String),
    #[error("bad signature")]
    BadSignature,
    #[error("not a valid command: {0}")]
    Malformed(String),
    #[error("addressed to agent `{0}`")]
    WrongAgent(String),
    #[error("expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("issued in the future ({0})")]
    NotYetValid(DateTime<Utc>),
    #[error("valid for {0} s, longer than this agent allows")]
    ValidTooLong(i64),
    #[error("nonce already used")]
    Replayed,
    #[error("target is protected: {0}")]
    Protected(String),
    #[error("range {target} is wider than /{max}")]
    PrefixTooWide { target: String, max: u8 },
    #[error("{0}")]
    Invalid(String),
    #[error("response is switched off on this agent")]
    Disabled,
}

impl Refusal {
    /// A short stable code for reports and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownKey(_) => "unknown_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::Malformed(_) => "malformed",
            Refusal::WrongAgent(_) => "wrong_agent",
            Refusal::Expired(_) => "expired",
            Refusal::NotYetValid(_) => "not_yet_valid",
            Refusal::ValidTooLong(_) => "valid_too_long",
            Refusal::Replayed => "replayed",
            Refusal::Protected(_) => "protected",
            Refusal::PrefixTooWide { .. } => "prefix_too_wide",
            Refusal::Invalid(_) => "invalid",
            Refusal::Disabled => "disabled",
        }
    }
}

/// The id of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The gateway's signing key. Its `Debug` shows the key id only.
pub struct CommandSigner {
    key_id: String,
    key: SigningKey,
}

impl fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CommandSigner {
    /// A signer from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        CommandSigner {
            key_id: key_id(&key.verifying_key()),
            key,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.clone(),
            key: B64.encode(self.key.verifying_key().as_bytes()),
        }
    }

    pub fn sign(&self, command: &Command) -> SignedCommand {
        let payload = serde_json::to_string(command).expect("a command always serializes");
        self.sign_payload(payload)
    }

    /// Base64 of the signature over `domain` and `payload`.
    pub(crate) fn sign_raw(&self, domain: &[u8], payload: &str) -> String {
        let mut msg = domain.to_vec();
        msg.extend_from_slice(payload.as_bytes());
        B64.encode(self.key.sign(&msg).to_bytes())
    }

    /// Signs any payload. Public so tests can sign what a valid gateway never would.
    pub fn sign_payload(&self, payload: String) -> SignedCommand {
        SignedCommand {
            key_id: self.key_id.clone(),
            signature: self.sign_raw(DOMAIN, &payload),
            payload,
        }
    }
}

/// A public key as the gateway hands it to agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub key_id: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub key: String,
}

/// The gateway keys an agent trusts, by key id (several during a rotation).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(HashMap<String, VerifyingKey>);

impl TrustedKeys {
    pub fn new(keys: &[PublicKey]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for k in keys {
            let bytes: [u8; 32] = B64
                .decode(&k.key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("key `{}` is not 32 bytes of base64", k.key_id))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| format!("key `{}` is not an Ed25519 public key", k.key_id))?;
            if key_id(&key) != k.key_id {
                return Err(format!("key id `{}` does not match its key", k.key_id));
            }
            map.insert(k.key_id.clone(), key);
        }
        Ok(TrustedKeys(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the signature, then parses the payload. Says nothing about whether the
    /// command is addressed to the caller or still valid: see [`check_validity`].
    pub fn verify(&self, signed: &SignedCommand) -> Result<Command, Refusal> {
        let key = self
            .0
            .get(&signed.key_id)
            .ok_or_else(|| Refusal::UnknownKey(truncate(&signed.key_id, 32)))?;
        let sig: [u8; 64] = B64
            .decode(&signed.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(Refusal::BadSignature)?;
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(signed.payload.as_bytes());
        key.verify_strict(&msg, &Signature::from_bytes(&sig))
            .map_err(|_| Refusal::BadSignature)?;
        serde_json::from_str(&signed.payload).map_err(|e| Refusal::Malformed(e.to_string()))
    }
}

/// Whether a verified command is for `agent` and valid at `now`, and not valid for longer
/// than `max_validity_secs` (which bounds how long an agent must remember its nonce).
pub fn check_validity(
    c: &Command,
    agent: &str,
    now: DateTime<Utc>,
    max_validity_secs: i64,
) -> Result<(), Refusal> {
    if c.agent != agent {
        return Err(Refusal::WrongAgent(truncate(&c.agent, 64)));
    }
    // A little skew between the gateway's clock and ours is tolerated.
    if c.issued_at > now + chrono::Duration::seconds(30) {
        return Err(Refusal::NotYetValid(c.issued_at));
    }
    if c.expires_at <= now {
        return Err(Refusal::Expired(c.expires_at));
    }
    let validity = (c.expires_at - c.issued_at).num_seconds();
    if validity > max_validity_secs {
        return Err(Refusal::ValidTooLong(validity));
    }
    if c.nonce.len() < 16 || c.nonce.len() > 64 {
        return Err(Refusal::Malformed(
            "nonce must be 16 to 64 characters".into(),
        ));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Where a command stands, as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// Verified and recorded; about to execute.
    Accepted,
    Applied,
    Failed,
    /// Not executed: it failed a check (see the reason).
    Refused,
}

/// What an agent says about a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub command: Uuid,
    pub state: ReportState,
    /// Why it failed or was refused; the refusal code first (`expired: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the agent only logged what it would do.
    #[serde(default)]
    pub dry_run: bool,
    pub at: DateTime<Utc>,
}

/// Agent to gateway, over the agent's WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello {
        version: String,
        host: String,
        dry_run: bool,
        /// The version of the gateway's key set the agent holds (0 before any).
        #[serde(default)]
        keys_version: u64,
    },
    /// The agent adopted the gateway's key set of this version.
    KeysAdopted {
        version: u64,
    },
    Heartbeat {
        at: DateTime<Utc>,
    },
    Report(Report),
}

/// Gateway to agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayMessage {
    /// The answer to `hello`: who the gateway takes the agent for.
    Welcome {
        agent: String,
        host: String,
    },
    Command(SignedCommand),
    /// The gateway's current keys, for an agent to adopt (see [`keys`]).
    Keys(keys::SignedKeySet),
    /// The report on this command is stored: the agent may forget it.
    Ack {
        command: Uuid,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> CommandSigner {
        CommandSigner::from_seed(&[seed; 32])
    }

    fn command(agent: &str, action: Action, now: DateTime<Utc>) -> Command {
        Command {
            id: Uuid::from_u128(1),
            action_id: Uuid::from_u128(2),
            agent: agent.into(),
            action,
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(300),
            nonce: "0123456789abcdef0123".into(),
        }
    }

    fn block(t: &str) -> Action {
        Action::BlockIp {
            targets: vec![t.parse().unwrap()],
            ttl_secs: 60,
        }
    }

    #[test]
    fn a_signed_command_verifies_and_round_trips() {
        let s = signer(7);
        let trust = TrustedKeys::new(&[s.public_key()]).unwrap();
        let now = Utc::now();
        let c = command("web-1", block("198.51.100.0/24"), now);
        let signed = s.sign(&c);
        assert_eq!(trust.verify(&signed).unwrap(), c);
        assert_eq!(check_validity(&c, "web-1", now, 600), Ok(()));
        assert!(signed.payload.contains(r#""targets":["198.51.100.0/24"]"#));
        assert!(!format!("{s:?}").contains(&B64.encode([7u8; 32])));
    }

    #[test]
    fn forged_tampered_and_unknown_key_commands_are_refused() {
        let s = signer(7);
        let trust = TrustedKeys::new(&[s.public_key()]).unwrap();
        let c = command("web-1", block("198.51.100.7"), Utc::now());
        let good = s.sign(&c);

        let mut tampered = good.clone();
        tampered.payload = tampered.payload.replace("198.51.100.7", "198.51.100.8");
        assert_eq!(trust.verify(&tampered), Err(Refusal::BadSignature));

        let forged = signer(9).sign(&c);
        assert!(matches!(trust.verify(&forged), Err(Refusal::UnknownKey(_))));
        let mut forged_with_our_id = forged.clone();
        forged_with_our_id.key_id = s.key_id().to_string();
        assert_eq!(
            trust.verify(&forged_with_our_id),
            Err(Refusal::BadSignature)
        );

        let mut garbage = good.clone();
        garbage.signature = "not base64!".into();
        assert_eq!(trust.verify(&garbage), Err(Refusal::BadSignature));
    }

    #[test]
    fn unknown_actions_and_parameters_out_of_type_are_malformed() {
        let s = signer(7);
        let trust = TrustedKeys::new(&[s.public_key()]).unwrap();
        let c = command("web-1", block("198.51.100.7"), Utc::now());
        let json = serde_json::to_string(&c).unwrap();
        for bad in [
            json.replace("block_ip", "run_shell"),
            json.replace(r#""ttl_secs":60"#, r#""ttl_secs":"60; rm -rf /""#),
            json.replace(r#""198.51.100.7""#, r#""198.51.100.7; reboot""#),
            json.replace(r#""198.51.100.7""#, r#""198.51.100.7/24""#),
            json.replace(r#""ttl_secs":60"#, r#""ttl_secs":60,"shell":"id""#),
            json.replace(r#""ttl_secs":60"#, r#""ttl_secs":-1"#),
        ] {
            assert_ne!(bad, json);
            let r = trust.verify(&s.sign_payload(bad.clone()));
            assert!(matches!(r, Err(Refusal::Malformed(_))), "{bad}: {r:?}");
        }
    }

    #[test]
    fn validity_checks_agent_expiry_and_length() {
        let now = Utc::now();
        let c = command("web-1", block("198.51.100.7"), now);
        let at = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(
            check_validity(&c, "db-1", now, 600),
            Err(Refusal::WrongAgent("web-1".into()))
        );
        assert_eq!(
            check_validity(&c, "web-1", at(300), 600),
            Err(Refusal::Expired(c.expires_at))
        );
        assert_eq!(
            check_validity(&c, "web-1", at(-60), 600),
            Err(Refusal::NotYetValid(c.issued_at))
        );
        assert_eq!(
            check_validity(&c, "web-1", now, 120),
            Err(Refusal::ValidTooLong(300))
        );
    }

    #[test]
    fn key_ids_must_match_their_keys() {
        let mut k = signer(7).public_key();
        k.key_id = "0000000000000000".into();
        assert!(TrustedKeys::new(&[k]).is_err());
    }
}
