//! A bundle source as the filter drives it: what to log and count when a
//! poll is sent, answered or fails, keeping the last good bundle in the
//! host's shared data and restoring it in a VM that starts later. The
//! adapter only makes the HTTP call and reads the answer; everything it
//! decides with the answer is here.

use super::kept::{decode_kept, encode_kept, kept_key};
use super::poll::{Outcome, Poller};
use super::unpack::load;
use crate::config::settings::{Config, Settings};
use crate::host::{Level, MetricKind, Recorder, Store};
use crate::observe::metrics;
use crate::policy::engine::Policy;

/// The source as the logs name it: cluster and path.
pub fn source(p: &Poller) -> String {
    format!("{}{}", p.settings().cluster, p.settings().path)
}

/// The bundle counters, defined when a source is configured so they are
/// exported (as 0) before the first poll.
pub fn define(rec: &mut impl Recorder) {
    rec.define(MetricKind::Counter, metrics::BUNDLE_LOADS);
    rec.define(MetricKind::Counter, metrics::BUNDLE_FAILURES);
    rec.define(MetricKind::Counter, metrics::BUNDLE_NOT_MODIFIED);
}

/// The gauge counting the VMs that serve `revision`.
pub fn active_gauge(revision: &str) -> String {
    format!(
        "{}.revision.{}",
        metrics::BUNDLE_ACTIVE,
        metrics::sanitize(revision)
    )
}

/// A poll went out under `token`.
pub fn sent(p: &mut Poller, rec: &mut impl Recorder, token: u32) {
    p.sent(token);
    rec.log(
        Level::Debug,
        &format!(
            "mcp-policy: bundle poll {token} sent to {}{} (if-none-match {})",
            p.settings().cluster,
            p.settings().path,
            p.etag().unwrap_or("none")
        ),
    );
}

/// A poll could not be sent (`error`: the host's reason); the failure to
/// report with [`failed`].
pub fn not_sent(p: &mut Poller, error: &dyn std::fmt::Debug) -> String {
    p.send_failed();
    format!(
        "bundle download failed: the call to cluster {} could not be made ({error:?})",
        p.settings().cluster
    )
}

/// A poll brought no new policy: say so, and count it. `source` is empty
/// without a poller; `keeping` is the revision still served.
pub fn failed(rec: &mut impl Recorder, source: &str, keeping: &str, reason: &str, level: Level) {
    rec.log(
        level,
        &format!("mcp-policy: policy bundle from {source} not used: {reason}; still serving revision {keeping} (counted in mcp_policy_bundle_failures)"),
    );
    rec.count(metrics::BUNDLE_FAILURES, 1);
}

/// The poll's answer: `status` (None: no answer), its ETag, the body size
/// and how to read the body. A new bundle that compiles is kept in shared
/// data and returned (with its ETag) to swap in; anything else is logged
/// and counted here.
#[allow(clippy::too_many_arguments)]
pub fn answered(
    p: &mut Poller,
    store: &dyn Store,
    rec: &mut impl Recorder,
    status: Option<u32>,
    etag: Option<String>,
    body_size: usize,
    read_body: impl FnOnce() -> Option<Vec<u8>>,
    settings: &Settings,
    keeping: &str,
) -> Option<Config> {
    let outcome = p.on_response(status, etag.clone(), body_size, read_body, settings);
    match outcome {
        Outcome::NotModified => {
            rec.count(metrics::BUNDLE_NOT_MODIFIED, 1);
            None
        }
        Outcome::Failed(e) => {
            let level = if e.kind() == "download" {
                Level::Warn
            } else {
                Level::Error
            };
            failed(rec, &source(p), keeping, &e.to_string(), level);
            None
        }
        Outcome::Loaded { config, bytes } => {
            keep(p, store, rec, etag.as_deref(), &bytes);
            Some(*config)
        }
    }
}

/// A bundle from the source replaced revision `previous`: say so, count it.
pub fn loaded(
    rec: &mut impl Recorder,
    source: &str,
    policy: &Policy,
    etag: Option<&str>,
    previous: &str,
) {
    rec.log(
        Level::Info,
        &format!(
            "mcp-policy: policy bundle loaded from {source}: revision {} ({} module(s): {}; engine {}; etag {}), replacing revision {previous}",
            policy.revision(),
            policy.module_names().len(),
            policy.module_names().join(", "),
            policy.engine_kind().as_str(),
            etag.unwrap_or("none"),
        ),
    );
    rec.count(metrics::BUNDLE_LOADS, 1);
}

/// Keep the bundle just loaded in shared data for VMs that start later
/// (once per ETag: the other VMs find it already there).
pub fn keep(
    p: &Poller,
    store: &dyn Store,
    rec: &mut impl Recorder,
    etag: Option<&str>,
    bytes: &[u8],
) {
    let key = kept_key(p.settings());
    let etag_key = format!("{key}.etag");
    let e = etag.unwrap_or("");
    if !e.is_empty() && store.get(&etag_key).is_some_and(|(v, _)| v == e.as_bytes()) {
        return;
    }
    let value = encode_kept(etag, bytes);
    if let Err(err) = store
        .set(&key, &value, None)
        .and_then(|()| store.set(&etag_key, e.as_bytes(), None))
    {
        rec.log(
            Level::Warn,
            &format!("mcp-policy: could not keep the policy bundle in shared data: {err:?}"),
        );
    }
}

/// The last good bundle of this source, kept in shared data by any VM of
/// this proxy, compiled with this configuration's settings: a VM that
/// starts (a new worker, a reconfiguration, a reloaded VM) serves it at
/// once instead of waiting for its first poll.
pub fn restore(
    p: &mut Poller,
    store: &dyn Store,
    rec: &mut impl Recorder,
    settings: &Settings,
) -> Option<Config> {
    let (kept, _) = store.get(&kept_key(p.settings()))?;
    let (etag, body) = decode_kept(&kept)?;
    match load(body, &p.settings().limits(), settings) {
        Ok(c) => {
            rec.log(
                Level::Info,
                &format!(
                    "mcp-policy: policy bundle restored from shared data: revision {} (etag {}); polling {}{} for a newer one",
                    c.policy.revision(),
                    etag.as_deref().unwrap_or("none"),
                    p.settings().cluster,
                    p.settings().path
                ),
            );
            p.set_etag(etag);
            Some(c)
        }
        Err(e) => {
            rec.log(
                Level::Warn,
                &format!("mcp-policy: the policy bundle kept in shared data is not used: {e}"),
            );
            None
        }
    }
}
