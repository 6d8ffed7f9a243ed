//! Finding a Direct recipient's certificates on the open network (Applicability Statement
//! §5, RFC 4398): DNS CERT records at the address's owner name, then at the domain's, and
//! when DNS has none at all, the domain's LDAP directory ([`ldap`]). Each certificate found
//! is put through the selection rules ([`select`]) and either used or reported with the
//! reason it was turned down. An address that has certificates of its own never falls back
//! to its domain's, even when none of its own is usable.
#![warn(missing_docs)]

pub mod cache;
pub mod complete;
pub mod dns;
pub mod fetch;
pub mod ldap;
pub mod publish;
pub mod record;
pub mod select;
#[cfg(feature = "testservers")]
pub mod testservers;

use dns::{DnsAnswer, DnsCerts, DnsError};
use hisp_direct::cert::ParsedCert;
use record::{address_owner, cert_type, domain_owner, CertRecord, NameError};
use select::{Candidate, Policy, Rejected, Source, Usable};
use std::sync::Arc;

/// What discovery found for an address.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Certificates that may be encrypted to.
    pub usable: Vec<Usable>,
    /// Certificates turned down, each with its reason.
    pub rejected: Vec<Rejected>,
    /// Where the answer came from, for the report: e.g. `dns: bob.d.example. (2 records)`.
    pub trail: Vec<String>,
    /// When the earliest DNS answer it rests on expires (its TTL).
    pub expires: Option<std::time::Instant>,
}

/// Why discovery could not give an answer (as opposed to answering "none").
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The address cannot be turned into a DNS name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// DNS did not answer.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The domain has LDAP servers and none answered.
    #[error("LDAP discovery failed: {0}")]
    Ldap(String),
}

/// Certificate discovery.
pub struct Discovery {
    dns: DnsCerts,
    ldap: ldap::LdapDirectory,
    fetcher: fetch::Fetcher,
    allow_unreachable_crl: bool,
}

impl Discovery {
    /// Discovery through `dns` (and the LDAP servers it names), each LDAP step allowed
    /// `ldap_timeout`.
    pub fn new(dns: DnsCerts, ldap_timeout: std::time::Duration) -> Discovery {
        Discovery {
            dns,
            ldap: ldap::LdapDirectory::new(ldap_timeout),
            fetcher: fetch::Fetcher::new(ldap_timeout),
            allow_unreachable_crl: false,
        }
    }

    /// Use certificates whose CRL cannot be fetched (default: reject them).
    pub fn allow_unreachable_crl(mut self, allow: bool) -> Discovery {
        self.allow_unreachable_crl = allow;
        self
    }

    /// The certificates to encrypt to `address`: those published for the address, or
    /// when there are none at all, those published for its domain.
    pub async fn discover(
        &self,
        address: &str,
        policy: &Policy<'_>,
    ) -> Result<Found, DiscoveryError> {
        let address = address.trim().to_ascii_lowercase();
        let mut found = Found::default();
        let owner = address_owner(&address)?;
        let mut candidates = self.dns_candidates(&owner, &mut found).await?;
        if candidates.is_empty() {
            let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            let owner = domain_owner(domain)?;
            candidates = self.dns_candidates(&owner, &mut found).await?;
        }
        if candidates.is_empty() {
            let ders = self
                .ldap
                .certificates(&self.dns, &address, &mut found.trail)
                .await?;
            for der in ders {
                match ParsedCert::from_der(&der) {
                    Ok(c) => candidates.push(Candidate {
                        cert: Arc::new(c),
                        source: Source::Ldap,
                    }),
                    Err(e) => found.rejected.push(Rejected {
                        sha256: hex(&openssl::sha::sha256(&der)),
                        subject: String::new(),
                        source: Source::Ldap,
                        reason: format!("userCertificate is not a DER certificate: {e}"),
                    }),
                }
            }
        }
        let done = complete::complete(
            &self.fetcher,
            &candidates,
            policy.anchors.certs(),
            policy.intermediates,
            policy.at,
            self.allow_unreachable_crl,
        )
        .await;
        found.trail.extend(done.trail);
        let mut intermediates = policy.intermediates.to_vec();
        intermediates.extend(done.intermediates);
        let mut crls: Vec<openssl::x509::X509Crl> =
            policy.crls.iter().filter_map(complete::copy).collect();
        crls.extend(done.crls);
        let full = Policy {
            anchors: policy.anchors,
            intermediates: &intermediates,
            crls: &crls,
            at: policy.at,
            profile: policy.profile,
        };
        let (usable, rejected) = select::select(&address, &candidates, &full);
        found.rejected.extend(rejected);
        // Judged usable but for revocation, which could not be learned: not usable.
        for u in usable {
            match done.unknown.get(&u.cert.sha256_hex()) {
                Some(why) => found.rejected.push(Rejected {
                    sha256: u.cert.sha256_hex(),
                    subject: u.cert.subject.clone(),
                    source: u.source,
                    reason: why.clone(),
                }),
                None => found.usable.push(u),
            }
        }
        Ok(found)
    }

    async fn dns_candidates(
        &self,
        owner: &hickory_resolver::proto::rr::Name,
        found: &mut Found,
    ) -> Result<Vec<Candidate>, DiscoveryError> {
        let answer = self.dns.lookup(owner).await?;
        if let DnsAnswer::Records { valid_until, .. } = &answer {
            found.expires = Some(found.expires.map_or(*valid_until, |e| e.min(*valid_until)));
        }
        found.trail.push(match &answer {
            DnsAnswer::Records { records, .. } => format!("dns {owner}: {} CERT", records.len()),
            DnsAnswer::NxDomain => format!("dns {owner}: NXDOMAIN"),
            DnsAnswer::NoData => format!("dns {owner}: no CERT records"),
        });
        let mut out = Vec::new();
        for r in answer.records() {
            if let Some(url) = r.url().filter(|_| r.cert_type != cert_type::PKIX) {
                // IPKIX (RFC 4398 §2.1): the certificate is at the URL.
                match self.fetcher.certs(url).await {
                    Ok(certs) => {
                        found
                            .trail
                            .push(format!("ipkix {url}: {} certificate(s)", certs.len()));
                        for c in certs {
                            match ParsedCert::from_x509(c) {
                                Ok(p) => out.push(Candidate {
                                    cert: Arc::new(p),
                                    source: Source::Dns,
                                }),
                                Err(e) => found.rejected.push(unreadable(r, e.to_string())),
                            }
                        }
                    }
                    Err(why) => found.rejected.push(unreadable(
                        r,
                        format!("IPKIX certificate not fetched: {why}"),
                    )),
                }
                continue;
            }
            match candidate(r) {
                Ok(c) => out.push(c),
                Err(reason) => found.rejected.push(unreadable(r, reason)),
            }
        }
        Ok(out)
    }
}

fn candidate(r: &CertRecord) -> Result<Candidate, String> {
    match r.cert_type {
        cert_type::PKIX => ParsedCert::from_der(&r.data)
            .map(|c| Candidate {
                cert: Arc::new(c),
                source: Source::Dns,
            })
            .map_err(|e| format!("PKIX record is not a DER certificate: {e}")),
        cert_type::IPKIX | cert_type::URI_PRIVATE => {
            Err("IPKIX record whose URL is not UTF-8".to_string())
        }
        t => Err(format!("CERT type {t} is not an X.509 certificate")),
    }
}

fn unreadable(r: &CertRecord, reason: String) -> Rejected {
    Rejected {
        sha256: hex(&openssl::sha::sha256(&r.data)),
        subject: String::new(),
        source: Source::Dns,
        reason,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
