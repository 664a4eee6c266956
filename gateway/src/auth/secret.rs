//! Random secrets for sessions, CSRF and API tokens, and the hash they are stored under.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so a leaked one is recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "soc_";

/// 256 random bits from the operating system, URL-safe base64, after `prefix`.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The OS generator fails only on a broken system, where no secret can be made at all.
    getrandom::getrandom(&mut bytes).expect("the operating system's random generator works");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A password for a person to type once: 20 characters from an unambiguous alphabet
/// (about 114 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b).expect("the operating system's random generator works");
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for x in b {
            if (x as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[x as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// SHA-256, hex: how session ids and token secrets are stored and looked up.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal without leaking where two strings differ through timing.
pub fn equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_and_hash_stably() {
        let a = generate(TOKEN_PREFIX);
        let b = generate(TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("soc_") && a.len() == 4 + 43, "{a}");
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(hash(&a).len(), 64);
        assert!(equal(&a, &a.clone()) && !equal(&a, &b) && !equal(&a, "soc_"));
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }
}
