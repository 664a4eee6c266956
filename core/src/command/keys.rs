//! Rotating the gateway's signing key without re-enrolling agents.
//!
//! The gateway keeps a keyring: the active key, which signs commands, and the previous keys
//! still trusted while agents catch up. It sends every agent a [`SignedKeySet`] (the ring's
//! public keys and a version) signed by every key in the ring. An agent adopts a key set
//! only when its version is newer than the one it holds and a key it already trusts signed
//! it; the set then replaces its trusted keys. So a rotation reaches agents through a key
//! they trust, a retired key stops being trusted once the smaller set arrives, and an old
//! set replayed later is refused for its version.

use super::{CommandSigner, PublicKey, TrustedKeys};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Signed key sets start with this: a key-set signature never verifies a command and the
/// other way round.
const KEYSET_DOMAIN: &[u8] = b"soc-keyset-v1\n";

/// The gateway's public keys at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    /// Grows with every rotation and retirement.
    pub version: u64,
    /// The active key first.
    pub keys: Vec<PublicKey>,
    pub issued_at: DateTime<Utc>,
}

/// One signature over a key set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySignature {
    pub key_id: String,
    pub signature: String,
}

/// A key set as it travels: its exact JSON and a signature by each key of the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedKeySet {
    pub payload: String,
    pub signatures: Vec<KeySignature>,
}

/// Why an agent did not adopt a key set (it keeps the keys it had).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("not a valid key set: {0}")]
    Malformed(String),
    #[error("version {offered} is not newer than {held}")]
    NotNewer { offered: u64, held: u64 },
    #[error("signed by no key this agent trusts")]
    Untrusted,
    #[error("a key set must hold at least one key")]
    Empty,
}

/// The gateway's signing keys. `Debug` shows key ids only.
pub struct Keyring {
    version: u64,
    active: CommandSigner,
    previous: Vec<CommandSigner>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("version", &self.version)
            .field("active", &self.active.key_id())
            .field(
                "previous",
                &self.previous.iter().map(|k| k.key_id()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    pub fn new(version: u64, active: CommandSigner, previous: Vec<CommandSigner>) -> Self {
        Keyring {
            version,
            active,
            previous,
        }
    }

    /// A ring of one key at version 1 (a gateway that never rotated).
    pub fn single(active: CommandSigner) -> Self {
        Keyring::new(1, active, Vec::new())
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The key that signs commands.
    pub fn active(&self) -> &CommandSigner {
        &self.active
    }

    /// Every key's public half, the active one first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .map(CommandSigner::public_key)
            .collect()
    }

    /// The ring's public keys, signed by each of its keys.
    pub fn signed_keyset(&self, now: DateTime<Utc>) -> SignedKeySet {
        let set = KeySet {
            version: self.version,
            keys: self.public_keys(),
            issued_at: now,
        };
        let payload = serde_json::to_string(&set).expect("a key set always serializes");
        let signatures = std::iter::once(&self.active)
            .chain(&self.previous)
            .map(|k| KeySignature {
                key_id: k.key_id().to_string(),
                signature: k.sign_raw(KEYSET_DOMAIN, &payload),
            })
            .collect();
        SignedKeySet {
            payload,
            signatures,
        }
    }
}

impl TrustedKeys {
    /// The key set, if this agent should adopt it over the set at version `held`.
    pub fn accept_keyset(&self, signed: &SignedKeySet, held: u64) -> Result<KeySet, KeySetError> {
        let set: KeySet = serde_json::from_str(&signed.payload)
            .map_err(|e| KeySetError::Malformed(e.to_string()))?;
        let endorsed = signed.signatures.iter().any(|s| {
            self.0.get(&s.key_id).is_some_and(|key| {
                let Some(sig) = B64
                    .decode(&s.signature)
                    .ok()
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                else {
                    return false;
                };
                let mut msg = KEYSET_DOMAIN.to_vec();
                msg.extend_from_slice(signed.payload.as_bytes());
                key.verify_strict(&msg, &Signature::from_bytes(&sig))
                    .is_ok()
            })
        });
        if !endorsed {
            return Err(KeySetError::Untrusted);
        }
        if set.version <= held {
            return Err(KeySetError::NotNewer {
                offered: set.version,
                held,
            });
        }
        if set.keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        TrustedKeys::new(&set.keys).map_err(KeySetError::Malformed)?;
        Ok(set)
    }

    /// The ids of the trusted keys, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.0.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    fn signer(seed: u8) -> CommandSigner {
        CommandSigner::from_seed(&[seed; 32])
    }

    #[test]
    fn a_rotation_reaches_an_agent_through_the_key_it_trusts() {
        let old = signer(1);
        let agent = TrustedKeys::new(&[old.public_key()]).unwrap();
        let ring = Keyring::new(2, signer(2), vec![signer(1)]);
        let set = agent
            .accept_keyset(&ring.signed_keyset(Utc::now()), 1)
            .unwrap();
        assert_eq!(set.version, 2);
        assert_eq!(set.keys, vec![signer(2).public_key(), old.public_key()]);
        let now_trusted = TrustedKeys::new(&set.keys).unwrap();

        // Retiring the old key: the smaller set is signed by the new key, which the agent
        // now trusts; after it the old key verifies nothing.
        let retired = Keyring::new(3, signer(2), Vec::new());
        let set = now_trusted
            .accept_keyset(&retired.signed_keyset(Utc::now()), 2)
            .unwrap();
        let last = TrustedKeys::new(&set.keys).unwrap();
        assert_eq!(last.key_ids(), vec![signer(2).key_id().to_string()]);
        let c = Command {
            id: uuid::Uuid::from_u128(1),
            action_id: uuid::Uuid::from_u128(2),
            agent: "a".into(),
            action: crate::command::Action::IsolateHost,
            issued_at: Utc::now(),
            expires_at: Utc::now(),
            nonce: "0123456789abcdef".into(),
        };
        assert!(last.verify(&old.sign(&c)).is_err());
        assert!(last.verify(&signer(2).sign(&c)).is_ok());
    }

    #[test]
    fn untrusted_stale_and_tampered_sets_are_refused() {
        let agent = TrustedKeys::new(&[signer(1).public_key()]).unwrap();
        // Signed only by a key the agent never trusted.
        let stranger = Keyring::new(9, signer(3), Vec::new());
        assert_eq!(
            agent.accept_keyset(&stranger.signed_keyset(Utc::now()), 1),
            Err(KeySetError::Untrusted)
        );
        // Not newer than what the agent holds: a replayed old set.
        let ring = Keyring::new(2, signer(2), vec![signer(1)]);
        let signed = ring.signed_keyset(Utc::now());
        assert_eq!(
            agent.accept_keyset(&signed, 2),
            Err(KeySetError::NotNewer {
                offered: 2,
                held: 2
            })
        );
        // A key slipped into a validly signed set breaks the signature.
        let mut tampered = signed.clone();
        tampered.payload = tampered
            .payload
            .replace(&signer(2).public_key().key, &signer(3).public_key().key)
            .replace(signer(2).key_id(), signer(3).key_id());
        assert_ne!(tampered.payload, signed.payload);
        assert_eq!(
            agent.accept_keyset(&tampered, 1),
            Err(KeySetError::Untrusted)
        );
        // A command signature is not a key-set signature.
        let mut cross = signed.clone();
        cross.signatures = vec![KeySignature {
            key_id: signer(1).key_id().into(),
            signature: signer(1).sign_payload(signed.payload.clone()).signature,
        }];
        assert_eq!(agent.accept_keyset(&cross, 1), Err(KeySetError::Untrusted));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let ring = Keyring::new(2, signer(2), vec![signer(1)]);
        let text = format!("{ring:?}");
        assert!(text.contains(signer(2).key_id()));
        assert!(!text.contains(&B64.encode([2u8; 32])));
    }
}
