//! The filter's `requestState`: what the approval is bound to, signed.
//!
//! ```text
//! mcp-policy.approval.v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256)>
//! ```
//!
//! The MAC (keyed by the key the claims name) covers a domain-separation
//! label and the claims' encoded text. The claims hold the call's method
//! and tool, the SHA-256 of its arguments' canonical JSON, hashes of the
//! session id and the principal, when it was asked, its expiry and a nonce
//! (the approval id). The prefix tells the filter's state from an upstream
//! server's own.

use super::keys::ApprovalSettings;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What starts every state the filter writes.
pub const STATE_PREFIX: &str = "mcp-policy.approval.v1.";
/// The MAC's domain-separation label.
const MAC_LABEL: &[u8] = b"mcp-policy approval state v1\n";
/// The longest state written or read (anything longer is refused unread).
pub const MAX_STATE_BYTES: usize = 16 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// What a state binds the approval to.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The signing key's id.
    pub kid: String,
    /// The method (`tools/call`).
    pub m: String,
    /// The tool's name.
    pub t: String,
    /// `sha256:` of the arguments' canonical JSON (audit's digest).
    pub a: String,
    /// base64url SHA-256 of the session id ("" for none).
    pub s: String,
    /// base64url SHA-256 of the principal ("" for none).
    pub p: String,
    /// Asked at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// The approval id (a nonce): links the question and the retry in the
    /// audit trail.
    pub n: String,
    /// The upstream server's own round trip the question interrupted
    /// (`{"requestState":…, "inputResponses":…}`), restored on the approved
    /// call so a server that uses multi round-trip requests itself carries
    /// on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<serde_json::Value>,
}

/// Hash of a bound string (session id, principal), as the claims hold it.
pub fn bound(v: Option<&str>) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(v.unwrap_or("").as_bytes()))
}

/// Why a state cannot be read: it was not written by this filter with a
/// key it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    Malformed(&'static str),
    UnknownKey(String),
    BadMac(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Malformed(what) => write!(f, "the approval state is malformed ({what})"),
            Unreadable::UnknownKey(id) => write!(
                f,
                "the approval state names key {id:?}, which is not configured (rotated out or forged)"
            ),
            Unreadable::BadMac(id) => write!(
                f,
                "the approval state's signature does not verify with key {id:?} (altered or forged)"
            ),
        }
    }
}

fn mac(secret: &str, payload: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    m.update(MAC_LABEL);
    m.update(payload.as_bytes());
    Some(m)
}

/// Sign `claims` with the key they name; `None` if that key is not
/// configured.
pub fn encode(settings: &ApprovalSettings, claims: &Claims) -> Option<String> {
    let key = settings.find(&claims.kid)?;
    let json = serde_json::to_vec(claims).ok()?;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(&key.secret, &payload)?.finalize().into_bytes();
    Some(format!(
        "{STATE_PREFIX}{payload}.{}",
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Read and verify a state that starts with [`STATE_PREFIX`]: the claims,
/// once the MAC of the key they name verifies (in constant time).
pub fn decode(settings: &ApprovalSettings, state: &str) -> Result<Claims, Unreadable> {
    if state.len() > MAX_STATE_BYTES {
        return Err(Unreadable::Malformed("too long"));
    }
    let rest = state
        .strip_prefix(STATE_PREFIX)
        .ok_or(Unreadable::Malformed("not the filter's format"))?;
    let (payload, tag) = rest
        .split_once('.')
        .ok_or(Unreadable::Malformed("no signature"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| Unreadable::Malformed("signature is not base64url"))?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Unreadable::Malformed("claims are not base64url"))?;
    // The key id is read before the MAC is checked, only to choose the key;
    // nothing else of the claims is used until the MAC verifies.
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|_| Unreadable::Malformed("claims are not valid"))?;
    let key = settings
        .find(&claims.kid)
        .ok_or_else(|| Unreadable::UnknownKey(claims.kid.clone()))?;
    mac(&key.secret, payload)
        .ok_or_else(|| Unreadable::BadMac(claims.kid.clone()))?
        .verify_slice(&tag)
        .map_err(|_| Unreadable::BadMac(claims.kid.clone()))?;
    Ok(claims)
}
