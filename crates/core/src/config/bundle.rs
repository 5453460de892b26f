//! Policy bundles: Rego modules and data in OPA's bundle layout (a gzipped
//! tar), unpacked within bounds and compiled into a [`Policy`]; and the
//! host-independent half of polling a bundle source ([`Poller`]).
//!
//! Layout (docs/bundles.md), as OPA reads it:
//! - `*.rego` anywhere: policy modules, named by their path in the bundle
//!   (`*_test.rego` files are skipped: run them with `mcp-policy test`);
//! - `data.json` anywhere: a JSON object, merged into `data` under its
//!   directory's path (`a/b/data.json` becomes `data.a.b`);
//! - `.manifest` at the top: `{"revision": "...", "roots": ["..."]}`; every
//!   package and data path must lie under one of the roots (default: all);
//! - `data.yaml`/`data.yml`, `patch.json` (delta bundles) and `*.wasm`
//!   are refused (a bundle is never half-read); `.signatures.json` and any
//!   other file are ignored (signatures are not verified).
//!
//! Every problem names the file inside the bundle (and the line and column
//! for JSON data and Rego).

use crate::config::limits::Limits;
use crate::config::settings::{Config, Settings};
use crate::mcp::attributes::Needs;
use crate::policy::engine::{Policy, PolicyError};
use sha2::Digest;
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

/// The last good bundle as kept in the host's shared data for VMs that
/// start later (a new worker, a reconfiguration, a reloaded VM): the ETag
/// (length-prefixed) then the bundle as downloaded.
pub fn encode_kept(etag: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let e = etag.unwrap_or("").as_bytes();
    let mut out = Vec::with_capacity(4 + e.len() + bytes.len());
    out.extend_from_slice(&(e.len() as u32).to_le_bytes());
    out.extend_from_slice(e);
    out.extend_from_slice(bytes);
    out
}

/// The ETag (`None` if there was none) and the bundle of [`encode_kept`].
pub fn decode_kept(v: &[u8]) -> Option<(Option<String>, &[u8])> {
    let len_bytes: [u8; 4] = v.get(..4)?.try_into().ok()?;
    let n = u32::from_le_bytes(len_bytes) as usize;
    let etag = std::str::from_utf8(v.get(4..4usize.checked_add(n)?)?).ok()?;
    let body = v.get(4 + n..)?;
    Some(((!etag.is_empty()).then(|| etag.to_string()), body))
}

/// The shared-data key of the bundle kept for one source.
pub fn kept_key(s: &crate::config::settings::BundleSettings) -> String {
    format!("mcp_policy.bundle.{}{}", s.cluster, s.path)
}

/// What became of one poll.
#[derive(Debug)]
pub enum Outcome {
    /// 304: the bundle has not changed.
    NotModified,
    /// A new bundle, compiled: swap it in. `bytes` is the bundle as
    /// downloaded (to keep for VMs that start later).
    Loaded { config: Box<Config>, bytes: Vec<u8> },
    /// Nothing usable; the last good policy stays in force.
    Failed(PollError),
}

/// Why a poll brought no new policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// No answer, an HTTP status other than 200/304, or an unreadable body.
    Download(String),
    Bundle(BundleError),
}

impl PollError {
    /// The kind, as a word (logs).
    pub fn kind(&self) -> &'static str {
        match self {
            PollError::Download(_) => "download",
            PollError::Bundle(e) => e.kind(),
        }
    }
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::Download(m) => write!(f, "bundle download failed: {m}"),
            PollError::Bundle(e) => write!(f, "{e}"),
        }
    }
}

/// The host-independent half of polling a bundle source: when to poll,
/// what to send, and what an answer means. The adapter makes the call.
#[derive(Debug)]
pub struct Poller {
    settings: crate::config::settings::BundleSettings,
    /// The ETag of the last bundle answered with 200 (good or not: a broken
    /// bundle is not fetched and compiled again until it changes).
    etag: Option<String>,
    /// SHA-256 of the last bundle answered with 200 (good or not), for
    /// sources that send no ETag: an unchanged body is not compiled again.
    digest: Option<[u8; 32]>,
    /// The call waiting for its answer, and when it was sent.
    in_flight: Option<u32>,
    sent_ms: u64,
    next_poll_ms: u64,
    rng: u64,
}

impl Poller {
    /// `seed` spreads the jitter of VMs started at the same moment.
    pub fn new(settings: crate::config::settings::BundleSettings, seed: u64) -> Self {
        Poller {
            settings,
            etag: None,
            digest: None,
            in_flight: None,
            sent_ms: 0,
            next_poll_ms: 0,
            rng: seed | 1,
        }
    }

    pub fn settings(&self) -> &crate::config::settings::BundleSettings {
        &self.settings
    }

    /// The ETag sent as `If-None-Match`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Start from a bundle kept from earlier (see [`encode_kept`]).
    pub fn set_etag(&mut self, etag: Option<String>) {
        self.etag = etag;
    }

    /// A poll should be sent now (none in flight, the interval has passed).
    /// A call whose answer never came (the host always answers, at the
    /// latest when `timeout_ms` runs out) is given up a second after that,
    /// so polling can never stop for good.
    pub fn due(&mut self, now_ms: u64) -> bool {
        if self.in_flight.is_some()
            && now_ms
                > self
                    .sent_ms
                    .saturating_add(self.settings.timeout_ms)
                    .saturating_add(1000)
        {
            self.in_flight = None;
        }
        self.in_flight.is_none() && now_ms >= self.next_poll_ms
    }

    fn jitter(&mut self) -> u64 {
        // xorshift64: spreading, not secrecy.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let j = self.settings.jitter_ms();
        if j == 0 {
            0
        } else {
            x % (j + 1)
        }
    }

    /// The request headers of a poll; the next one is scheduled one
    /// interval (plus jitter) from `now_ms`.
    pub fn request(&mut self, now_ms: u64) -> Vec<(String, String)> {
        self.sent_ms = now_ms;
        self.next_poll_ms = now_ms
            .saturating_add(self.settings.poll_interval_ms)
            .saturating_add(self.jitter());
        let authority = self
            .settings
            .authority
            .clone()
            .unwrap_or_else(|| self.settings.cluster.clone());
        let mut h = vec![
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), self.settings.path.clone()),
            (":authority".to_string(), authority),
            (
                "accept".to_string(),
                "application/gzip, application/octet-stream".to_string(),
            ),
        ];
        if let Some(e) = &self.etag {
            h.push(("if-none-match".to_string(), e.clone()));
        }
        h
    }

    /// The call was dispatched under `token`.
    pub fn sent(&mut self, token: u32) {
        self.in_flight = Some(token);
    }

    /// The call in flight, if any.
    pub fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }

    /// `token` is this poller's call.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// The answer to the call in flight: `status` (None: no answer, e.g.
    /// connection refused or timed out), its ETag, the body size, and how to
    /// read the body.
    pub fn on_response(
        &mut self,
        status: Option<u32>,
        etag: Option<String>,
        body_size: usize,
        read_body: impl FnOnce() -> Option<Vec<u8>>,
        settings: &Settings,
    ) -> Outcome {
        self.in_flight = None;
        match status {
            Some(304) => return Outcome::NotModified,
            Some(200) => {}
            Some(s) => {
                // A short body says why (Envoy's own answer when the source
                // is unreachable: "upstream connect error ...").
                let why = if body_size > 0 && body_size <= 1024 {
                    read_body()
                        .map(|b| {
                            let t: String = String::from_utf8_lossy(&b)
                                .chars()
                                .map(|c| if c.is_control() { ' ' } else { c })
                                .take(200)
                                .collect();
                            t.trim().to_string()
                        })
                        .filter(|t| !t.is_empty())
                } else {
                    None
                };
                let m = match why {
                    Some(w) => format!("HTTP {s} ({w})"),
                    None => format!("HTTP {s}"),
                };
                return Outcome::Failed(PollError::Download(m));
            }
            None => {
                return Outcome::Failed(PollError::Download(
                    "no answer (connection failed or timed out)".into(),
                ))
            }
        }
        if etag.is_some() && etag == self.etag {
            // The server ignored If-None-Match: same bundle.
            return Outcome::NotModified;
        }
        let limits = self.settings.limits();
        if body_size > limits.max_bytes {
            self.etag = etag;
            return Outcome::Failed(PollError::Bundle(BundleError::TooLarge(format!(
                "{body_size} bytes compressed, more than max_bytes {}",
                limits.max_bytes
            ))));
        }
        let Some(body) = read_body() else {
            return Outcome::Failed(PollError::Download("the body could not be read".into()));
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&body).into();
        if self.digest == Some(digest) {
            // No ETag (or a new one) but the same bytes: same bundle.
            self.etag = etag;
            return Outcome::NotModified;
        }
        self.digest = Some(digest);
        self.etag = etag;
        match load(&body, &limits, settings) {
            Ok(c) => Outcome::Loaded {
                config: Box::new(c),
                bytes: body,
            },
            Err(e) => Outcome::Failed(PollError::Bundle(e)),
        }
    }

    /// The call could not even be dispatched (e.g. unknown cluster).
    pub fn send_failed(&mut self) {
        self.in_flight = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A gzipped tar of (path, content) pairs.
    pub(crate) fn targz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw names (the builder refuses `..`, which the tests need).
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, content.as_bytes()).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    const MAIN: &str = "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"killed\" if input.mcp.tool.name in data.k.tools\n";

    #[test]
    fn unpacks_modules_data_and_manifest() {
        let b = unpack(
            &targz(&[
                (
                    "./.manifest",
                    r#"{"revision": "r1", "roots": ["mcp", "k", "library"]}"#,
                ),
                ("./policy/main.rego", MAIN),
                ("./policy/main_test.rego", "package mcp\ntest_x if true\n"),
                ("./k/data.json", r#"{"tools": ["rm"]}"#),
                ("./library/x/data.json", r#"{"a": 1}"#),
                ("./library/data.json", r#"{"y": {"b": 2}}"#),
                ("./README.md", "ignored"),
            ]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(b.revision.as_deref(), Some("r1"));
        assert_eq!(b.modules.len(), 1);
        assert_eq!(b.modules[0].0, "policy/main.rego");
        assert_eq!(
            b.data,
            serde_json::json!({"k": {"tools": ["rm"]}, "library": {"x": {"a": 1}, "y": {"b": 2}}})
        );
        let c = b.compile(&Settings::default()).unwrap();
        assert_eq!(c.policy.revision(), "r1");
    }

    #[test]
    fn revision_defaults_to_the_content_digest() {
        let b = unpack(&targz(&[("main.rego", MAIN)]), &Limits::default()).unwrap();
        let c = b.compile(&Settings::default()).unwrap();
        assert!(c.policy.revision().starts_with("sha256:"));
    }

    fn err(files: &[(&str, &str)]) -> String {
        match load(&targz(files), &Limits::default(), &Settings::default()) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = err(&[("p/main.rego", "package mcp\n\nallow if {\n")]);
        assert!(
            e.starts_with("bundle does not compile: p/main.rego:"),
            "{e}"
        );
        let e = err(&[("main.rego", MAIN), ("a/data.json", "{\n \"x\": [1,\n}")]);
        assert!(e.contains("a/data.json:3:"), "{e}");
        let e = err(&[("main.rego", MAIN), ("data.json", "[1]")]);
        assert!(
            e.contains("data.json: a data file must hold a JSON object"),
            "{e}"
        );
        let e = err(&[("main.rego", MAIN), (".manifest", "{\"revision\": 3}")]);
        assert!(e.contains(".manifest:1:"), "{e}");
        let e = err(&[("main.rego", MAIN), ("x/data.yaml", "a: 1")]);
        assert!(e.contains("x/data.yaml: YAML"), "{e}");
        let e = err(&[("../main.rego", MAIN)]);
        assert!(e.contains("`..`"), "{e}");
        let e = err(&[("README", "x")]);
        assert!(e.contains("no Rego modules"), "{e}");
        let e = err(&[
            ("main.rego", MAIN),
            ("data.json", r#"{"k": 1}"#),
            ("k/data.json", "{}"),
        ]);
        assert!(e.contains("k/data.json"), "{e}");
        let e = err(&[
            ("main.rego", MAIN),
            ("a/data.json", r#"{"x": 1}"#),
            ("data.json", r#"{"a": {"x": 2}}"#),
        ]);
        assert!(e.contains("data.a.x is also set"), "{e}");
        let e = err(&[
            (".manifest", r#"{"roots": ["other"]}"#),
            ("main.rego", MAIN),
        ]);
        assert!(
            e.contains("main.rego: package mcp is outside the manifest roots"),
            "{e}"
        );
        let e = err(&[
            (".manifest", r#"{"roots": ["mcp"]}"#),
            ("main.rego", MAIN),
            ("data.json", r#"{"k": {}}"#),
        ]);
        assert!(e.contains("data path k is outside"), "{e}");
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        // A tar split over two gzip members.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(MAIN.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "main.rego", MAIN.as_bytes()).unwrap();
        let tar = b.into_inner().unwrap();
        let (a, rest) = tar.split_at(700);
        let mut out = Vec::new();
        for part in [a, rest] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, part).unwrap();
            out.extend(gz.finish().unwrap());
        }
        let got = unpack(&out, &Limits::default()).unwrap();
        assert_eq!(got.modules.len(), 1);
    }

    #[test]
    fn garbage_is_refused() {
        let e = load(b"not gzip at all", &Limits::default(), &Settings::default()).unwrap_err();
        assert_eq!(e.kind(), "unpack");
        assert!(e.to_string().contains("not a gzipped tar"), "{e}");
        // gzip of something that is not a tar
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[7u8; 2000]).unwrap();
        let e = load(
            &gz.finish().unwrap(),
            &Limits::default(),
            &Settings::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), "unpack", "{e}");
        // truncated
        let full = targz(&[("main.rego", MAIN)]);
        let e = load(
            &full[..full.len() / 2],
            &Limits::default(),
            &Settings::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), "unpack", "{e}");
    }

    fn bundle_settings() -> crate::config::settings::BundleSettings {
        let c = Config::from_json(
            br#"{"bundle": {"cluster": "b", "poll_interval_ms": 1000, "poll_jitter_ms": 100}}"#,
        )
        .unwrap();
        assert!(c.bundle_pending);
        c.settings.bundle.unwrap()
    }

    #[test]
    fn poller_schedules_sends_etags_and_reads_answers() {
        let mut p = Poller::new(bundle_settings(), 42);
        let s = Settings::default();
        assert!(p.due(0));
        let h = p.request(0);
        assert!(h.contains(&(":path".into(), "/bundle.tar.gz".into())));
        assert!(h.contains(&(":authority".into(), "b".into())));
        assert!(!h.iter().any(|(k, _)| k == "if-none-match"));
        p.sent(7);
        assert!(!p.due(5000), "one call at a time");
        assert!(!p.due(5999));
        assert!(p.owns(7) && !p.owns(8));
        let body = targz(&[("main.rego", MAIN)]);
        let o = p.on_response(
            Some(200),
            Some("\"e1\"".into()),
            body.len(),
            || Some(body.clone()),
            &s,
        );
        assert!(matches!(o, Outcome::Loaded { .. }), "{o:?}");
        assert!(!p.due(999));
        assert!(p.due(1100));
        let h = p.request(1100);
        assert!(h.contains(&("if-none-match".into(), "\"e1\"".into())));
        p.sent(8);
        assert!(matches!(
            p.on_response(Some(304), None, 0, || None, &s),
            Outcome::NotModified
        ));
        p.request(3000);
        p.sent(9);
        let o = p.on_response(Some(500), None, 0, || None, &s);
        assert!(
            matches!(&o, Outcome::Failed(e) if e.to_string() == "bundle download failed: HTTP 500"),
            "{o:?}"
        );
        p.request(5000);
        p.sent(10);
        let o = p.on_response(None, None, 0, || None, &s);
        assert!(
            matches!(&o, Outcome::Failed(e) if e.kind() == "download"),
            "{o:?}"
        );
        // A broken bundle fails once, and its ETag is remembered.
        p.request(7000);
        p.sent(11);
        let bad = targz(&[("main.rego", "package mcp\nallow if {\n")]);
        let o = p.on_response(
            Some(200),
            Some("\"e2\"".into()),
            bad.len(),
            || Some(bad.clone()),
            &s,
        );
        assert!(
            matches!(&o, Outcome::Failed(e) if e.kind() == "compile" && e.to_string().contains("main.rego:")),
            "{o:?}"
        );
        assert_eq!(p.etag(), Some("\"e2\""));
        // An answer that never comes is given up after timeout_ms + 1 s.
        p.request(8000);
        p.sent(13);
        assert!(!p.due(8000 + 5000 + 1000));
        assert!(p.due(8000 + 5000 + 1001));
        assert!(!p.owns(13));
        // A source without ETags: the same bytes are not compiled again.
        let mut q = Poller::new(bundle_settings(), 1);
        q.request(0);
        q.sent(1);
        let o = q.on_response(Some(200), None, body.len(), || Some(body.clone()), &s);
        assert!(matches!(o, Outcome::Loaded { .. }), "{o:?}");
        q.request(2000);
        q.sent(2);
        let o = q.on_response(Some(200), None, body.len(), || Some(body.clone()), &s);
        assert!(matches!(o, Outcome::NotModified), "{o:?}");
        q.request(4000);
        q.sent(3);
        let o = q.on_response(Some(200), None, bad.len(), || Some(bad.clone()), &s);
        assert!(matches!(o, Outcome::Failed(_)), "{o:?}");
        q.request(6000);
        q.sent(4);
        let o = q.on_response(Some(200), None, bad.len(), || Some(bad.clone()), &s);
        assert!(
            matches!(o, Outcome::NotModified),
            "a broken bundle fails once: {o:?}"
        );
        // Jitter stays within its bound.
        for i in 0..100 {
            let now = 10_000 + i * 2000;
            p.request(now);
            assert!(p.next_poll_ms >= now + 1000 && p.next_poll_ms <= now + 1100);
        }
    }

    fn call(p: &mut crate::pipeline::request::Plugin, tool: &str) -> Result<(), (u32, String)> {
        let h = crate::policy::input::HttpRequest::from_headers(vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/mcp".to_vec()),
            (":authority".into(), b"x".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ]);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        );
        match p.on_request_body(&h, body.as_bytes()).0 {
            crate::pipeline::request::BodyAction::Forward(_) => Ok(()),
            crate::pipeline::request::BodyAction::Reply(r) => {
                Err((r.status, String::from_utf8_lossy(&r.body).into_owned()))
            }
        }
    }

    #[test]
    fn pending_denies_until_a_bundle_is_swapped_in() {
        let c = Config::from_json(br#"{"bundle": {"cluster": "b"}}"#).unwrap();
        let settings = c.settings.clone();
        let mut p = crate::pipeline::request::Plugin::from(c);
        assert_eq!(p.policy.revision(), "bundle-pending");
        let (status, body) = call(&mut p, "echo").unwrap_err();
        assert_eq!(status, 503);
        assert!(body.contains("policy bundle not loaded yet"), "{body}");
        let b = targz(&[
            ("main.rego", MAIN),
            ("k/data.json", r#"{"tools": ["rm"]}"#),
            (".manifest", r#"{"revision": "v7"}"#),
        ]);
        let mut p = crate::pipeline::request::Plugin::from(
            load(&b, &Limits::default(), &settings).unwrap(),
        );
        assert_eq!(p.policy.revision(), "v7");
        assert!(call(&mut p, "echo").is_ok());
        assert!(call(&mut p, "rm").unwrap_err().1.contains("killed"));
    }

    #[test]
    fn bundle_settings_are_checked() {
        for (json, needle) in [
            (r#"{"bundle": {}}"#, "missing field `cluster`"),
            (
                r#"{"bundle": {"cluster": "b", "path": "x"}}"#,
                "must start with /",
            ),
            (
                r#"{"bundle": {"cluster": "b", "poll_interval_ms": 5}}"#,
                "poll_interval_ms",
            ),
            (
                r#"{"bundle": {"cluster": "b", "poll_interval_ms": 1000, "poll_jitter_ms": 2000}}"#,
                "poll_jitter_ms",
            ),
            (
                r#"{"bundle": {"cluster": "b", "max_bytes": 0}}"#,
                "max_bytes",
            ),
            (
                r#"{"bundle": {"cluster": "b", "max_files": 0}}"#,
                "max_files",
            ),
            (
                r#"{"bundle": {"cluster": "b", "colour": 1}}"#,
                "unknown field `colour`",
            ),
            (r#"{}"#, "missing field `policy`"),
        ] {
            let e = Config::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
        // Inline modules with a bundle: the inline policy serves until then.
        let c = Config::from_json(
            br#"{"policy": {"modules": {"a.rego": "package mcp\nallow := true\n"}}, "bundle": {"cluster": "b"}}"#,
        )
        .unwrap();
        assert!(!c.bundle_pending);
        assert!(c.policy.revision().starts_with("sha256:"));
    }

    #[test]
    fn kept_bundles_round_trip() {
        let v = encode_kept(Some("\"e\""), b"abc");
        assert_eq!(
            decode_kept(&v),
            Some((Some("\"e\"".to_string()), &b"abc"[..]))
        );
        let v = encode_kept(None, b"");
        assert_eq!(decode_kept(&v), Some((None, &b""[..])));
        assert_eq!(decode_kept(b"\xff\xff\xff\xffab"), None);
        assert_eq!(decode_kept(b"ab"), None);
    }

    #[test]
    fn limits_hold() {
        let big = "#".repeat(200_000);
        let bytes = targz(&[("main.rego", MAIN), ("pad.txt", &big)]);
        let l = Limits {
            max_uncompressed_bytes: 100_000,
            ..Limits::default()
        };
        let e = unpack(&bytes, &l).unwrap_err();
        assert_eq!(e.kind(), "too_large", "{e}");
        assert!(e.to_string().contains("max_uncompressed_bytes"), "{e}");
        let l = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(unpack(&bytes, &l).unwrap_err().kind(), "too_large");
        let l = Limits {
            max_files: 1,
            ..Limits::default()
        };
        let e = unpack(&bytes, &l).unwrap_err();
        assert!(e.to_string().contains("max_files"), "{e}");
    }
}
