//! What a found certificate needs before the rules can judge it: its missing intermediates,
//! fetched from caIssuers URLs (RFC 5280 §4.2.2.1), and the CRLs its chain points at (RFC
//! 5280 §4.2.1.13). A CRL that cannot be fetched fails the certificate unless the operator
//! allows it (fail closed by default: a revoked key must not be encrypted to).

use crate::fetch::{ca_issuer_urls, crl_urls, Fetcher};
use crate::select::Candidate;
use openssl::x509::{X509Crl, X509NameRef, X509Ref, X509};
use std::collections::HashMap;

/// Deepest chain followed through caIssuers.
const MAX_DEPTH: usize = 4;

/// Intermediates and CRLs gathered for a set of candidates, and the candidates (by SHA-256)
/// whose revocation status could not be learned.
#[derive(Default)]
pub struct Completed {
    /// Intermediates fetched by AIA (beside those configured).
    pub intermediates: Vec<X509>,
    /// CRLs fetched.
    pub crls: Vec<X509Crl>,
    /// Candidate SHA-256 → why its revocation status is unknown.
    pub unknown: HashMap<String, String>,
    /// What was fetched, for the report.
    pub trail: Vec<String>,
}

fn same(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

/// Fetch what the candidates' chains lack. `anchors` and `known` are the certificates at
/// hand; the chain of each candidate is followed up to an anchor.
pub async fn complete(
    fetcher: &Fetcher,
    candidates: &[Candidate],
    anchors: &[X509],
    known: &[X509],
    at: i64,
    allow_unreachable_crl: bool,
) -> Completed {
    let mut out = Completed::default();
    let mut crl_seen: HashMap<String, Result<(), String>> = HashMap::new();
    for c in candidates {
        let mut chain: Vec<X509> = vec![c.cert.x509.clone()];
        for _ in 0..MAX_DEPTH {
            let Some(current) = chain.last().cloned() else {
                break;
            };
            if anchors
                .iter()
                .any(|a| same(a.subject_name(), current.issuer_name()))
            {
                break;
            }
            let have = known
                .iter()
                .chain(out.intermediates.iter())
                .find(|i| same(i.subject_name(), current.issuer_name()))
                .cloned();
            let issuer = match have {
                Some(i) => Some(i),
                None => fetch_issuer(fetcher, &current, &mut out).await,
            };
            match issuer {
                Some(i) if !same(i.subject_name(), i.issuer_name()) => chain.push(i),
                _ => break,
            }
        }
        for cert in &chain {
            for url in crl_urls(cert) {
                let r = match crl_seen.get(&url) {
                    Some(r) => r.clone(),
                    None => {
                        let fetched = fetcher.crl(&url, at).await.and_then(|crl| {
                            copy(&crl).ok_or_else(|| format!("{url}: CRL cannot be re-read"))
                        });
                        let r = match fetched {
                            Ok(crl) => {
                                out.trail.push(format!("crl {url}: fetched"));
                                out.crls.push(crl);
                                Ok(())
                            }
                            Err(why) => {
                                out.trail.push(format!("crl {url}: {why}"));
                                Err(why)
                            }
                        };
                        crl_seen.insert(url.clone(), r.clone());
                        r
                    }
                };
                if let (Err(why), false) = (r, allow_unreachable_crl) {
                    let subject = hisp_direct::cert::subject_string(cert);
                    out.unknown.insert(
                        c.cert.sha256_hex(),
                        format!("revocation: the CRL of {subject} cannot be had ({why})"),
                    );
                }
            }
        }
    }
    out
}

async fn fetch_issuer(fetcher: &Fetcher, cert: &X509Ref, out: &mut Completed) -> Option<X509> {
    for url in ca_issuer_urls(cert) {
        match fetcher.certs(&url).await {
            Ok(certs) => {
                out.trail
                    .push(format!("aia {url}: {} certificate(s)", certs.len()));
                let found = certs
                    .into_iter()
                    .find(|i| same(i.subject_name(), cert.issuer_name()));
                if let Some(i) = found {
                    out.intermediates.push(i.clone());
                    return Some(i);
                }
            }
            Err(why) => out.trail.push(format!("aia {url}: {why}")),
        }
    }
    None
}

/// X509Crl is not Clone: a copy through DER.
pub(crate) fn copy(crl: &X509Crl) -> Option<X509Crl> {
    crl.to_der().ok().and_then(|d| X509Crl::from_der(&d).ok())
}
