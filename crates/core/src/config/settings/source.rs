//! The policy bundle source (`bundle`): where the filter polls a bundle,
//! within which bounds, and what holds until the first one loads.

use serde::Deserialize;
use std::fmt;

/// A policy bundle source (docs/bundles.md): an Envoy cluster and path,
/// polled with `If-None-Match`, serving OPA's bundle layout (tar.gz).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleSettings {
    /// The Envoy cluster serving the bundle.
    pub cluster: String,
    #[serde(default = "default_bundle_path")]
    pub path: String,
    /// `:authority` of the requests (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Up to this much is added at random to each interval, so the VMs and
    /// replicas polling one source spread out (default: a tenth of the
    /// interval).
    #[serde(default)]
    pub poll_jitter_ms: Option<u64>,
    #[serde(default = "default_bundle_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest bundle accepted, compressed (the download).
    #[serde(default = "default_bundle_max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_bundle_max_uncompressed_bytes")]
    pub max_uncompressed_bytes: u64,
    #[serde(default = "default_bundle_max_files")]
    pub max_files: usize,
}

impl BundleSettings {
    /// The unpacking bounds.
    pub fn limits(&self) -> crate::config::limits::Limits {
        crate::config::limits::Limits {
            max_bytes: self.max_bytes,
            max_uncompressed_bytes: self.max_uncompressed_bytes,
            max_files: self.max_files,
        }
    }

    /// The jitter bound actually used.
    pub fn jitter_ms(&self) -> u64 {
        self.poll_jitter_ms.unwrap_or(self.poll_interval_ms / 10)
    }

    pub(super) fn validate(&self) -> Result<(), BundleSettingsError> {
        use BundleSettingsError as E;
        if self.cluster.is_empty() {
            return Err(E::NoCluster);
        }
        if !self.path.starts_with('/') {
            return Err(E::Path(self.path.clone()));
        }
        if !(100..=86_400_000).contains(&self.poll_interval_ms) {
            return Err(E::PollInterval(self.poll_interval_ms));
        }
        if self.jitter_ms() > self.poll_interval_ms {
            return Err(E::Jitter);
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(E::Timeout(self.timeout_ms));
        }
        if self.max_bytes == 0 || self.max_bytes > (1 << 30) {
            return Err(E::MaxBytes(self.max_bytes));
        }
        if self.max_uncompressed_bytes == 0 || self.max_uncompressed_bytes > (1 << 32) {
            return Err(E::MaxUncompressedBytes(self.max_uncompressed_bytes));
        }
        if self.max_files == 0 || self.max_files > 1_000_000 {
            return Err(E::MaxFiles(self.max_files));
        }
        Ok(())
    }
}

/// A `bundle` setting that is missing or out of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSettingsError {
    /// An empty `cluster`.
    NoCluster,
    /// A `path` not starting with `/`.
    Path(String),
    /// `poll_interval_ms` not within 100 to 86400000.
    PollInterval(u64),
    /// `poll_jitter_ms` above `poll_interval_ms`.
    Jitter,
    /// `timeout_ms` not within 1 to 600000.
    Timeout(u64),
    /// `max_bytes` not within 1 to 1 GiB.
    MaxBytes(usize),
    /// `max_uncompressed_bytes` not within 1 to 4 GiB.
    MaxUncompressedBytes(u64),
    /// `max_files` not within 1 to 1000000.
    MaxFiles(usize),
}

impl fmt::Display for BundleSettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleSettingsError::NoCluster => write!(f, "`cluster` must name an Envoy cluster"),
            BundleSettingsError::Path(p) => write!(f, "`path` {p:?} must start with /"),
            BundleSettingsError::PollInterval(n) => {
                write!(
                    f,
                    "`poll_interval_ms` {n} is out of range (100 to 86400000)"
                )
            }
            BundleSettingsError::Jitter => {
                write!(f, "`poll_jitter_ms` must not exceed `poll_interval_ms`")
            }
            BundleSettingsError::Timeout(n) => {
                write!(f, "`timeout_ms` {n} is out of range (1 to 600000)")
            }
            BundleSettingsError::MaxBytes(n) => {
                write!(f, "`max_bytes` {n} is out of range (1 to 1073741824)")
            }
            BundleSettingsError::MaxUncompressedBytes(n) => write!(
                f,
                "`max_uncompressed_bytes` {n} is out of range (1 to 4294967296)"
            ),
            BundleSettingsError::MaxFiles(n) => {
                write!(f, "`max_files` {n} is out of range (1 to 1000000)")
            }
        }
    }
}

impl std::error::Error for BundleSettingsError {}

fn default_bundle_path() -> String {
    "/bundle.tar.gz".into()
}
fn default_poll_interval_ms() -> u64 {
    10_000
}
fn default_bundle_timeout_ms() -> u64 {
    5_000
}
fn default_bundle_max_bytes() -> usize {
    crate::config::limits::DEFAULT_MAX_BYTES
}
fn default_bundle_max_uncompressed_bytes() -> u64 {
    crate::config::limits::DEFAULT_MAX_UNCOMPRESSED_BYTES
}
fn default_bundle_max_files() -> usize {
    crate::config::limits::DEFAULT_MAX_FILES
}

/// The reason every message is denied while a bundle-only configuration
/// waits for its first bundle.
pub const BUNDLE_PENDING_REASON: &str = "policy bundle not loaded yet";
/// The revision shown meanwhile.
pub const BUNDLE_PENDING_REVISION: &str = "bundle-pending";

/// The policy in force until the first bundle loads, when no inline policy
/// is configured: deny everything (HTTP 503), saying why.
pub(super) const BUNDLE_PENDING_POLICY: &str = "package mcp\n\nimport rego.v1\n\ndefault allow := false\n\n\
deny contains \"policy bundle not loaded yet\"\n\n\
denial := {\"http_status\": 503, \"message\": \"mcp-policy: policy bundle not loaded yet; the request was not forwarded\"}\n";
