//! `hisp init --domain D [--dir DIR] [--smtp-port N] [--submission-port N] [--http-port N]`:
//! a complete working instance (configuration, test CA, domain and TLS certificates).

use crate::files;
use anyhow::Result;
use hisp_server::instance::{init_instance, InitOptions};
use std::net::IpAddr;
use std::path::PathBuf;

/// Arguments of `hisp init`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The health domain, e.g. direct.clinic.example.
    #[arg(long)]
    domain: String,
    /// Where to write the files (created if missing).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Relay port (mail from other HISPs).
    #[arg(long, default_value_t = 25)]
    smtp_port: u16,
    /// Submission port (mail from our users: STARTTLS and AUTH).
    #[arg(long, default_value_t = 587)]
    submission_port: u16,
    /// HTTP port (REST API, /metrics, /healthz).
    #[arg(long, default_value_t = 8025)]
    http_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// Run `hisp init`.
pub fn run(a: &InitArgs) -> Result<u8> {
    let mut o = InitOptions::new(&a.domain, &a.dir);
    o.smtp_port = a.smtp_port;
    o.submission_port = a.submission_port;
    o.http_port = a.http_port;
    o.bind = a.bind;
    o.force = a.force;
    let r = init_instance(&o, files::now())?;
    println!("Initialised {} in {}:", r.domain, a.dir.display());
    let http = if hisp_server::config::http_needs_tls(a.bind) {
        "https"
    } else {
        "http"
    };
    println!(
        "  hisp.toml   configuration (relay :{}, submission :{}, {http} :{})",
        a.smtp_port, a.submission_port, a.http_port
    );
    println!("  ca.pem      test CA: give it to peers as their trust anchor (ca.key signs, keep it private)");
    println!(
        "  domain.pem  domain-bound certificate for {}; domain.key its key (mode 0600)",
        r.domain
    );
    println!(
        "  tls.pem     STARTTLS (and HTTPS) certificate for hisp.{}; tls.key its key",
        r.domain
    );
    println!("  sha256 of domain.pem: {}", r.domain_cert_sha256);
    println!(
        "Next: hisp user add --config {} USER@{} --password-stdin",
        r.config.display(),
        r.domain
    );
    Ok(0)
}
