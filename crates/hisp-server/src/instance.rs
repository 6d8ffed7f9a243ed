//! Making a complete instance on disk (`hisp init`, and the two daemons of `hisp demo`): a
//! local test CA, a domain-bound certificate and key, a TLS certificate for STARTTLS, and a
//! `hisp.toml` that validates. Key files are written mode 0600.

use crate::config::{is_domain_name, Config};
use hisp_direct::pki::{self, LeafSpec};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// What to make.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The health domain.
    pub domain: String,
    /// Where to write.
    pub dir: PathBuf,
    /// Relay (SMTP) port.
    pub smtp_port: u16,
    /// Submission port.
    pub submission_port: u16,
    /// HTTP port.
    pub http_port: u16,
    /// Address the listeners bind (0.0.0.0 for service, 127.0.0.1 for tests and the demo).
    pub bind: IpAddr,
    /// Overwrite existing files.
    pub force: bool,
}

impl InitOptions {
    /// Defaults: ports 25, 587 and 8025 on all addresses.
    pub fn new(domain: &str, dir: &Path) -> InitOptions {
        InitOptions {
            domain: domain.to_string(),
            dir: dir.to_path_buf(),
            smtp_port: 25,
            submission_port: 587,
            http_port: 8025,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            force: false,
        }
    }
}

/// Why an instance could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Not a domain name.
    #[error("{0:?} is not a domain name (expected e.g. direct.clinic.example)")]
    BadDomain(String),
    /// A file is in the way.
    #[error("{0} already exists: use --force to overwrite, or --dir for another folder")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate issuance failed.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The written configuration does not load (a bug).
    #[error("the written configuration does not validate: {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// What was made.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The normalised domain.
    pub domain: String,
    /// The configuration file.
    pub config: PathBuf,
    /// SHA-256 of the domain certificate.
    pub domain_cert_sha256: String,
}

const FILES: [&str; 7] = [
    "hisp.toml",
    "ca.pem",
    "ca.key",
    "domain.pem",
    "domain.key",
    "tls.pem",
    "tls.key",
];
const YEAR: i64 = 365 * 86_400;

/// Write an instance for `opts.domain` into `opts.dir`, valid from `now`.
pub fn init_instance(opts: &InitOptions, now: i64) -> Result<InitReport, InitError> {
    let domain = opts
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !is_domain_name(&domain) {
        return Err(InitError::BadDomain(opts.domain.clone()));
    }
    let dir = &opts.dir;
    std::fs::create_dir_all(dir.join("data")).map_err(|source| InitError::Io {
        path: dir.clone(),
        source,
    })?;
    if !opts.force {
        if let Some(p) = FILES.iter().map(|n| dir.join(n)).find(|p| p.exists()) {
            return Err(InitError::Exists(p));
        }
    }
    let ca = pki::new_root_ca(
        &format!("Hisp Test CA for {domain}"),
        now - 3600,
        now + 10 * YEAR,
        3072,
    )?;
    let leaf = pki::issue_leaf(&ca, &LeafSpec::domain(&domain, now - 3600, now + 2 * YEAR))?;
    let host = format!("hisp.{domain}");
    let mut tls_spec = LeafSpec::domain(&host, now - 3600, now + 2 * YEAR);
    tls_spec.email_protection_eku = false;
    tls_spec.extra_sans = vec![pki::SubjectBinding::Domain("localhost".into())];
    let tls = pki::issue_leaf(&ca, &tls_spec)?;
    let mut tls_chain = tls.cert_pem()?;
    tls_chain.extend(ca.cert_pem()?);
    write(&dir.join("ca.pem"), &ca.cert_pem()?, false)?;
    write(&dir.join("ca.key"), &ca.key_pem()?, true)?;
    write(&dir.join("domain.pem"), &leaf.cert_pem()?, false)?;
    write(&dir.join("domain.key"), &leaf.key_pem()?, true)?;
    write(&dir.join("tls.pem"), &tls_chain, false)?;
    write(&dir.join("tls.key"), &tls.key_pem()?, true)?;
    let config = dir.join("hisp.toml");
    write(&config, config_text(&domain, opts).as_bytes(), false)?;
    Config::load(&config)?;
    Ok(InitReport {
        domain,
        config,
        domain_cert_sha256: hisp_direct::cert::sha256_hex(&leaf.cert),
    })
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, bytes).map_err(io)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// The configuration `hisp init` writes.
pub fn config_text(domain: &str, o: &InitOptions) -> String {
    let b = o.bind;
    format!(
        r#"# Hisp configuration for {domain}, written by `hisp init`.
# Relative paths are relative to this file. Every key is described in examples/hisp.toml.

[server]
hostname = "hisp.{domain}"
data_dir = "data"

[[domain]]
name = "{domain}"
cert = "domain.pem"
key = "domain.key"
# Trust anchors: our own test CA; add each peer's CA here or with `hisp anchor add`.
anchors = ["ca.pem"]

[smtp]
relay_listen = "{relay}"
submission_listen = "{sub}"
tls_cert = "tls.pem"
tls_key = "tls.key"

[http]
listen = "{http}"
tls = {http_tls}                     # HTTPS with the [smtp] certificate (required off loopback)

[queue]
retry_first = "2m"
retry_max = "2h"
expire_after = "5d"
mdn_timeout = "1h"

[retention]
keep_outbound_bodies = "7d"    # once every recipient is final
keep_picked_up_bodies = "30d"  # after the edge picked it up
keep_quarantined = "30d"       # a quarantined message's sealed form
keep_records = "forever"       # whole records of finished mail, e.g. "2190d" (6 years)

[crypto]
receive_profile = "strict"       # strict | legacy
cipher = "aes-256-cbc"           # aes-128-cbc | aes-256-cbc | aes-128-gcm | aes-256-gcm
key_transport = "rsa-pkcs1-v1_5" # rsa-pkcs1-v1_5 | rsa-oaep
digest = "sha256"                # sha256 | sha384 | sha512
"#,
        relay = std::net::SocketAddr::new(b, o.smtp_port),
        sub = std::net::SocketAddr::new(b, o.submission_port),
        http = std::net::SocketAddr::new(b, o.http_port),
        http_tls = crate::config::http_needs_tls(b),
    )
}
