//! Interned object keys: the names `input` is built with and messages are
//! read with, one `Value` per name per thread. They live with the wire model
//! because every layer above it (the message reader, the attributes, the
//! policy input, the pipeline) reads values with them.

use regorus::Value;

/// An object key as a policy value, made once per thread: building
/// `input` and reading the message use the same few dozen names for every
/// request, and a fresh string for each would be an allocation (and a free)
/// every time. Keyed by the address of the `'static` text.
///
/// Per thread, on purpose, and not a `once_cell` static: the names are an
/// open set (any `'static` text a caller passes), so this is a memo that
/// grows, not a value built once. A `Value` is `Sync` in this build
/// (regorus' `arc` feature), so a `once_cell::sync::Lazy<Mutex<…>>` would be
/// correct too, but it would take a lock on every key of every message;
/// a thread-local `RefCell` is already lazily built and per VM (a wasm VM is
/// one thread), at the cost of one map per thread in native hosts.
pub fn key(name: &'static str) -> Value {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};
    #[derive(Default)]
    struct Address(u64);
    impl Hasher for Address {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        fn write_usize(&mut self, n: usize) {
            // Address and length both count: each write is mixed in.
            self.0 = (self.0.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    type Keys = HashMap<(usize, usize), Value, BuildHasherDefault<Address>>;
    thread_local! {
        static KEYS: RefCell<Keys> = RefCell::new(Keys::default());
    }
    KEYS.with(|k| {
        k.borrow_mut()
            .entry((name.as_ptr() as usize, name.len()))
            .or_insert_with(|| Value::from(name))
            .clone()
    })
}
