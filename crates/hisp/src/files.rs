//! Reading inputs and key material from files or stdin, and writing outputs, with errors
//! that name the file and say what to do.

use anyhow::{bail, Context, Result};
use hisp_direct::keys::{self, Credential};
use openssl::x509::{X509Crl, X509};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The message from `--in FILE`, or stdin.
pub fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read message {}", p.display())),
        None => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .context("cannot read the message from stdin")?;
            Ok(v)
        }
    }
}

/// Write to `--out FILE`, or stdout.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => {
            std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|_| out.flush())
                .context("cannot write to stdout")
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// A certificate and key (or one PKCS#12 file).
pub fn credential(cert: Option<&Path>, key: &Path, password: Option<&str>) -> Result<Credential> {
    let key_bytes = read(key, "key")?;
    let cert_bytes = match cert {
        Some(c) if c != key => Some(read(c, "certificate")?),
        _ => None,
    };
    if cert_bytes.is_none() && !keys::is_pkcs12(&key_bytes) {
        bail!(
            "--cert is required unless --key is a PKCS#12 file ({})",
            key.display()
        );
    }
    keys::load_credential(cert_bytes.as_deref(), &key_bytes, password)
        .with_context(|| format!("cannot use key {}", key.display()))
}

/// Every certificate in each file.
pub fn certs(paths: &[PathBuf], what: &str) -> Result<Vec<X509>> {
    let mut out = Vec::new();
    for p in paths {
        let b = read(p, what)?;
        out.extend(keys::load_certs(&b).with_context(|| format!("{what} {}", p.display()))?);
    }
    Ok(out)
}

/// Each CRL file.
pub fn crls(paths: &[PathBuf]) -> Result<Vec<X509Crl>> {
    paths
        .iter()
        .map(|p| keys::load_crl(&read(p, "CRL")?).with_context(|| format!("CRL {}", p.display())))
        .collect()
}

/// The current time in Unix seconds; the one place the binary reads the clock for the core.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
