//! A host emulator: every [`Host`] call is recorded, in order, as one line
//! of text, and answered from the state a test set up (configuration,
//! headers, bodies, properties, shared data, the answers to HTTP calls).
//! The state is per thread (the plugin's clock is a plain function), so
//! each test starts with [`Mock::new`].

use crate::proxy::host::{Buffer, DispatchError, Host, HostError, Map, CAS_MISMATCH};
use mcp_policy_core::host::{Level, MetricKind};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

/// The emulated host's state.
#[derive(Default)]
pub struct State {
    pub calls: Vec<String>,
    pub buffers: BTreeMap<String, Vec<u8>>,
    pub maps: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    pub properties: BTreeMap<String, Vec<u8>>,
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    pub metrics: Vec<(MetricKind, String, i64)>,
    pub tokens: u32,
    /// Clusters an HTTP call to fails (`BadArgument`).
    pub unknown_clusters: Vec<String>,
    /// How far the clock has moved on from [`NOW`].
    pub elapsed: Duration,
    /// The proxy's log level (`None`: Envoy's default, info).
    pub log_level: Option<Level>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// The emulated host (its state is the thread's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mock;

/// 2026-01-01T00:00:00Z, the emulated host's constant time.
pub const NOW: Duration = Duration::from_secs(1_767_225_600);

impl Mock {
    /// A fresh host.
    pub fn new() -> Mock {
        STATE.with(|s| *s.borrow_mut() = State::default());
        Mock
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        STATE.with(|s| f(&mut s.borrow_mut()))
    }

    fn call(&self, line: String) {
        self.with(|s| s.calls.push(line));
    }

    /// The calls made since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<String> {
        self.with(|s| std::mem::take(&mut s.calls))
    }

    pub fn set_buffer_bytes(&self, b: Buffer, bytes: &[u8]) {
        self.with(|s| s.buffers.insert(format!("{b:?}"), bytes.to_vec()));
    }

    pub fn buffer(&self, b: Buffer) -> Vec<u8> {
        self.with(|s| {
            s.buffers
                .get(&format!("{b:?}"))
                .cloned()
                .unwrap_or_default()
        })
    }

    pub fn set_map(&self, m: Map, pairs: &[(&str, &str)]) {
        let pairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.with(|s| s.maps.insert(format!("{m:?}"), pairs));
    }

    /// A metric's value (counters and gauges: the sum; histograms: the
    /// number of values recorded).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.with(|s| {
            s.metrics
                .iter()
                .find(|(_, n, _)| n == name)
                .map(|(_, _, v)| *v)
        })
    }

    fn metric_name(&self, id: u32) -> String {
        self.with(|s| {
            s.metrics
                .get(id as usize)
                .map(|(_, n, _)| n.clone())
                .unwrap_or_default()
        })
    }
}

impl Host for Mock {
    fn log(&self, level: Level, message: &str) -> Result<(), HostError> {
        self.call(format!("log {level:?}: {message}"));
        Ok(())
    }

    fn get_current_time(&self) -> Result<Duration, HostError> {
        self.call("get_current_time".into());
        Ok(NOW + self.with(|s| s.elapsed))
    }

    fn log_level(&self) -> Result<Level, HostError> {
        self.call("log_level".into());
        Ok(self.with(|s| s.log_level.unwrap_or(Level::Info)))
    }

    fn micros() -> u64 {
        Mock.call("get_current_time".into());
        (NOW + Mock.with(|s| s.elapsed)).as_micros() as u64
    }

    fn set_tick_period(&self, period: Duration) -> Result<(), HostError> {
        self.call(format!("set_tick_period {}ms", period.as_millis()));
        Ok(())
    }

    fn get_buffer(
        &self,
        b: Buffer,
        start: usize,
        max_size: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        self.call(format!("get_buffer {b:?}"));
        Ok(self.with(|s| {
            s.buffers.get(&format!("{b:?}")).map(|v| {
                v.iter()
                    .skip(start)
                    .take(max_size)
                    .copied()
                    .collect::<Vec<u8>>()
            })
        }))
    }

    fn set_buffer(
        &self,
        b: Buffer,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), HostError> {
        self.call(format!(
            "set_buffer {b:?} [{start}, +{size}) = {}",
            String::from_utf8_lossy(value)
        ));
        self.with(|s| s.buffers.insert(format!("{b:?}"), value.to_vec()));
        Ok(())
    }

    fn get_map_bytes(&self, m: Map) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        self.call(format!("get_map {m:?}"));
        Ok(self.with(|s| s.maps.get(&format!("{m:?}")).cloned().unwrap_or_default()))
    }

    fn get_map_value_bytes(&self, m: Map, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.call(format!("get_map_value {m:?} {key}"));
        Ok(self.with(|s| {
            s.maps
                .get(&format!("{m:?}"))
                .and_then(|p| p.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
        }))
    }

    fn set_map_value(&self, m: Map, key: &str, value: Option<&str>) -> Result<(), HostError> {
        match value {
            Some(v) => self.call(format!("set_map_value {m:?} {key}: {v}")),
            None => self.call(format!("remove_map_value {m:?} {key}")),
        }
        self.with(|s| {
            let pairs = s.maps.entry(format!("{m:?}")).or_default();
            pairs.retain(|(k, _)| k != key);
            if let Some(v) = value {
                pairs.push((key.to_string(), v.as_bytes().to_vec()));
            }
        });
        Ok(())
    }

    fn get_property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        let path = path.join(".");
        self.call(format!("get_property {path}"));
        Ok(self.with(|s| s.properties.get(&path).cloned()))
    }

    fn set_property(&self, path: &[&str], value: Option<&[u8]>) -> Result<(), HostError> {
        let path = path.join(".");
        let v = value.map(|v| String::from_utf8_lossy(v).into_owned());
        self.call(format!(
            "set_property {path} = {}",
            v.as_deref().unwrap_or("")
        ));
        self.with(|s| {
            s.properties
                .insert(path, value.unwrap_or_default().to_vec())
        });
        Ok(())
    }

    fn get_shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.call(format!("get_shared_data {key}"));
        Ok(self.with(|s| match s.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }))
    }

    fn set_shared_data(
        &self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        self.call(format!("set_shared_data {key}"));
        self.with(|s| {
            let current = s.shared.get(key).map_or(0, |(_, c)| *c);
            if cas.is_some_and(|c| c != current) {
                return Err(HostError(CAS_MISMATCH));
            }
            s.shared.insert(
                key.to_string(),
                (value.unwrap_or_default().to_vec(), current + 1),
            );
            Ok(())
        })
    }

    fn send_http_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(), HostError> {
        self.call(format!(
            "send_http_response {status} {headers:?} {}",
            String::from_utf8_lossy(body.unwrap_or_default())
        ));
        Ok(())
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, DispatchError> {
        self.call(format!(
            "dispatch_http_call {cluster} {headers:?} {} byte(s), timeout {}ms",
            body.map_or(0, <[u8]>::len),
            timeout.as_millis()
        ));
        self.with(|s| {
            if s.unknown_clusters.iter().any(|c| c == cluster) {
                return Err(DispatchError::BadArgument);
            }
            s.tokens += 1;
            Ok(s.tokens)
        })
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.call(format!("define_metric {kind:?} {name}"));
        Ok(self.with(|s| {
            s.metrics.push((kind, name.to_string(), 0));
            s.metrics.len() as u32 - 1
        }))
    }

    fn increment_metric(&self, id: u32, offset: i64) -> Result<(), HostError> {
        let name = self.metric_name(id);
        self.call(format!("increment_metric {name} {offset:+}"));
        self.with(|s| {
            if let Some(m) = s.metrics.get_mut(id as usize) {
                m.2 += offset;
            }
        });
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        let name = self.metric_name(id);
        self.call(format!("record_metric {name} {value}"));
        self.with(|s| {
            if let Some(m) = s.metrics.get_mut(id as usize) {
                m.2 += 1;
            }
        });
        Ok(())
    }

    fn trap(&self) -> ! {
        panic!("the VM trapped")
    }
}
