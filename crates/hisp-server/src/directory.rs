//! The daemon's view of who it is and whom it trusts: the local domains with their
//! credentials and anchors (configuration plus `hisp anchor add`), static routes and static
//! recipient certificates. Rebuilt whenever the store's directory version changes, so the
//! operator commands take effect without a restart.

use crate::config::{load_credential_files, Config};
use hisp_direct::binding::check_binding_in;
use hisp_direct::cert::ParsedCert;
use hisp_direct::keys::{self, Credential};
use hisp_direct::trust::{check_usage, TrustAnchors, Usage};
use hisp_store::{Direction, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A health domain this HISP serves.
pub struct LocalDomain {
    /// The domain, lower case.
    pub name: String,
    /// Its signing and decryption credential.
    pub cred: Credential,
    /// Credentials it had before a renewal: for opening mail only.
    pub previous: Vec<Credential>,
    /// Anchors trusted for the signers of mail it receives.
    pub anchors: Arc<TrustAnchors>,
    /// Anchors trusted for the certificates of recipients it sends to (discovery).
    pub anchors_out: Arc<TrustAnchors>,
}

/// One snapshot of the directory.
pub struct Directory {
    /// Local domains.
    pub domains: Vec<LocalDomain>,
    routes: HashMap<String, String>,
    static_certs: Vec<(String, Arc<ParsedCert>)>,
    /// The store's directory version this snapshot reflects.
    pub version: u64,
    /// Addresses the store confirmed are users: every relayed RCPT asks, and a reload
    /// (any change to users bumps the version) starts afresh. Unknown addresses are not
    /// kept, so probing for them cannot grow it.
    known_users: Mutex<HashSet<String>>,
}

/// The most confirmed users a snapshot remembers (then it starts over).
const MAX_KNOWN_USERS: usize = 100_000;

/// Why the directory could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Key material in the configuration does not load.
    #[error("domain {domain}: {reason}")]
    Credential {
        /// The domain.
        domain: String,
        /// What failed.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Directory {
    /// Build from the configuration and the store.
    pub async fn load<S: Store>(config: &Config, store: &S) -> Result<Directory, DirectoryError> {
        let version = store.directory_version().await?;
        type Stored = (Option<String>, Option<Direction>, Vec<u8>);
        let mut stored_anchors: Vec<Stored> = store
            .anchors()
            .await?
            .into_iter()
            .map(|a| (a.domain, a.direction, a.der))
            .collect();
        // Anchors of trust bundles: the last version of each that verified.
        for b in store.bundles().await? {
            let anchors = b.anchors.into_iter();
            stored_anchors.extend(anchors.map(|a| (a.domain, a.direction, a.der)));
        }
        let mut domains = Vec::new();
        for d in &config.domains {
            let err = |reason: String| DirectoryError::Credential {
                domain: d.name.clone(),
                reason,
            };
            let load = |cert: &Path, key: &Path, password: &Option<String>| {
                load_credential_files(cert, key, password).map_err(|(_, why)| err(why))
            };
            let cred = load(&d.cert, &d.key, &d.key_password)?;
            let previous = d
                .previous
                .iter()
                .map(|p| load(&p.cert, &p.key, &p.key_password))
                .collect::<Result<Vec<_>, _>>()?;
            let name = d.name.to_ascii_lowercase();
            // Configured anchors hold both ways.
            let mut both = Vec::new();
            for a in &d.anchors {
                let bytes = std::fs::read(a).map_err(|e| err(format!("{}: {e}", a.display())))?;
                both.extend(keys::load_certs(&bytes).map_err(|e| err(e.to_string()))?);
            }
            let (mut incoming, mut outgoing) = (both.clone(), both);
            for (domain, direction, der) in &stored_anchors {
                let applies = domain
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(&name));
                let Ok(c) = openssl::x509::X509::from_der(der) else {
                    continue;
                };
                if applies && Direction::Incoming.admits(*direction) {
                    incoming.push(c.clone());
                }
                if applies && Direction::Outgoing.admits(*direction) {
                    outgoing.push(c);
                }
            }
            domains.push(LocalDomain {
                name,
                cred,
                previous,
                anchors: Arc::new(TrustAnchors::new(incoming)),
                anchors_out: Arc::new(TrustAnchors::new(outgoing)),
            });
        }
        let routes = store
            .routes()
            .await?
            .into_iter()
            .map(|r| (r.domain.to_ascii_lowercase(), r.target))
            .collect();
        let mut static_certs = Vec::new();
        for c in store.certs().await? {
            if let Ok(p) = ParsedCert::from_der(&c.der) {
                static_certs.push((c.bound_to.to_ascii_lowercase(), Arc::new(p)));
            }
        }
        Ok(Directory {
            domains,
            routes,
            static_certs,
            version,
            known_users: Mutex::default(),
        })
    }

    /// The local domain an address belongs to.
    pub fn local_domain(&self, address: &str) -> Option<&LocalDomain> {
        let d = hisp_direct::mime::domain_of(address)?;
        self.domains.iter().find(|x| x.name == d)
    }

    /// True when the address is in one of our domains.
    pub fn is_local(&self, address: &str) -> bool {
        self.local_domain(address).is_some()
    }

    /// Whether `address` (lower case) is known to be a user, without asking the store.
    pub fn known_user(&self, address: &str) -> bool {
        let known = self.known_users.lock();
        known.is_ok_and(|k| k.contains(address))
    }

    /// Remember that the store confirmed `address` (lower case) as a user.
    pub fn remember_user(&self, address: String) {
        if let Ok(mut known) = self.known_users.lock() {
            if known.len() >= MAX_KNOWN_USERS {
                known.clear();
            }
            known.insert(address);
        }
    }

    /// The static next hop for a domain.
    pub fn route(&self, domain: &str) -> Option<&str> {
        self.routes
            .get(&domain.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Every credential of ours (for opening: the message names the one it is for).
    pub fn credentials(&self) -> Vec<Credential> {
        let current = self.domains.iter().map(|d| d.cred.clone());
        let previous = self.domains.iter().flat_map(|d| d.previous.iter().cloned());
        current.chain(previous).collect()
    }

    /// Static certificates usable to encrypt to `address` at `now`, by the Applicability
    /// Statement's rule: address-bound certificates if any exist (and only those, even when
    /// none is usable), else domain-bound ones. Returns the usable ones and, for each
    /// rejected one, why.
    pub fn static_certs_for(&self, address: &str, now: i64) -> (Vec<Arc<ParsedCert>>, Vec<String>) {
        let address = address.to_ascii_lowercase();
        let domain = hisp_direct::mime::domain_of(&address).unwrap_or_default();
        let by = |key: &str| -> Vec<&Arc<ParsedCert>> {
            self.static_certs
                .iter()
                .filter(|(b, _)| b == key)
                .map(|(_, c)| c)
                .collect()
        };
        let address_bound = by(&address);
        let candidates = if address_bound.is_empty() {
            by(&domain)
        } else {
            address_bound
        };
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        for c in candidates {
            match usable(c, &address, now) {
                Ok(()) => ok.push(c.clone()),
                Err(why) => rejected.push(format!("{}: {why}", c.sha256_hex())),
            }
        }
        (ok, rejected)
    }
}

fn usable(c: &ParsedCert, address: &str, now: i64) -> Result<(), String> {
    if c.not_before.is_some_and(|t| t > now) {
        return Err("not yet valid".into());
    }
    if c.not_after.is_some_and(|t| t < now) {
        return Err("expired".into());
    }
    check_usage(&c.x509, Usage::Encryption).map_err(|e| e.to_string())?;
    check_binding_in(&c.bindings, address)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Warn this long before a local domain's Direct certificate stops being valid.
pub const EXPIRY_WARNING_S: i64 = 30 * 24 * 3600;

impl Directory {
    /// When each local domain's certificates stop being valid: (domain, `current` or
    /// `previous`, not-after), for the expiry metric.
    pub fn cert_expiries(&self) -> Vec<(&str, &'static str, i64)> {
        let mut out = Vec::new();
        for d in &self.domains {
            let all = std::iter::once((&d.cred, "current"))
                .chain(d.previous.iter().map(|c| (c, "previous")));
            for (cred, which) in all {
                if let Some(t) = hisp_direct::time::from_asn1(cred.cert().not_after()) {
                    out.push((d.name.as_str(), which, t));
                }
            }
        }
        out
    }

    /// Log a warning for each domain whose current certificate expires within
    /// [`EXPIRY_WARNING_S`] of `now` (or has expired): peers refuse to seal to it, and mail
    /// it signs fails their checks, once it has.
    pub fn warn_expiring(&self, now: i64) {
        for (domain, which, not_after) in self.cert_expiries() {
            let left = not_after - now;
            if which == "current" && left < EXPIRY_WARNING_S {
                tracing::warn!(
                    domain,
                    days_left = left.div_euclid(24 * 3600),
                    not_after = %hisp_direct::time::format_rfc3339(not_after),
                    "the domain's Direct certificate expires soon (or has): renew it, and keep the old pair under [[domain.previous]] if the key changes"
                );
            }
        }
    }
}
