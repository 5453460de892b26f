//! pq-client: a TLS client for the mesh tests that reports what it negotiated.
//!
//! It connects to a TLS listener with rustls (aws-lc-rs provider), offering
//! only the key-exchange groups and TLS versions it is told to, optionally
//! presents a client certificate, optionally sends one HTTP/1.1 request, and
//! prints one JSON object on stdout:
//!
//! ```json
//! {"ok":true,"protocol":"TLSv1_3","group":"X25519MLKEM768","cipher_suite":"TLS13_AES_256_GCM_SHA384",
//!  "peer_certificates":1,"http_status":200,"http_body":"..."}
//! {"ok":false,"stage":"handshake","error":"received fatal alert: HandshakeFailure"}
//! ```
//!
//! Exit status: 0 when it printed a result (even `"ok":false`), 2 on a usage
//! error. It is a test helper, not part of the module: it lives in its own
//! cargo workspace so that the wasm build never compiles aws-lc.

use rustls::crypto::aws_lc_rs::{self as provider, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: pq-client --connect HOST:PORT --ca CA.pem [--server-name NAME] \
[--cert CERT.pem --key KEY.pem] [--groups G1,G2,...] [--tls-versions 1.3|1.2|1.2,1.3] \
[--post PATH --body JSON] [--header 'Name: value']... [--timeout SECONDS]
groups: X25519MLKEM768, SECP256R1MLKEM768, MLKEM768, X25519, SECP256R1, SECP384R1 (default: X25519MLKEM768)";

struct Args {
    connect: String,
    server_name: String,
    ca: String,
    cert: Option<String>,
    key: Option<String>,
    groups: Vec<&'static dyn SupportedKxGroup>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    post: Option<String>,
    body: String,
    headers: Vec<String>,
    timeout: Duration,
}

fn group_by_name(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    Some(match name {
        "X25519MLKEM768" => kx_group::X25519MLKEM768,
        "SECP256R1MLKEM768" => kx_group::SECP256R1MLKEM768,
        "MLKEM768" => kx_group::MLKEM768,
        "X25519" => kx_group::X25519,
        "SECP256R1" | "P-256" => kx_group::SECP256R1,
        "SECP384R1" | "P-384" => kx_group::SECP384R1,
        _ => return None,
    })
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut connect = None;
    let mut server_name = "localhost".to_string();
    let mut ca = None;
    let mut cert = None;
    let mut key = None;
    let mut groups = vec![kx_group::X25519MLKEM768];
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> =
        vec![&rustls::version::TLS13];
    let mut post = None;
    let mut body = String::new();
    let mut headers = Vec::new();
    let mut timeout = Duration::from_secs(10);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => connect = Some(value()?),
            "--server-name" => server_name = value()?,
            "--ca" => ca = Some(value()?),
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            "--groups" => {
                groups = value()?
                    .split(',')
                    .map(|g| group_by_name(g.trim()).ok_or_else(|| format!("unknown group {g:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--tls-versions" => {
                versions = value()?
                    .split(',')
                    .map(|v| match v.trim() {
                        "1.3" => Ok(&rustls::version::TLS13),
                        "1.2" => Ok(&rustls::version::TLS12),
                        other => Err(format!("unknown TLS version {other:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--post" => post = Some(value()?),
            "--body" => body = value()?,
            "--header" => headers.push(value()?),
            "--timeout" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--timeout: {e}"))?;
                timeout = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if cert.is_some() != key.is_some() {
        return Err("--cert and --key go together".into());
    }
    Ok(Args {
        connect: connect.ok_or("--connect is required")?,
        server_name,
        ca: ca.ok_or("--ca is required")?,
        cert,
        key,
        groups,
        versions,
        post,
        body,
        headers,
        timeout,
    })
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn fail(stage: &str, error: impl std::fmt::Display) -> ExitCode {
    println!(
        "{{\"ok\":false,\"stage\":{},\"error\":{}}}",
        js(stage),
        js(&error.to_string())
    );
    ExitCode::SUCCESS
}

fn config(args: &Args) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca).map_err(|e| format!("{}: {e}", args.ca))? {
        roots
            .add(cert.map_err(|e| format!("{}: {e}", args.ca))?)
            .map_err(|e| format!("{}: {e}", args.ca))?;
    }
    let provider = CryptoProvider {
        kx_groups: args.groups.clone(),
        ..provider::default_provider()
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&args.versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Status and body of an HTTP/1.1 response read to the end of the connection.
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("chunk size {size_hex:?}: {e}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pq-client: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => return fail("config", e),
    };
    let name = match ServerName::try_from(args.server_name.clone()) {
        Ok(n) => n,
        Err(e) => return fail("config", e),
    };
    let addr = match args.connect.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) => return fail("connect", "no address"),
        Err(e) => return fail("connect", e),
    };
    let tcp = match TcpStream::connect_timeout(&addr, args.timeout) {
        Ok(s) => s,
        Err(e) => return fail("connect", e),
    };
    let _ = tcp.set_read_timeout(Some(args.timeout));
    let _ = tcp.set_write_timeout(Some(args.timeout));
    let conn = match ClientConnection::new(Arc::new(config), name) {
        Ok(c) => c,
        Err(e) => return fail("config", e),
    };
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            return fail("handshake", e);
        }
    }
    let protocol = tls
        .conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let group = tls
        .conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    let suite = tls
        .conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let peer_certs = tls.conn.peer_certificates().map_or(0, |c| c.len());
    let mut out = format!(
        "{{\"ok\":true,\"protocol\":{},\"group\":{},\"cipher_suite\":{},\"peer_certificates\":{}",
        js(&protocol),
        js(&group),
        js(&suite),
        peer_certs
    );
    if let Some(path) = &args.post {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
            args.server_name,
            args.body.len()
        );
        for h in &args.headers {
            request.push_str(h);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&args.body);
        if let Err(e) = tls.write_all(request.as_bytes()).and_then(|_| tls.flush()) {
            return fail("request", e);
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A peer that closes without close_notify still sent a whole response.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
                Err(e) => return fail("response", e),
            }
        }
        match parse_response(&raw) {
            Ok((status, body)) => out.push_str(&format!(
                ",\"http_status\":{status},\"http_body\":{}",
                js(&body)
            )),
            Err(e) => return fail("response", e),
        }
    }
    out.push('}');
    println!("{out}");
    ExitCode::SUCCESS
}
