//! The policy revision: a digest of the modules and the data.

use sha2::{Digest, Sha256};

/// `sha256:` of the modules (sorted by name) and the data.
pub(super) fn revision_of(
    modules: &[(String, String)],
    data: Option<&serde_json::Value>,
) -> String {
    let mut sorted: Vec<&(String, String)> = modules.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, source) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((source.len() as u64).to_le_bytes());
        h.update(source.as_bytes());
    }
    // serde_json objects are key-sorted (no preserve_order), so this is canonical.
    let data_text = data.map(|d| d.to_string()).unwrap_or_default();
    h.update(data_text.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn revision_is_stable_and_order_independent() {
        let a = revision_of(&[("a".into(), "1".into()), ("b".into(), "2".into())], None);
        let b = revision_of(&[("b".into(), "2".into()), ("a".into(), "1".into())], None);
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:"));
        let c = revision_of(
            &[("a".into(), "1".into())],
            Some(&serde_json::json!({"x": 1})),
        );
        assert_ne!(a, c);
    }
}
