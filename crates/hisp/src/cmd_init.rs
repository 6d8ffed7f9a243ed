//! `hisp init --domain D [--dir DIR]`: a working instance for one health domain: a local
//! test CA (`ca.pem`, to hand to peers as their anchor, and `ca.key`), a domain-bound
//! certificate and key (`domain.pem`, `domain.key`, mode 0600), and `hisp.toml`.

use crate::files;
use anyhow::{bail, Context, Result};
use hisp_direct::pki::{self, LeafSpec};
use hisp_server::config::{is_domain_name, Config};
use std::path::{Path, PathBuf};

/// Arguments of `hisp init`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The health domain, e.g. direct.clinic.example.
    #[arg(long)]
    domain: String,
    /// Where to write the files (created if missing).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

const YEAR: i64 = 365 * 86_400;

/// Run `hisp init`.
pub fn run(a: &InitArgs) -> Result<u8> {
    let domain = a.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !is_domain_name(&domain) {
        bail!(
            "--domain {:?} is not a domain name (expected e.g. direct.clinic.example)",
            a.domain
        );
    }
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let names = ["hisp.toml", "ca.pem", "ca.key", "domain.pem", "domain.key"];
    if !a.force {
        if let Some(existing) = names.iter().map(|n| a.dir.join(n)).find(|p| p.exists()) {
            bail!(
                "{} already exists: use --force to overwrite, or --dir for another folder",
                existing.display()
            );
        }
    }
    let now = files::now();
    let ca = pki::new_root_ca(
        &format!("Hisp Test CA for {domain}"),
        now - 3600,
        now + 10 * YEAR,
        3072,
    )?;
    let leaf = pki::issue_leaf(&ca, &LeafSpec::domain(&domain, now - 3600, now + 2 * YEAR))?;
    write(&a.dir.join("ca.pem"), &ca.cert_pem()?, false)?;
    write(&a.dir.join("ca.key"), &ca.key_pem()?, true)?;
    write(&a.dir.join("domain.pem"), &leaf.cert_pem()?, false)?;
    write(&a.dir.join("domain.key"), &leaf.key_pem()?, true)?;
    let config_path = a.dir.join("hisp.toml");
    write(&config_path, config_text(&domain).as_bytes(), false)?;
    Config::load(&config_path).context("the written configuration does not validate (a bug)")?;
    println!("Initialised {domain} in {}:", a.dir.display());
    println!("  hisp.toml   configuration");
    println!("  ca.pem      test CA: give it to peers as their trust anchor (ca.key signs, keep it private)");
    println!("  domain.pem  domain-bound certificate for {domain}; domain.key its key (mode 0600)");
    println!(
        "  sha256 of domain.pem: {}",
        hisp_direct::cert::sha256_hex(&leaf.cert)
    );
    Ok(0)
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(())
}

/// The configuration `hisp init` writes: the example's shape, filled for the domain.
pub fn config_text(domain: &str) -> String {
    format!(
        r#"# Hisp configuration for {domain}, written by `hisp init`.
# Relative paths are relative to this file.

[server]
hostname = "hisp.{domain}"
data_dir = "data"

[[domain]]
name = "{domain}"
cert = "domain.pem"
key = "domain.key"
# Trust anchors: our own test CA; add each peer's CA here.
anchors = ["ca.pem"]

[crypto]
receive_profile = "strict"       # strict | legacy
cipher = "aes-256-cbc"           # aes-128-cbc | aes-256-cbc | aes-128-gcm | aes-256-gcm
key_transport = "rsa-pkcs1-v1_5" # rsa-pkcs1-v1_5 | rsa-oaep
digest = "sha256"                # sha256 | sha384 | sha512
"#
    )
}
