//! Shared helpers for the conformance tests: where the vectors are, and MANIFEST access.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use toml::Value;

/// The interop folder: `HISP_INTEROP_DIR`, else the workplace's `../shared/interop`, else
/// the copy vendored in this repository.
pub fn interop_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HISP_INTEROP_DIR") {
        return PathBuf::from(d);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/interop");
    if shared.join("MANIFEST.toml").exists() {
        return shared;
    }
    root.join("tests/vectors/interop")
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = interop_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn manifest() -> Value {
    let text = String::from_utf8(read("MANIFEST.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

pub fn vectors<'a>(m: &'a Value, kind: &str) -> Vec<&'a Value> {
    m.get("vector")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

pub fn negatives(v: &Value) -> Vec<&Value> {
    v.get("negative")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

pub fn bool_of(v: &Value, k: &str) -> bool {
    v.get(k)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("missing {k}"))
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(b))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `verify_at` of a vector: absent or "now" means the current time.
pub fn at_of(v: Option<&Value>) -> i64 {
    match v.and_then(Value::as_str) {
        None | Some("now") => now(),
        Some(t) => hisp_direct::time::parse_rfc3339(t).unwrap(),
    }
}

pub fn anchors_of(v: Option<&Value>) -> Vec<openssl::x509::X509> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| hisp_direct::keys::load_cert(&read(p.as_str().unwrap())).unwrap())
                .collect()
        })
        .unwrap_or_default()
}
