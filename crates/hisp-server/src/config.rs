//! `hisp.toml`: the operator's configuration. Every table rejects unknown keys, values are
//! typed (names of algorithms and profiles are enums), and [`Config::validate`] checks
//! what types cannot (domain syntax, files that load, keys that match), collecting every
//! problem with its dotted key before failing.

use hisp_direct::alg::{ContentCipher, Digest, KeyTransport, Profile};
use hisp_direct::keys;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server identity and storage.
    pub server: ServerConfig,
    /// The health domains this HISP serves.
    #[serde(rename = "domain", default)]
    pub domains: Vec<DomainConfig>,
    /// Crypto choices.
    #[serde(default)]
    pub crypto: CryptoConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The host name used in SMTP greetings, Message-IDs and Reporting-UA.
    pub hostname: String,
    /// Where the store and spool live; relative paths are relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// `[[domain]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The health domain, e.g. `direct.clinic.example`.
    pub name: String,
    /// The domain's signing/decryption certificate (PEM or DER, may include the chain).
    pub cert: PathBuf,
    /// Its private key (PEM/DER, PKCS#8/PKCS#1, or PKCS#12).
    pub key: PathBuf,
    /// Password of an encrypted key or PKCS#12 file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password: Option<String>,
    /// Trust anchors for mail to and from this domain.
    #[serde(default)]
    pub anchors: Vec<PathBuf>,
}

/// Names of content ciphers accepted in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CipherName {
    /// AES-128-CBC
    #[serde(rename = "aes-128-cbc")]
    Aes128Cbc,
    /// AES-256-CBC
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
    /// AES-128-GCM
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    /// AES-256-GCM
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl CipherName {
    /// The algorithm.
    pub fn cipher(self) -> ContentCipher {
        match self {
            Self::Aes128Cbc => ContentCipher::Aes128Cbc,
            Self::Aes256Cbc => ContentCipher::Aes256Cbc,
            Self::Aes128Gcm => ContentCipher::Aes128Gcm,
            Self::Aes256Gcm => ContentCipher::Aes256Gcm,
        }
    }
}

/// Key transport names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyTransportName {
    /// RSA PKCS#1 v1.5
    #[serde(rename = "rsa-pkcs1-v1_5")]
    RsaPkcs1V15,
    /// RSA-OAEP with SHA-256
    RsaOaep,
}

/// Digest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestName {
    /// SHA-256
    Sha256,
    /// SHA-384
    Sha384,
    /// SHA-512
    Sha512,
}

/// Profile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// SHA-256+, AES, RSA ≥ 2048.
    Strict,
    /// Also accepts SHA-1, 3DES and 1024-bit RSA on receipt.
    Legacy,
}

/// `[crypto]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    /// Profile applied to received mail.
    #[serde(default = "default_profile")]
    pub receive_profile: ProfileName,
    /// Content encryption for sending.
    #[serde(default = "default_cipher")]
    pub cipher: CipherName,
    /// Key transport for sending.
    #[serde(default = "default_kt")]
    pub key_transport: KeyTransportName,
    /// Signature digest for sending.
    #[serde(default = "default_digest")]
    pub digest: DigestName,
}

fn default_profile() -> ProfileName {
    ProfileName::Strict
}
fn default_cipher() -> CipherName {
    CipherName::Aes256Cbc
}
fn default_kt() -> KeyTransportName {
    KeyTransportName::RsaPkcs1V15
}
fn default_digest() -> DigestName {
    DigestName::Sha256
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            receive_profile: default_profile(),
            cipher: default_cipher(),
            key_transport: default_kt(),
            digest: default_digest(),
        }
    }
}

impl CryptoConfig {
    /// The receive profile as a value.
    pub fn profile(&self) -> Profile {
        match self.receive_profile {
            ProfileName::Strict => Profile::strict(),
            ProfileName::Legacy => Profile::legacy(),
        }
    }
    /// The sending key transport.
    pub fn key_transport(&self) -> KeyTransport {
        match self.key_transport {
            KeyTransportName::RsaPkcs1V15 => KeyTransport::RsaPkcs1v15,
            KeyTransportName::RsaOaep => KeyTransport::RsaOaep(Digest::Sha256),
        }
    }
    /// The sending digest.
    pub fn digest(&self) -> Digest {
        match self.digest {
            DigestName::Sha256 => Digest::Sha256,
            DigestName::Sha384 => Digest::Sha384,
            DigestName::Sha512 => Digest::Sha512,
        }
    }
}

/// One thing wrong with a configuration, located by its dotted key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigProblem {
    /// e.g. `domain[0].key`
    pub key: String,
    /// What is wrong and what to do.
    pub reason: String,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// Values that parse but cannot work.
    #[error("{path}: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

impl Config {
    /// Parse TOML text (no validation of referenced files).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Read, parse and validate a file. Relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::from_toml(&text, path)?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.data_dir);
        for d in &mut self.domains {
            fix(&mut d.cert);
            fix(&mut d.key);
            d.anchors.iter_mut().for_each(fix);
        }
    }

    /// Every problem with the values, each named by its key.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |key: String, reason: String| out.push(ConfigProblem { key, reason });
        if !is_domain_name(&self.server.hostname) {
            problem(
                "server.hostname".into(),
                format!("\"{}\" is not a host name", self.server.hostname),
            );
        }
        if self.domains.is_empty() {
            problem(
                "domain".into(),
                "no [[domain]] configured: add one (hisp init writes an example)".into(),
            );
        }
        for (i, d) in self.domains.iter().enumerate() {
            let k = |f: &str| format!("domain[{i}].{f}");
            if !is_domain_name(&d.name) {
                problem(k("name"), format!("\"{}\" is not a domain name", d.name));
            }
            if self.domains[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&d.name))
            {
                problem(k("name"), format!("domain {} is configured twice", d.name));
            }
            if let Err(reason) = check_credential(d) {
                problem(k(reason.0), reason.1);
            }
            if d.anchors.is_empty() {
                problem(
                    k("anchors"),
                    "no trust anchors: add at least one CA certificate".into(),
                );
            }
            for (j, a) in d.anchors.iter().enumerate() {
                if let Err(e) = std::fs::read(a)
                    .map_err(|e| e.to_string())
                    .and_then(|b| keys::load_certs(&b).map_err(|e| e.to_string()))
                {
                    problem(
                        format!("domain[{i}].anchors[{j}]"),
                        format!("{}: {e}", a.display()),
                    );
                }
            }
        }
        out
    }
}

fn check_credential(d: &DomainConfig) -> Result<(), (&'static str, String)> {
    let key = std::fs::read(&d.key).map_err(|e| ("key", format!("{}: {e}", d.key.display())))?;
    let cert =
        std::fs::read(&d.cert).map_err(|e| ("cert", format!("{}: {e}", d.cert.display())))?;
    let cred = keys::load_credential(Some(&cert), &key, d.key_password.as_deref())
        .map_err(|e| ("key", format!("{}: {e}", d.key.display())))?;
    let bound = hisp_direct::binding::bindings(cred.cert());
    let name = d.name.to_ascii_lowercase();
    let serves = bound.iter().any(|b| match b {
        hisp_direct::binding::CertBinding::Domain(x) => *x == name,
        hisp_direct::binding::CertBinding::Address(a) => a.ends_with(&format!("@{name}")),
    });
    if !serves {
        return Err((
            "cert",
            format!(
                "{} is not bound to domain {} (it names {:?})",
                d.cert.display(),
                d.name,
                bound
            ),
        ));
    }
    Ok(())
}

/// RFC 1035 §2.3.1 host name syntax (letters, digits, hyphens; labels ≤ 63; total ≤ 253).
pub fn is_domain_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/hisp.toml");

    #[test]
    fn example_config_parses() {
        let c = Config::from_toml(EXAMPLE, Path::new("examples/hisp.toml")).unwrap();
        assert_eq!(c.domains.len(), 1);
        assert_eq!(c.crypto.cipher, CipherName::Aes256Cbc);
    }

    /// Every table rejects a key it does not know, naming it (as hickory's config tests do).
    #[test]
    fn unknown_keys_rejected_in_every_table() {
        for table in ["[server]", "[[domain]]", "[crypto]"] {
            let text = EXAMPLE.replacen(table, &format!("{table}\nbogus_key = 1"), 1);
            let err = Config::from_toml(&text, Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("bogus_key"), "{table}: {err}");
        }
        let err = Config::from_toml(&format!("{EXAMPLE}\n[extra]\na = 1\n"), Path::new("x.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let text = EXAMPLE.replace("cipher = \"aes-256-cbc\"", "cipher = \"rc4\"");
        let err = Config::from_toml(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cipher") && err.contains("rc4"), "{err}");
        let mut c = Config::from_toml(EXAMPLE, Path::new("x.toml")).unwrap();
        c.server.hostname = "not a host".into();
        c.domains[0].key = PathBuf::from("/nonexistent/key.pem");
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"server.hostname".to_string()), "{keys:?}");
        assert!(keys.contains(&"domain[0].key".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"domain[0].anchors[0]".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn rfc1035_2_3_1_domain_names() {
        assert!(is_domain_name("direct.clinic.example"));
        assert!(!is_domain_name("-bad.example"));
        assert!(!is_domain_name("a..b"));
        assert!(!is_domain_name("sp ace.example"));
    }
}
