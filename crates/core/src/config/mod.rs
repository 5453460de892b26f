//! The plugin configuration: settings, limits and policy bundles.

/// Policy bundles (tar.gz): unpack, load, poll.
pub mod bundle;
/// Size limits of a bundle and their defaults.
pub mod limits;
/// The plugin settings and the compiled configuration.
pub mod settings;
