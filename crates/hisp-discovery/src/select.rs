//! Which discovered certificates may be encrypted to (Applicability Statement §5; the rules
//! the ONC discovery test tool checks): valid at the time, bound to the address (or its
//! domain), usable for key encipherment, chaining to one of our anchors, not revoked.
//! Every certificate turned down is reported with the rule it failed.

use hisp_direct::alg::Profile;
use hisp_direct::binding::{check_binding_in, CertBinding};
use hisp_direct::cert::ParsedCert;
use hisp_direct::time::format_rfc3339;
use hisp_direct::trust::{evaluate_known, TrustAnchors, TrustInput, Usage};
use openssl::x509::{X509Crl, X509};
use std::sync::Arc;

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A DNS CERT record.
    Dns,
    /// An LDAP directory.
    Ldap,
}

impl Source {
    /// `"dns"` or `"ldap"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::Ldap => "ldap",
        }
    }
}

/// A certificate found, before the rules are applied.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The certificate.
    pub cert: Arc<ParsedCert>,
    /// Where it was found.
    pub source: Source,
}

/// A certificate that may be used.
#[derive(Debug, Clone)]
pub struct Usable {
    /// The certificate.
    pub cert: Arc<ParsedCert>,
    /// Where it was found.
    pub source: Source,
    /// What it is bound to.
    pub binding: CertBinding,
}

/// A certificate turned down, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// SHA-256 of its DER (hex), or of the record when it did not parse.
    pub sha256: String,
    /// Its subject ("" when it did not parse).
    pub subject: String,
    /// Where it was found.
    pub source: Source,
    /// The rule it failed.
    pub reason: String,
}

impl Rejected {
    /// A rejection of a certificate that was read.
    pub fn of(c: &Candidate, reason: String) -> Rejected {
        Rejected {
            sha256: c.cert.sha256_hex(),
            subject: c.cert.subject.clone(),
            source: c.source,
            reason,
        }
    }
}

/// What the rules check against.
pub struct Policy<'a> {
    /// Our anchors.
    pub anchors: &'a TrustAnchors,
    /// Intermediates at hand (configured, or fetched by AIA).
    pub intermediates: &'a [X509],
    /// CRLs at hand.
    pub crls: &'a [X509Crl],
    /// The time (Unix seconds).
    pub at: i64,
    /// Key size and algorithm policy.
    pub profile: &'a Profile,
}

/// Split `candidates` into the usable and the rejected, for `address`. When any candidate
/// is bound to the address itself, only those may be used: a domain-bound certificate is no
/// fallback for an address whose own certificates are all unusable.
pub fn select(
    address: &str,
    candidates: &[Candidate],
    policy: &Policy<'_>,
) -> (Vec<Usable>, Vec<Rejected>) {
    let own = |c: &Candidate| {
        c.cert
            .bindings
            .iter()
            .any(|b| matches!(b, CertBinding::Address(a) if a.eq_ignore_ascii_case(address)))
    };
    let address_bound = candidates.iter().any(own);
    let mut usable = Vec::new();
    let mut rejected = Vec::new();
    for c in candidates {
        if address_bound && !own(c) {
            let why = "an address-bound certificate exists: no fallback to this one".to_string();
            rejected.push(Rejected::of(c, why));
            continue;
        }
        match check(address, c, policy) {
            Ok(binding) => usable.push(Usable {
                cert: c.cert.clone(),
                source: c.source,
                binding,
            }),
            Err(reason) => rejected.push(Rejected::of(c, reason)),
        }
    }
    (usable, rejected)
}

fn check(address: &str, c: &Candidate, p: &Policy<'_>) -> Result<CertBinding, String> {
    let cert = &c.cert;
    if let Some(t) = cert.not_before.filter(|t| *t > p.at) {
        return Err(format!("not yet valid (notBefore {})", format_rfc3339(t)));
    }
    if let Some(t) = cert.not_after.filter(|t| *t < p.at) {
        return Err(format!("expired (notAfter {})", format_rfc3339(t)));
    }
    let binding = check_binding_in(&cert.bindings, address).map_err(|_| {
        if cert.bindings.is_empty() {
            "binding: names no address or domain".to_string()
        } else {
            let names: Vec<&str> = cert.bindings.iter().map(|b| b.value()).collect();
            format!("binding: bound to {}, not to {address}", names.join(", "))
        }
    })?;
    let input = TrustInput {
        anchors: p.anchors,
        intermediates: p.intermediates,
        crls: p.crls,
        at: p.at,
        profile: p.profile,
    };
    evaluate_known(cert, Usage::Encryption, &input).map_err(|e| format!("trust: {e}"))?;
    Ok(binding)
}
