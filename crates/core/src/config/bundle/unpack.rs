//! Unpacking an OPA-layout bundle within its [`Limits`], and compiling it
//! with the configuration's settings.

use crate::config::limits::Limits;
use crate::config::settings::{Config, Settings};
use crate::mcp::attributes::Needs;
use crate::policy::engine::{Policy, PolicyError};
use std::fmt;
use std::io::Read;

/// What a bundle holds, unpacked.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// (path in the bundle, Rego source), sorted by path.
    pub modules: Vec<(String, String)>,
    /// Every data file merged (a JSON object).
    pub data: serde_json::Value,
    /// `.manifest` `revision`, if given and not empty.
    pub revision: Option<String>,
    /// `.manifest` `roots` (`[""]`, everything, when not given).
    pub roots: Vec<String>,
}

/// Why a bundle was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// Larger than a limit.
    TooLarge(String),
    /// Not a gzipped tar, or a file in it that cannot be read.
    Unpack(String),
    /// The modules and data do not compile.
    Compile(String),
}

impl BundleError {
    /// The kind, as a word (logs, metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::TooLarge(_) => "too_large",
            BundleError::Unpack(_) => "unpack",
            BundleError::Compile(_) => "compile",
        }
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::TooLarge(m) => write!(f, "bundle too large: {m}"),
            BundleError::Unpack(m) => write!(f, "bundle unreadable: {m}"),
            BundleError::Compile(m) => write!(f, "bundle does not compile: {m}"),
        }
    }
}

impl std::error::Error for BundleError {}

/// Counts what the gzip decoder yields and stops past the limit, so a
/// decompression bomb costs at most `limit` bytes of work.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "more than {} bytes uncompressed (max_uncompressed_bytes)",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// A path inside the archive, normalised: no leading `/` or `./`, no empty
/// or `.` segments; `..` is refused.
fn normalise(raw: &str) -> Result<String, BundleError> {
    let mut parts = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                return Err(BundleError::Unpack(format!(
                    "{raw}: `..` in a path inside the bundle"
                )))
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn dir_segments(path: &str) -> Vec<&str> {
    let mut segs: Vec<&str> = path.split('/').collect();
    segs.pop();
    segs
}

fn parse_json(path: &str, bytes: &[u8]) -> Result<serde_json::Value, BundleError> {
    serde_json::from_slice(bytes)
        .map_err(|e| BundleError::Unpack(format!("{path}:{}:{}: {e}", e.line(), e.column())))
}

/// Merge `doc` into `into` at `at` (the data file's directory), as OPA does:
/// objects merge key by key; any other value met twice is a conflict.
fn merge_at(
    into: &mut serde_json::Map<String, serde_json::Value>,
    at: &[&str],
    doc: serde_json::Map<String, serde_json::Value>,
    file: &str,
) -> Result<(), BundleError> {
    let mut node = into;
    for seg in at {
        let entry = node
            .entry((*seg).to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        node = match entry {
            serde_json::Value::Object(m) => m,
            _ => {
                return Err(BundleError::Unpack(format!(
                    "{file}: data path {} is already a value that is not an object",
                    at.join(".")
                )))
            }
        };
    }
    merge_objects(node, doc, file, &at.join("."))
}

fn merge_objects(
    into: &mut serde_json::Map<String, serde_json::Value>,
    doc: serde_json::Map<String, serde_json::Value>,
    file: &str,
    at: &str,
) -> Result<(), BundleError> {
    for (k, v) in doc {
        let here = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match (into.get_mut(&k), v) {
            (None, v) => {
                into.insert(k, v);
            }
            (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) => {
                merge_objects(a, b, file, &here)?;
            }
            (Some(_), _) => {
                return Err(BundleError::Unpack(format!(
                    "{file}: data.{here} is also set by another data file"
                )))
            }
        }
    }
    Ok(())
}

/// The `package` of a Rego module, as a `/`-separated path (`a/b` for
/// `package a.b`), if it can be read from the first such line.
fn package_path(source: &str) -> Option<String> {
    source.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("package")?;
        if !rest.starts_with(|c: char| c.is_whitespace()) {
            return None;
        }
        let name = rest.split_whitespace().next()?;
        let name = name.split('#').next().unwrap_or(name);
        Some(name.replace('.', "/"))
    })
}

/// `path` (`a/b/c`) lies under `root` (`a/b`, or `""` for everything).
fn under(path: &str, root: &str) -> bool {
    let root = root.trim_matches('/');
    root.is_empty()
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    roots: Option<Vec<String>>,
}

/// Unpack a gzipped tar within `limits` (`*_test.rego` skipped).
pub fn unpack(bytes: &[u8], limits: &Limits) -> Result<Bundle, BundleError> {
    unpack_inner(bytes, limits, false)
}

/// As [`unpack`], keeping the `*_test.rego` modules too (for the CLI's
/// `test`).
pub fn unpack_with_tests(bytes: &[u8], limits: &Limits) -> Result<Bundle, BundleError> {
    unpack_inner(bytes, limits, true)
}

fn unpack_inner(bytes: &[u8], limits: &Limits, tests: bool) -> Result<Bundle, BundleError> {
    if bytes.len() > limits.max_bytes {
        return Err(BundleError::TooLarge(format!(
            "{} bytes compressed, more than max_bytes {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    // Multi-member gzip is read whole, as Go's reader (OPA) does.
    let gz = flate2::read::MultiGzDecoder::new(bytes);
    let mut archive = tar::Archive::new(Bounded {
        inner: gz,
        read: 0,
        limit: limits.max_uncompressed_bytes,
    });
    let entries = archive
        .entries()
        .map_err(|e| BundleError::Unpack(format!("not a gzipped tar: {e}")))?;
    let mut modules: Vec<(String, String)> = Vec::new();
    let mut data_files: Vec<(String, serde_json::Value)> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(&e))?;
        count += 1;
        if count > limits.max_files {
            return Err(BundleError::TooLarge(format!(
                "more than max_files {} entries",
                limits.max_files
            )));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| BundleError::Unpack("a path inside the bundle is not UTF-8".into()))?;
        let path = normalise(&raw)?;
        let name = file_name(&path);
        let wanted = name.ends_with(".rego") && (tests || !name.ends_with("_test.rego"))
            || name == "data.json"
            || path == ".manifest";
        if name == "data.yaml" || name == "data.yml" {
            return Err(BundleError::Unpack(format!(
                "{path}: YAML data files are not supported; use data.json"
            )));
        }
        if name == "patch.json" {
            return Err(BundleError::Unpack(format!(
                "{path}: delta bundles (patch.json) are not supported"
            )));
        }
        if name.ends_with(".wasm") {
            return Err(BundleError::Unpack(format!(
                "{path}: Wasm policies are not supported (Rego modules only)"
            )));
        }
        if !wanted {
            continue;
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| BundleError::Unpack(format!("{path}: {e}")))?;
        if path == ".manifest" {
            let m: Manifest = serde_json::from_slice(&content).map_err(|e| {
                BundleError::Unpack(format!(".manifest:{}:{}: {e}", e.line(), e.column()))
            })?;
            manifest = Some(m);
        } else if name == "data.json" {
            data_files.push((path.clone(), parse_json(&path, &content)?));
        } else {
            let source = String::from_utf8(content)
                .map_err(|_| BundleError::Unpack(format!("{path}: not UTF-8")))?;
            if modules.iter().any(|(p, _)| *p == path) {
                return Err(BundleError::Unpack(format!("{path}: twice in the bundle")));
            }
            modules.push((path, source));
        }
    }
    let (revision, roots) = match manifest {
        Some(m) => (
            m.revision.filter(|r| !r.is_empty()),
            m.roots.unwrap_or_else(|| vec![String::new()]),
        ),
        None => (None, vec![String::new()]),
    };
    let mut data = serde_json::Map::new();
    data_files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, doc) in data_files {
        let serde_json::Value::Object(doc) = doc else {
            return Err(BundleError::Unpack(format!(
                "{path}: a data file must hold a JSON object"
            )));
        };
        let at = dir_segments(&path);
        for key in doc.keys() {
            let mut full: Vec<&str> = at.clone();
            full.push(key);
            let p = full.join("/");
            if !roots.iter().any(|r| under(&p, r)) {
                return Err(BundleError::Unpack(format!(
                    "{path}: data path {} is outside the manifest roots {roots:?}",
                    full.join(".")
                )));
            }
        }
        merge_at(&mut data, &at, doc, &path)?;
    }
    for (path, source) in &modules {
        if let Some(pkg) = package_path(source) {
            if !roots.iter().any(|r| under(&pkg, r)) {
                return Err(BundleError::Unpack(format!(
                    "{path}: package {} is outside the manifest roots {roots:?}",
                    pkg.replace('/', ".")
                )));
            }
        }
    }
    modules.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Bundle {
        modules,
        data: serde_json::Value::Object(data),
        revision,
        roots,
    })
}

fn read_error(e: &std::io::Error) -> BundleError {
    let m = e.to_string();
    if m.contains("max_uncompressed_bytes") {
        BundleError::TooLarge(m)
    } else {
        BundleError::Unpack(format!("not a gzipped tar: {m}"))
    }
}

impl Bundle {
    /// Compile the bundle's modules and data with the configuration's
    /// settings. Its revision is the manifest's, else the content digest.
    pub fn compile(&self, settings: &Settings) -> Result<Config, BundleError> {
        if self.modules.is_empty() {
            return Err(BundleError::Compile("no Rego modules in the bundle".into()));
        }
        let mut policy =
            Policy::compile(&self.modules, Some(&self.data), settings.max_instructions)
                .map_err(|e: PolicyError| BundleError::Compile(e.to_string()))?;
        policy.set_interpreter_time_limit(std::time::Duration::from_millis(settings.max_eval_ms));
        policy.set_builtin_errors(settings.policy_errors);
        if let Some(r) = &self.revision {
            policy.set_revision(r.clone());
        }
        let needs = Needs::from_sources(self.modules.iter().map(|(_, s)| s.as_str()));
        Ok(Config {
            settings: settings.clone(),
            policy,
            needs,
            bundle_pending: false,
        })
    }
}

/// Unpack and compile in one step.
pub fn load(bytes: &[u8], limits: &Limits, settings: &Settings) -> Result<Config, BundleError> {
    unpack(bytes, limits)?.compile(settings)
}
