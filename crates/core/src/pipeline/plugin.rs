//! The plugin: a loaded configuration with its compiled policy, and the
//! one evaluation every decision goes through.

use crate::config::settings::{Config, Settings};
use crate::mcp::attributes::Needs;
use crate::observe::audit;
use crate::pipeline::actions::{Outcome, EVAL_FAILED};
use crate::pipeline::memo::ListingMemo;
use crate::policy::engine::{Policy, PolicyError, PolicyResult};
use regorus::Value;

/// A loaded configuration with its compiled policy: everything needed to
/// decide requests.
#[derive(Debug)]
pub struct Plugin {
    pub settings: Settings,
    pub policy: Policy,
    pub needs: Needs,
    /// Decision ids (the host reseeds it).
    pub ids: audit::Ids,
    /// A microsecond clock for evaluation times (the host replaces it).
    pub clock: fn() -> u64,
    /// Listing verdicts already made by this configuration.
    pub listing: ListingMemo,
}

/// The native clock: microseconds since the epoch. (In wasm the host
/// supplies its clock: std's can panic on a host without WASI clocks.)
#[cfg(not(target_arch = "wasm32"))]
fn default_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn default_clock() -> u64 {
    0
}

impl From<Config> for Plugin {
    fn from(c: Config) -> Self {
        let mut seed = [0u8; 32];
        let t = default_clock().to_le_bytes();
        for (d, s) in seed
            .iter_mut()
            .zip(t.iter().chain(c.policy.revision().as_bytes()))
        {
            *d = *s;
        }
        Plugin {
            settings: c.settings,
            policy: c.policy,
            needs: c.needs,
            ids: audit::Ids::new(seed),
            clock: default_clock,
            listing: ListingMemo::default(),
        }
    }
}

impl Plugin {
    /// Evaluate; a policy error denies with the error as the reason.
    pub(crate) fn evaluate(&mut self, input: Value) -> Outcome {
        let start = (self.clock)();
        let mut o = self.evaluate_untimed(input);
        o.eval_us = (self.clock)().saturating_sub(start);
        o
    }

    /// Evaluate without timing it: a list item (the list answer is one
    /// decision, and timing each item would read the host's clock twice per
    /// item).
    pub(crate) fn evaluate_untimed(&mut self, input: Value) -> Outcome {
        let result = self.policy.evaluate(input);
        self.outcome(result)
    }

    fn outcome(&self, result: Result<PolicyResult, PolicyError>) -> Outcome {
        match result {
            Ok(r) if r.permits() => Outcome {
                allowed: true,
                reasons: Vec::new(),
                result: r,
                eval_us: 0,
                core: false,
            },
            Ok(r) => Outcome {
                allowed: false,
                reasons: if r.deny.is_empty() {
                    vec!["no policy rule allows this message".into()]
                } else {
                    r.deny.clone()
                },
                result: r,
                eval_us: 0,
                core: false,
            },
            Err(e) => Outcome {
                allowed: false,
                reasons: vec![format!("{EVAL_FAILED}: {e}")],
                result: PolicyResult::default(),
                eval_us: 0,
                core: false,
            },
        }
    }
}
