//! The host-independent half of polling a bundle source: when to poll,
//! what to send, and what an answer means. The adapter makes the call.

use super::unpack::{load, BundleError};
use crate::config::settings::{Config, Settings};
use sha2::Digest;
use std::fmt;

/// What became of one poll.
#[derive(Debug)]
pub enum Outcome {
    /// 304: the bundle has not changed.
    NotModified,
    /// A new bundle, compiled: swap it in. `bytes` is the bundle as
    /// downloaded (to keep for VMs that start later).
    Loaded { config: Box<Config>, bytes: Vec<u8> },
    /// Nothing usable; the last good policy stays in force.
    Failed(PollError),
}

/// Why a poll brought no new policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// No answer, an HTTP status other than 200/304, or an unreadable body.
    Download(String),
    Bundle(BundleError),
}

impl PollError {
    /// The kind, as a word (logs).
    pub fn kind(&self) -> &'static str {
        match self {
            PollError::Download(_) => "download",
            PollError::Bundle(e) => e.kind(),
        }
    }
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::Download(m) => write!(f, "bundle download failed: {m}"),
            PollError::Bundle(e) => write!(f, "{e}"),
        }
    }
}

/// The host-independent half of polling a bundle source: when to poll,
/// what to send, and what an answer means. The adapter makes the call.
#[derive(Debug)]
pub struct Poller {
    settings: crate::config::settings::BundleSettings,
    /// The ETag of the last bundle answered with 200 (good or not: a broken
    /// bundle is not fetched and compiled again until it changes).
    etag: Option<String>,
    /// SHA-256 of the last bundle answered with 200 (good or not), for
    /// sources that send no ETag: an unchanged body is not compiled again.
    digest: Option<[u8; 32]>,
    /// The call waiting for its answer, and when it was sent.
    in_flight: Option<u32>,
    sent_ms: u64,
    /// When the next poll is due (read by the tests).
    pub(super) next_poll_ms: u64,
    rng: u64,
}

impl Poller {
    /// `seed` spreads the jitter of VMs started at the same moment.
    pub fn new(settings: crate::config::settings::BundleSettings, seed: u64) -> Self {
        Poller {
            settings,
            etag: None,
            digest: None,
            in_flight: None,
            sent_ms: 0,
            next_poll_ms: 0,
            rng: seed | 1,
        }
    }

    pub fn settings(&self) -> &crate::config::settings::BundleSettings {
        &self.settings
    }

    /// The ETag sent as `If-None-Match`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Start from a bundle kept from earlier (see [`encode_kept`]).
    pub fn set_etag(&mut self, etag: Option<String>) {
        self.etag = etag;
    }

    /// A poll should be sent now (none in flight, the interval has passed).
    /// A call whose answer never came (the host always answers, at the
    /// latest when `timeout_ms` runs out) is given up a second after that,
    /// so polling can never stop for good.
    pub fn due(&mut self, now_ms: u64) -> bool {
        if self.in_flight.is_some()
            && now_ms
                > self
                    .sent_ms
                    .saturating_add(self.settings.timeout_ms)
                    .saturating_add(1000)
        {
            self.in_flight = None;
        }
        self.in_flight.is_none() && now_ms >= self.next_poll_ms
    }

    fn jitter(&mut self) -> u64 {
        // xorshift64: spreading, not secrecy.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let j = self.settings.jitter_ms();
        if j == 0 {
            0
        } else {
            x % (j + 1)
        }
    }

    /// The request headers of a poll; the next one is scheduled one
    /// interval (plus jitter) from `now_ms`.
    pub fn request(&mut self, now_ms: u64) -> Vec<(String, String)> {
        self.sent_ms = now_ms;
        self.next_poll_ms = now_ms
            .saturating_add(self.settings.poll_interval_ms)
            .saturating_add(self.jitter());
        let authority = self
            .settings
            .authority
            .clone()
            .unwrap_or_else(|| self.settings.cluster.clone());
        let mut h = vec![
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), self.settings.path.clone()),
            (":authority".to_string(), authority),
            (
                "accept".to_string(),
                "application/gzip, application/octet-stream".to_string(),
            ),
        ];
        if let Some(e) = &self.etag {
            h.push(("if-none-match".to_string(), e.clone()));
        }
        h
    }

    /// The call was dispatched under `token`.
    pub fn sent(&mut self, token: u32) {
        self.in_flight = Some(token);
    }

    /// The call in flight, if any.
    pub fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }

    /// `token` is this poller's call.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// The answer to the call in flight: `status` (None: no answer, e.g.
    /// connection refused or timed out), its ETag, the body size, and how to
    /// read the body.
    pub fn on_response(
        &mut self,
        status: Option<u32>,
        etag: Option<String>,
        body_size: usize,
        read_body: impl FnOnce() -> Option<Vec<u8>>,
        settings: &Settings,
    ) -> Outcome {
        self.in_flight = None;
        match status {
            Some(304) => return Outcome::NotModified,
            Some(200) => {}
            Some(s) => {
                // A short body says why (Envoy's own answer when the source
                // is unreachable: "upstream connect error ...").
                let why = if body_size > 0 && body_size <= 1024 {
                    read_body()
                        .map(|b| {
                            let t: String = String::from_utf8_lossy(&b)
                                .chars()
                                .map(|c| if c.is_control() { ' ' } else { c })
                                .take(200)
                                .collect();
                            t.trim().to_string()
                        })
                        .filter(|t| !t.is_empty())
                } else {
                    None
                };
                let m = match why {
                    Some(w) => format!("HTTP {s} ({w})"),
                    None => format!("HTTP {s}"),
                };
                return Outcome::Failed(PollError::Download(m));
            }
            None => {
                return Outcome::Failed(PollError::Download(
                    "no answer (connection failed or timed out)".into(),
                ))
            }
        }
        if etag.is_some() && etag == self.etag {
            // The server ignored If-None-Match: same bundle.
            return Outcome::NotModified;
        }
        let limits = self.settings.limits();
        if body_size > limits.max_bytes {
            self.etag = etag;
            return Outcome::Failed(PollError::Bundle(BundleError::TooLarge(format!(
                "{body_size} bytes compressed, more than max_bytes {}",
                limits.max_bytes
            ))));
        }
        let Some(body) = read_body() else {
            return Outcome::Failed(PollError::Download("the body could not be read".into()));
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&body).into();
        if self.digest == Some(digest) {
            // No ETag (or a new one) but the same bytes: same bundle.
            self.etag = etag;
            return Outcome::NotModified;
        }
        self.digest = Some(digest);
        self.etag = etag;
        match load(&body, &limits, settings) {
            Ok(c) => Outcome::Loaded {
                config: Box::new(c),
                bytes: body,
            },
            Err(e) => Outcome::Failed(PollError::Bundle(e)),
        }
    }

    /// The call could not even be dispatched (e.g. unknown cluster).
    pub fn send_failed(&mut self) {
        self.in_flight = None;
    }
}
