//! Reading policy files the way `mcp-policy` documents it (docs/cli.md,
//! "Which files are read"):
//!
//! - a `.rego` file is a module, named by its file name;
//! - a `.json` file is data, merged at the root of `data`;
//! - a `.tar.gz`/`.tgz` file is a policy bundle (docs/bundles.md);
//! - a folder is walked recursively (names starting with `.` skipped, in
//!   byte order): every `*.rego` is a module named by its path relative to
//!   the folder, every file named exactly `data.json` is data, mounted at its
//!   folder's relative path (`lib/acl/data.json` → `data.lib.acl`), as in an
//!   OPA bundle. Other files, including other `.json` files, are ignored.
//!
//! `*_test.rego` modules are test modules: `check` compiles them, `test`
//! runs them, and the policy that decides (`check`, `eval`) never includes
//! them, as the filter never loads them.

use std::fs;
use std::path::{Path, PathBuf};

/// One Rego module.
#[derive(Debug, Clone)]
pub struct Module {
    /// The name the filter configuration would use (the key in
    /// `policy.modules`): the file name, or the path relative to the folder
    /// given.
    pub name: String,
    /// The path to show the user (as given on the command line).
    pub display: String,
    pub source: String,
    /// A `*_test.rego` file.
    pub is_test: bool,
}

/// One data file, and where it is mounted in `data`.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub display: String,
    /// Path below `data` (empty: the root).
    pub mount: Vec<String>,
    pub value: serde_json::Value,
}

/// Everything read from the paths given.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub modules: Vec<Module>,
    pub data_files: Vec<DataFile>,
}

/// A problem with the files themselves (not the Rego in them): unreadable,
/// not UTF-8, not JSON, two modules with one name, conflicting data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub message: String,
    /// A usage problem (a path that does not exist or cannot be read, a
    /// file of the wrong kind) rather than a problem in a policy file.
    pub usage: bool,
}

impl LoadError {
    fn usage(message: String) -> LoadError {
        LoadError {
            message,
            usage: true,
        }
    }

    fn content(message: String) -> LoadError {
        LoadError {
            message,
            usage: false,
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Loaded {
    /// The policy modules (not tests), as (name, source).
    pub fn policy_modules(&self) -> Vec<(String, String)> {
        self.modules
            .iter()
            .filter(|m| !m.is_test)
            .map(|m| (m.name.clone(), m.source.clone()))
            .collect()
    }

    /// Every module, tests included, as (name, source).
    pub fn all_modules(&self) -> Vec<(String, String)> {
        self.modules
            .iter()
            .map(|m| (m.name.clone(), m.source.clone()))
            .collect()
    }

    /// The path to show for a module name.
    pub fn display_of(&self, name: &str) -> Option<&str> {
        self.modules
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.display.as_str())
    }

    /// Rewrite `name:line:col` (a module name as the engine reports it) to
    /// the displayed path.
    pub fn display_location(&self, location: &str) -> String {
        for m in &self.modules {
            if let Some(rest) = location.strip_prefix(m.name.as_str()) {
                if rest.is_empty() || rest.starts_with(':') {
                    return format!("{}{rest}", m.display);
                }
            }
        }
        location.to_string()
    }

    /// All data files merged into one document; `None` when there are none.
    pub fn data(&self) -> Result<Option<serde_json::Value>, LoadError> {
        if self.data_files.is_empty() {
            return Ok(None);
        }
        let mut root = serde_json::Value::Object(serde_json::Map::new());
        for f in &self.data_files {
            let mut value = f.value.clone();
            for key in f.mount.iter().rev() {
                let mut o = serde_json::Map::new();
                o.insert(key.clone(), value);
                value = serde_json::Value::Object(o);
            }
            merge(&mut root, value, &mut Vec::new()).map_err(|path| {
                LoadError::content(format!(
                    "{}: data conflicts with another data file at data.{path}",
                    f.display
                ))
            })?;
        }
        Ok(Some(root))
    }
}

/// Deep-merge `value` into `into`. Two objects merge; anything else at the
/// same path is a conflict (`Err` carries the dotted path).
fn merge(
    into: &mut serde_json::Value,
    value: serde_json::Value,
    path: &mut Vec<String>,
) -> Result<(), String> {
    match (into, value) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                path.push(k.clone());
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v, path)?,
                    None => {
                        a.insert(k, v);
                    }
                }
                path.pop();
            }
            Ok(())
        }
        _ => Err(path.join(".")),
    }
}

/// Read every path given.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut out = Loaded::default();
    for p in paths {
        let meta =
            fs::metadata(p).map_err(|e| LoadError::usage(format!("{}: {e}", p.display())))?;
        if meta.is_dir() {
            walk(p, p, &mut out)?;
        } else if is_bundle(p) {
            add_bundle(p, &mut out)?;
        } else {
            let name = file_name(p);
            add_file(p, name, Vec::new(), true, &mut out)?;
        }
    }
    // Two modules with one name would be one entry in the filter's
    // `policy.modules`: refuse rather than drop one.
    let mut names: Vec<&str> = out.modules.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
        let dup = w.first().copied().unwrap_or_default();
        let shown: Vec<&str> = out
            .modules
            .iter()
            .filter(|m| m.name == dup)
            .map(|m| m.display.as_str())
            .collect();
        return Err(LoadError::content(format!(
            "two modules would both be named {dup:?} ({}); give their folder instead, or rename one",
            shown.join(", ")
        )));
    }
    Ok(out)
}

/// A policy bundle (OPA's layout, docs/bundles.md): `*.tar.gz` or `*.tgz`.
fn is_bundle(p: &Path) -> bool {
    let n = file_name(p);
    n.ends_with(".tar.gz") || n.ends_with(".tgz")
}

/// A bundle's modules (named by their path in the bundle, shown as
/// `bundle.tar.gz:path`) and its merged data, read as the filter reads them
/// (with its default bounds).
fn add_bundle(p: &Path, out: &mut Loaded) -> Result<(), LoadError> {
    let display = p.display().to_string();
    let bytes = fs::read(p).map_err(|e| LoadError::usage(format!("{display}: {e}")))?;
    let b = mcp_policy_core::config::bundle::unpack_with_tests(
        &bytes,
        &mcp_policy_core::config::limits::Limits::default(),
    )
    .map_err(|e| LoadError::content(format!("{display}: {e}")))?;
    for (name, source) in b.modules {
        out.modules.push(Module {
            is_test: name.ends_with("_test.rego"),
            display: format!("{display}:{name}"),
            name,
            source,
        });
    }
    if b.data.as_object().is_some_and(|o| !o.is_empty()) {
        out.data_files.push(DataFile {
            display,
            mount: Vec::new(),
            value: b.data,
        });
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn walk(root: &Path, dir: &Path, out: &mut Loaded) -> Result<(), LoadError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| LoadError::usage(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !file_name(p).starts_with('.'))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(root, &p, out)?;
            continue;
        }
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let fname = file_name(&p);
        if fname.ends_with(".rego") {
            add_file(&p, parts.join("/"), Vec::new(), false, out)?;
        } else if fname == "data.json" {
            let mount = parts
                .get(..parts.len().saturating_sub(1))
                .unwrap_or_default()
                .to_vec();
            add_file(&p, fname, mount, false, out)?;
        }
    }
    Ok(())
}

fn add_file(
    p: &Path,
    name: String,
    mount: Vec<String>,
    explicit: bool,
    out: &mut Loaded,
) -> Result<(), LoadError> {
    let display = p.display().to_string();
    let fname = file_name(p);
    if fname.ends_with(".rego") {
        let source =
            fs::read_to_string(p).map_err(|e| LoadError::usage(format!("{display}: {e}")))?;
        out.modules.push(Module {
            is_test: fname.ends_with("_test.rego"),
            name,
            display,
            source,
        });
        Ok(())
    } else if fname.ends_with(".json") {
        let bytes = fs::read(p).map_err(|e| LoadError::usage(format!("{display}: {e}")))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            LoadError::content(format!(
                "{display}:{}:{}: data is not valid JSON: {e}",
                e.line(),
                e.column()
            ))
        })?;
        if !value.is_object() {
            return Err(LoadError::content(format!(
                "{display}: data must be a JSON object"
            )));
        }
        out.data_files.push(DataFile {
            display,
            mount,
            value,
        });
        Ok(())
    } else if explicit {
        Err(LoadError::usage(format!(
            "{display}: not a policy file (expected a .rego module, a .json data file or a folder)"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mcp-policy-load-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn folders_are_walked_and_data_is_mounted() {
        let d = tmp("walk");
        fs::create_dir_all(d.join("lib/acl")).unwrap();
        fs::create_dir_all(d.join(".hidden")).unwrap();
        fs::write(d.join("a.rego"), "package mcp\n").unwrap();
        fs::write(d.join("a_test.rego"), "package mcp_test\n").unwrap();
        fs::write(d.join("lib/b.rego"), "package lib\n").unwrap();
        fs::write(d.join(".hidden/c.rego"), "package x\n").unwrap();
        fs::write(d.join("data.json"), r#"{"top": 1}"#).unwrap();
        fs::write(d.join("lib/acl/data.json"), r#"{"users": ["a"]}"#).unwrap();
        fs::write(d.join("lib/other.json"), r#"{"ignored": true}"#).unwrap();
        let l = load(std::slice::from_ref(&d)).unwrap();
        let names: Vec<&str> = l.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.rego", "a_test.rego", "lib/b.rego"]);
        assert_eq!(l.policy_modules().len(), 2);
        assert_eq!(
            l.data().unwrap().unwrap(),
            serde_json::json!({"top": 1, "lib": {"acl": {"users": ["a"]}}})
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn explicit_files_conflicts_and_errors() {
        let d = tmp("files");
        fs::write(d.join("x.json"), r#"{"a": {"b": 1}}"#).unwrap();
        fs::write(d.join("y.json"), r#"{"a": {"c": 2}}"#).unwrap();
        fs::write(d.join("z.json"), r#"{"a": {"b": 3}}"#).unwrap();
        fs::write(d.join("bad.json"), "{nope").unwrap();
        fs::write(d.join("list.json"), "[1]").unwrap();
        fs::write(d.join("notes.txt"), "x").unwrap();
        let l = load(&[d.join("x.json"), d.join("y.json")]).unwrap();
        assert_eq!(
            l.data().unwrap().unwrap(),
            serde_json::json!({"a": {"b": 1, "c": 2}})
        );
        let l = load(&[d.join("x.json"), d.join("z.json")]).unwrap();
        assert!(l.data().unwrap_err().message.contains("data.a.b"));
        assert!(load(&[d.join("bad.json")])
            .unwrap_err()
            .message
            .contains(":1:2: data is not valid JSON"));
        assert!(load(&[d.join("list.json")])
            .unwrap_err()
            .message
            .contains("JSON object"));
        assert!(load(&[d.join("notes.txt")])
            .unwrap_err()
            .message
            .contains("not a policy file"));
        assert!(load(&[d.join("missing.rego")]).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn duplicate_module_names_are_refused() {
        let d = tmp("dup");
        fs::create_dir_all(d.join("one")).unwrap();
        fs::create_dir_all(d.join("two")).unwrap();
        fs::write(d.join("one/p.rego"), "package mcp\n").unwrap();
        fs::write(d.join("two/p.rego"), "package mcp\n").unwrap();
        let e = load(&[d.join("one/p.rego"), d.join("two/p.rego")]).unwrap_err();
        assert!(e.message.contains("\"p.rego\""), "{e}");
        let _ = fs::remove_dir_all(&d);
    }
}
