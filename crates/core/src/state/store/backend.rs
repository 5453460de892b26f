//! The store interface, an in-memory store, and the compare-and-swap loop
//! every update of a shared value goes through.

use std::collections::BTreeMap;
use std::fmt;

/// The host's shared store.
pub trait Store {
    /// The value and its compare-and-swap token.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Write if the token still matches (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote first: read again and retry.
    CasMismatch,
    /// Anything else (store full, host error).
    Failed(String),
}

/// Why an update of a shared value failed.
#[derive(Debug)]
pub enum UpdateError {
    /// The new value could not be encoded.
    Encode(serde_json::Error),
    /// The store refused the write (full, host error).
    Store(String),
    /// Other writers kept winning: `store` names what was updated ("session
    /// state", "the resume store").
    Contended { store: &'static str },
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::Encode(e) => write!(f, "{e}"),
            UpdateError::Store(e) => write!(f, "{e}"),
            UpdateError::Contended { store } => write!(
                f,
                "{store} is too contended (compare-and-swap kept failing)"
            ),
        }
    }
}

impl std::error::Error for UpdateError {}

/// How many times an update reads again after another writer won.
const CAS_ATTEMPTS: usize = 16;

/// Read `key`, let `change` compute the value to write from the bytes read
/// (`None`: absent), and write it under compare-and-swap; when another
/// writer won, read again (at most 16 times). `change` returns `None` when
/// nothing needs writing. `what` names the value in the contention error.
pub fn read_modify_write(
    store: &dyn Store,
    key: &str,
    what: &'static str,
    mut change: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, UpdateError>,
) -> Result<(), UpdateError> {
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(key);
        let cas = current.as_ref().map(|(_, c)| *c);
        let Some(bytes) = change(current.as_ref().map(|(b, _)| b.as_slice()))? else {
            return Ok(());
        };
        match store.set(key, &bytes, cas) {
            Ok(()) => return Ok(()),
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Failed(e)) => return Err(UpdateError::Store(e)),
        }
    }
    Err(UpdateError::Contended { store: what })
}

/// FNV-1a: a hash every worker (and every build) agrees on, for choosing
/// a key in the shared store.
pub(crate) fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// An in-process store: what the CLI and the native tests use, and what a
/// single-threaded host would use.
#[derive(Default)]
pub struct MemoryStore {
    pub(super) map: std::cell::RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.map.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut m = self.map.borrow_mut();
        let next = match (m.get(key), cas) {
            (Some((_, cur)), Some(c)) if *cur != c => return Err(StoreError::CasMismatch),
            (Some((_, cur)), _) => cur.wrapping_add(1),
            (None, _) => 1,
        };
        m.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}
