//! Publishing our domains' certificates where other HISPs look: `hisp dns records` prints
//! CERT records for a zone file, `hisp ldap export` LDIF entries for every user.

use crate::cmd_admin::{load, runtime};
use anyhow::{bail, Result};
use hisp_discovery::publish::{base_dn, cert_records, ldif_entry};
use hisp_server::directory::Directory;
use hisp_store::Store;
use std::path::PathBuf;

/// `hisp dns …`.
#[derive(clap::Subcommand)]
pub enum DnsCmd {
    /// Print CERT records (zone-file lines) for every local certificate.
    Records {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// TTL of the records, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
}

/// `hisp ldap …`.
#[derive(clap::Subcommand)]
pub enum LdapCmd {
    /// Print LDIF entries (mail, userCertificate;binary) for every user.
    Export {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// Base DN of the entries (default: dc= per label of each user's domain).
        #[arg(long)]
        base_dn: Option<String>,
    },
}

/// `hisp dns records`.
pub fn dns(cmd: &DnsCmd) -> Result<u8> {
    let DnsCmd::Records { config, ttl } = cmd;
    let (cfg, store) = load(config)?;
    let dir = runtime()?.block_on(Directory::load(&cfg, &store))?;
    println!(
        "; CERT records (RFC 4398) for the certificates of {}",
        config.display()
    );
    for d in &dir.domains {
        let lines = cert_records(d.cred.cert(), *ttl)?;
        if lines.is_empty() {
            bail!("the certificate of {} names no address or domain", d.name);
        }
        for l in lines {
            println!("{l}");
        }
    }
    Ok(0)
}

/// `hisp ldap export`.
pub fn ldap(cmd: &LdapCmd) -> Result<u8> {
    let LdapCmd::Export {
        config,
        base_dn: base,
    } = cmd;
    let (cfg, store) = load(config)?;
    let rt = runtime()?;
    let dir = rt.block_on(Directory::load(&cfg, &store))?;
    let users = rt.block_on(store.users())?;
    println!("# LDIF (RFC 2849) for the users of {}", config.display());
    for user in users {
        let Some(d) = dir.local_domain(&user) else {
            continue;
        };
        let base = base.clone().unwrap_or_else(|| base_dn(&d.name));
        println!("{}", ldif_entry(&base, &user, &[d.cred.cert()]));
    }
    Ok(0)
}
