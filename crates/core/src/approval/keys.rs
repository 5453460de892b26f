//! The `approval` setting: the keys that sign and verify approval states
//! (the first signs, every listed key verifies: rotation without downtime)
//! and how long an approval stays valid.

use serde::Deserialize;

/// Default for `approval.ttl_seconds`: five minutes to answer and retry.
pub const DEFAULT_TTL_SECONDS: u64 = 300;
/// Longest `approval.ttl_seconds`: one day.
pub const MAX_TTL_SECONDS: u64 = 86_400;
/// Shortest secret: 32 bytes (the MAC's own size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Most keys listed at once.
pub const MAX_KEYS: usize = 8;

/// One key: an id (written into each state it signs) and its secret.
#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `approval`: the keys and the validity of an approval.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// The first key signs; all of them verify.
    pub keys: Vec<ApprovalKey>,
    /// From the question to the retry, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECONDS
}

impl ApprovalSettings {
    /// Check the keys and the validity; the message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("`keys` is empty: list at least one key (the first one signs)".into());
        }
        if self.keys.len() > MAX_KEYS {
            return Err(format!("at most {MAX_KEYS} keys"));
        }
        if self.ttl_seconds == 0 || self.ttl_seconds > MAX_TTL_SECONDS {
            return Err(format!(
                "`ttl_seconds` must be 1 to {MAX_TTL_SECONDS}, got {}",
                self.ttl_seconds
            ));
        }
        for (i, k) in self.keys.iter().enumerate() {
            if k.id.is_empty()
                || k.id.len() > 64
                || !k
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "`keys[{i}].id` must be 1 to 64 characters of [A-Za-z0-9_-], got {:?}",
                    k.id
                ));
            }
            if k.secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "`keys[{i}].secret` (key {:?}) is {} bytes; at least {MIN_SECRET_BYTES} are needed",
                    k.id,
                    k.secret.len()
                ));
            }
            if self.keys.iter().take(i).any(|o| o.id == k.id) {
                return Err(format!("key id {:?} is listed twice", k.id));
            }
        }
        Ok(())
    }

    /// The signing key.
    pub fn signing(&self) -> Option<&ApprovalKey> {
        self.keys.first()
    }

    /// The key with this id, if it is listed.
    pub fn find(&self, id: &str) -> Option<&ApprovalKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}
