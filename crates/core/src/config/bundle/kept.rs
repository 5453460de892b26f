//! The last good bundle, kept in the host's shared data for VMs that start
//! later.

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
