//! One request being decided, and what every step of it shares.

use crate::host::Clock;
use crate::pipeline::actions::{fill_request_fields, upstream_of, Decided};
use crate::policy::input::HttpRequest;
use crate::state::store::Store;

/// One request being decided: the request, the upstream it goes to
/// (computed once, carried to the response side), and the shared store
/// with the clock (read only when state is used: a host read of the time
/// is a host call).
pub(super) struct Exchange<'a> {
    pub(super) http: &'a HttpRequest,
    pub(super) upstream: String,
    pub(super) store: Option<(&'a dyn Store, &'a dyn Clock)>,
}

impl<'a> Exchange<'a> {
    pub(super) fn new(
        http: &'a HttpRequest,
        store: Option<(&'a dyn Store, &'a dyn Clock)>,
    ) -> Exchange<'a> {
        Exchange {
            http,
            upstream: upstream_of(http),
            store,
        }
    }

    /// Give the records their decision id (`numbered`: one per record,
    /// `<id>-<i>`, when there are several) and the request's fields.
    pub(super) fn stamp(&self, decided: &mut [Decided], id: &str, numbered: bool) {
        let many = numbered && decided.len() > 1;
        for (i, d) in decided.iter_mut().enumerate() {
            d.record.decision_id = if many {
                format!("{id}-{i}")
            } else {
                id.to_string()
            };
            fill_request_fields(&mut d.record, self.http, &self.upstream);
        }
    }
}
