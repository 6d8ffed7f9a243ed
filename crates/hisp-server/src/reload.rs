//! What `kill -HUP` does to a running daemon (as `postfix reload` or `nginx -s reload`):
//! the certificate, key and anchor files are read again, so certificates renewed in place
//! (the STARTTLS certificate, a domain's Direct certificate and key, also in the DNS zone
//! the daemon serves) are in force for the next session, message and query without a
//! restart, and no session is cut. The configuration
//! file is read and checked again too; what it changes beyond those files needs a restart,
//! and the report names the tables that differ. Nothing is replaced by something broken: a
//! file that does not load leaves the old one in force and is reported.

use crate::config::Config;
use crate::daemon::{cert_expiry, tls_acceptor, Running};
use crate::dns_server::Zone;
use hisp_store::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Why the STARTTLS certificate was kept, if it was.
    pub tls_error: Option<String>,
    /// Why the directory (Direct credentials, anchors) was kept, if it was.
    pub directory_error: Option<String>,
    /// Top-level tables of the configuration file that differ from the running one.
    pub restart_needed: Vec<String>,
}

impl ReloadReport {
    /// True when every file loaded and nothing waits for a restart.
    pub fn clean(&self) -> bool {
        self.tls_error.is_none() && self.directory_error.is_none() && self.restart_needed.is_empty()
    }
}

impl<S: Store> Running<S> {
    /// Read the certificate, key and anchor files again and put them in force; compare
    /// `fresh` (the configuration file as it reads now, already validated) with the running
    /// one. Logs what it did and returns it.
    pub async fn reload(&self, fresh: &Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        match tls_acceptor(&self.ctx.config) {
            Ok(a) => {
                let expiry = cert_expiry(&a);
                self.ctx.tls_expiry.store(expiry, Ordering::Relaxed);
                self.tls.replace(Arc::new(a));
            }
            Err(e) => report.tls_error = Some(e.to_string()),
        }
        match self.ctx.reload_directory().await {
            Ok(()) => {
                self.ctx.directory().warn_expiring(self.ctx.now());
                if let Some(zone) = &self.zone {
                    let dir = self.ctx.directory();
                    zone.replace(Arc::new(Zone::from_directory(
                        &dir,
                        self.ctx.config.dns.ttl,
                    )));
                }
            }
            Err(e) => report.directory_error = Some(e.to_string()),
        }
        report.restart_needed = changed_tables(&self.ctx.config, fresh);
        log(&report);
        report
    }
}

/// The top-level tables (`server`, `smtp`, `domain`, …) in which `a` and `b` differ.
fn changed_tables(a: &Config, b: &Config) -> Vec<String> {
    let (Ok(toml::Value::Table(a)), Ok(toml::Value::Table(b))) =
        (toml::Value::try_from(a), toml::Value::try_from(b))
    else {
        return vec!["(the configuration cannot be compared)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn log(r: &ReloadReport) {
    if let Some(e) = &r.tls_error {
        tracing::error!(error = %e, "reload: STARTTLS certificate not reloaded; the previous one stays in force");
    }
    if let Some(e) = &r.directory_error {
        tracing::error!(error = %e, "reload: Direct certificates and anchors not reloaded; the previous ones stay in force");
    }
    if !r.restart_needed.is_empty() {
        tracing::warn!(tables = %r.restart_needed.join(", "),
            "reload: the configuration file changed in these tables; restart to apply them");
    }
    if r.tls_error.is_none() && r.directory_error.is_none() {
        tracing::info!("reload: certificate, key and anchor files read again and in force");
    }
}
