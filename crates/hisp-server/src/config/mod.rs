//! `hisp.toml`: the operator's configuration. Every table rejects unknown keys, values are
//! typed (names of algorithms and profiles are enums), and [`Config::validate`] checks
//! what types cannot (domain syntax, files that load, keys that match), collecting every
//! problem with its dotted key before failing.

mod crypto;
mod sections;
#[cfg(test)]
mod tests;

pub use crypto::*;
pub use sections::*;

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
    /// SMTP listeners.
    pub smtp: SmtpConfig,
    /// REST API and metrics.
    #[serde(default)]
    pub http: HttpConfig,
    /// Retries, expiry, notification timeouts.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Finding recipients' certificates.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Serving our own certificates in DNS.
    #[serde(default)]
    pub dns: DnsConfig,
    /// How long bodies are kept once nobody needs them.
    #[serde(default)]
    pub retention: RetentionConfig,
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
    /// Certificates and keys the domain had before a renewal (`[[domain.previous]]`), kept
    /// to open mail peers sealed to them before they learnt the new one; never used to
    /// sign or published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousKey>,
}

/// `[[domain.previous]]`: a certificate and key a domain had before a renewal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    /// The certificate (PEM or DER).
    pub cert: PathBuf,
    /// Its private key (PEM/DER, PKCS#8/PKCS#1, or PKCS#12).
    pub key: PathBuf,
    /// Password of an encrypted key or PKCS#12 file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password: Option<String>,
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
        // serde_path_to_error names the dotted key of a value that does not parse
        // (`queue.retry_first`), which the TOML error alone only shows as a line excerpt.
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let mut reason = inner.message().trim().to_string();
            let found = inner
                .span()
                .and_then(|r| text.get(r))
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() < 200);
            if let Some(v) = found.filter(|v| !reason.contains(*v)) {
                reason.push_str(&format!(" (found {v})"));
            }
            let message = if key.is_empty() || key == "." {
                inner.to_string()
            } else {
                format!("{key}: {reason}")
            };
            ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            }
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

    /// The configuration in force as TOML, as Postfix's `postconf` shows it: every default
    /// written out (the computed ones too: `smtp.data_memory`, `queue.max_per_destination`)
    /// and every path absolute, so the text loads as it is from anywhere. A key's password
    /// is left out, with a comment saying so.
    pub fn in_force_toml(&self) -> Result<String, toml::ser::Error> {
        let mut c = self.clone();
        c.smtp.data_memory_bytes = Some(self.smtp.data_memory());
        c.queue.max_per_destination = Some(self.queue.per_destination());
        c.resolve_paths(&std::env::current_dir().unwrap_or_default());
        let mut head = String::new();
        for d in &mut c.domains {
            let previous = d.previous.iter_mut().map(|p| &mut p.key_password);
            let hidden = std::iter::once(&mut d.key_password)
                .chain(previous)
                .filter_map(Option::take)
                .count();
            if hidden > 0 {
                head.push_str(&format!(
                    "# domain {}: {hidden} key_password(s) set and not shown\n",
                    d.name
                ));
            }
        }
        Ok(head + &toml::to_string(&c)?)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.data_dir);
        fix(&mut self.smtp.tls_cert);
        fix(&mut self.smtp.tls_key);
        for d in &mut self.domains {
            fix(&mut d.cert);
            fix(&mut d.key);
            d.anchors.iter_mut().for_each(fix);
            for p in &mut d.previous {
                fix(&mut p.cert);
                fix(&mut p.key);
            }
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
        self.validate_listeners(&mut problem);
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
            if let Err(reason) = check_credential(&d.name, &d.cert, &d.key, &d.key_password) {
                problem(k(reason.0), reason.1);
            }
            for (j, p) in d.previous.iter().enumerate() {
                if let Err(reason) = check_credential(&d.name, &p.cert, &p.key, &p.key_password) {
                    problem(format!("domain[{i}].previous[{j}].{}", reason.0), reason.1);
                }
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

impl Config {
    fn validate_listeners(&self, problem: &mut impl FnMut(String, String)) {
        let s = &self.smtp;
        let addrs = [
            ("smtp.relay_listen", s.relay_listen),
            ("smtp.submission_listen", s.submission_listen),
            ("http.listen", self.http.listen),
        ];
        for (i, (key, a)) in addrs.iter().enumerate() {
            if addrs[..i].iter().any(|(_, b)| b == a && a.port() != 0) {
                problem(
                    key.to_string(),
                    format!("{a} is already used by another listener"),
                );
            }
        }
        let tls = std::fs::read(&s.tls_cert)
            .map_err(|e| ("smtp.tls_cert", format!("{}: {e}", s.tls_cert.display())))
            .and_then(|c| {
                let k = std::fs::read(&s.tls_key)
                    .map_err(|e| ("smtp.tls_key", format!("{}: {e}", s.tls_key.display())))?;
                keys::load_credential(Some(&c), &k, None).map_err(|e| match e {
                    // Name the file at fault: a broken certificate is not the key's.
                    keys::KeyError::NotACertificate => {
                        ("smtp.tls_cert", format!("{}: {e}", s.tls_cert.display()))
                    }
                    _ => ("smtp.tls_key", format!("{}: {e}", s.tls_key.display())),
                })
            });
        if let Err((key, reason)) = tls {
            problem(key.into(), reason);
        }
        let http = &self.http;
        if !http.tls && http_needs_tls(http.listen.ip()) {
            problem(
                "http.tls".into(),
                format!(
                    "http.listen {} can be reached from other hosts, and the REST API carries \
                     passwords and messages: set http.tls = true (HTTPS with the smtp.tls_cert \
                     certificate), or listen on 127.0.0.1 behind a TLS proxy",
                    http.listen
                ),
            );
        }
        if http.max_connections == 0 {
            problem("http.max_connections".into(), "must be at least 1".into());
        }
        if http.max_connections_per_ip == 0 {
            problem(
                "http.max_connections_per_ip".into(),
                "must be at least 1".into(),
            );
        }
        if s.max_message_bytes < 1024 {
            problem(
                "smtp.max_message_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if s.data_memory_bytes.is_some_and(|m| m < s.max_message_bytes) {
            problem(
                "smtp.data_memory".into(),
                format!(
                    "must be at least smtp.max_message_bytes ({}), or no message of the \
                     largest size could ever be received",
                    s.max_message_bytes
                ),
            );
        }
        if s.max_connections_per_ip == 0 {
            problem(
                "smtp.max_connections_per_ip".into(),
                "must be at least 1".into(),
            );
        }
        let v4 = s.outbound_addresses.iter().filter(|a| a.is_ipv4()).count();
        if v4 > 1 || s.outbound_addresses.len() - v4 > 1 {
            problem(
                "smtp.outbound_addresses".into(),
                "at most one IPv4 and one IPv6 address".into(),
            );
        }
        for a in &s.outbound_addresses {
            // An address not on this host would fail every delivery, and each failure would
            // be taken for the peer's.
            if let Err(e) = std::net::TcpListener::bind((*a, 0)) {
                problem(
                    "smtp.outbound_addresses".into(),
                    format!("{a} is not an address of this host: {e}"),
                );
            }
        }
        if s.max_refused_recipients_per_ip == 0 {
            problem(
                "smtp.max_refused_recipients_per_ip".into(),
                "must be at least 1".into(),
            );
        }
        if s.max_recipients == 0 {
            problem("smtp.max_recipients".into(), "must be at least 1".into());
        }
        let q = &self.queue;
        if q.retry_first.is_zero() || q.retry_max < q.retry_first {
            problem(
                "queue.retry_max".into(),
                "must be at least queue.retry_first (> 0)".into(),
            );
        }
        if q.expire_after < q.retry_first {
            problem(
                "queue.expire_after".into(),
                "must be longer than queue.retry_first".into(),
            );
        }
        if q.delivery_workers == 0 {
            problem("queue.delivery_workers".into(), "must be at least 1".into());
        }
        if q.max_per_destination == Some(0) {
            problem(
                "queue.max_per_destination".into(),
                "must be at least 1".into(),
            );
        }
        let r = &self.retention;
        let longest_body = r
            .keep_outbound_bodies
            .max(r.keep_picked_up_bodies)
            .max(r.keep_quarantined);
        if r.keep_records.is_some_and(|k| k < longest_body) {
            problem(
                "retention.keep_records".into(),
                format!(
                    "must be at least the longest body retention ({}): a record goes with \
                     its body",
                    humantime::format_duration(longest_body)
                ),
            );
        }
    }

    /// The SQLite store inside the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.server.data_dir.join("hisp.db")
    }
}

/// A certificate and its key read from their files as one credential (the directory
/// loads a domain's this way, and `--check` checks them so); else the field at fault
/// (`cert` or `key`) and why, naming the file.
pub fn load_credential_files(
    cert_path: &Path,
    key_path: &Path,
    password: &Option<String>,
) -> Result<keys::Credential, (&'static str, String)> {
    let key =
        std::fs::read(key_path).map_err(|e| ("key", format!("{}: {e}", key_path.display())))?;
    let cert =
        std::fs::read(cert_path).map_err(|e| ("cert", format!("{}: {e}", cert_path.display())))?;
    keys::load_credential(Some(&cert), &key, password.as_deref())
        .map_err(|e| ("key", format!("{}: {e}", key_path.display())))
}

/// A domain's certificate and key load, match, and are bound to the domain; else the
/// field at fault (`cert` or `key`) and why.
fn check_credential(
    domain: &str,
    cert_path: &Path,
    key_path: &Path,
    password: &Option<String>,
) -> Result<(), (&'static str, String)> {
    let cred = load_credential_files(cert_path, key_path, password)?;
    let bound = hisp_direct::binding::bindings(cred.cert());
    let name = domain.to_ascii_lowercase();
    let serves = bound.iter().any(|b| match b {
        hisp_direct::binding::CertBinding::Domain(x) => *x == name,
        hisp_direct::binding::CertBinding::Address(a) => a.ends_with(&format!("@{name}")),
    });
    if !serves {
        return Err((
            "cert",
            format!(
                "{} is not bound to domain {domain} (it names {:?})",
                cert_path.display(),
                bound
            ),
        ));
    }
    Ok(())
}

/// Whether the REST API listening on `ip` must speak TLS: other hosts can reach it, and it
/// carries passwords and messages. `hisp init` writes `tls` by it and `--check` holds to it.
pub fn http_needs_tls(ip: std::net::IpAddr) -> bool {
    !ip.is_loopback()
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
