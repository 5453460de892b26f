//! Bounds on what a policy bundle may unpack to, and their defaults: read
//! by the settings (`bundle.max_*`) and applied by the bundle unpacker.

/// Default for `bundle.max_bytes`: the largest compressed bundle accepted.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Default for `bundle.max_uncompressed_bytes`.
pub const DEFAULT_MAX_UNCOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;
/// Default for `bundle.max_files`.
pub const DEFAULT_MAX_FILES: usize = 1000;

/// Bounds on what a bundle may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Compressed size (the download).
    pub max_bytes: usize,
    /// Uncompressed size of the whole tar stream (headers included).
    pub max_uncompressed_bytes: u64,
    /// Entries in the archive (files, directories, anything).
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_uncompressed_bytes: DEFAULT_MAX_UNCOMPRESSED_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}
