//! Certificate-to-address binding (Applicability Statement §4; RFC 8550 §3): a Direct
//! certificate is bound to an address by an rfc822Name SAN (legacy: emailAddress in the
//! subject DN) or to a whole domain by a dNSName SAN (legacy: a DN emailAddress holding
//! just the domain). An address-bound certificate speaks only for its own addresses.

use crate::error::BindingError;
use crate::mime::domain_of;
use openssl::nid::Nid;
use openssl::x509::X509Ref;

/// What a certificate is bound to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CertBinding {
    /// A full address (lower-cased).
    Address(String),
    /// A domain (lower-cased, no trailing dot).
    Domain(String),
}

impl CertBinding {
    /// The bound address or domain.
    pub fn value(&self) -> &str {
        match self {
            CertBinding::Address(a) | CertBinding::Domain(a) => a,
        }
    }

    /// `"address"` or `"domain"`.
    pub fn kind(&self) -> &'static str {
        match self {
            CertBinding::Address(_) => "address",
            CertBinding::Domain(_) => "domain",
        }
    }
}

fn classify(v: &str) -> Option<CertBinding> {
    let v = v.trim().trim_end_matches('.').to_ascii_lowercase();
    if v.is_empty() {
        None
    } else if v.contains('@') {
        Some(CertBinding::Address(v))
    } else {
        Some(CertBinding::Domain(v))
    }
}

/// Every address and domain the certificate binds, SAN first, then the subject DN.
pub fn bindings(cert: &X509Ref) -> Vec<CertBinding> {
    let mut out: Vec<CertBinding> = Vec::new();
    let mut add = |b: Option<CertBinding>| {
        if let Some(b) = b {
            if !out.contains(&b) {
                out.push(b);
            }
        }
    };
    if let Some(sans) = cert.subject_alt_names() {
        for n in &sans {
            if let Some(e) = n.email() {
                add(classify(e));
            } else if let Some(d) = n.dnsname() {
                add(classify(d).map(|b| CertBinding::Domain(b.value().to_string())));
            }
        }
    }
    for e in cert.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS) {
        add(e.data().to_string().ok().and_then(|s| classify(&s)));
    }
    out
}

/// Check that `address` may be sent from (or to) with `cert`. An address binding must match
/// the address exactly (case-insensitively); only a certificate with no address binding at
/// all may speak for the address's domain.
pub fn check_binding(cert: &X509Ref, address: &str) -> Result<CertBinding, BindingError> {
    check_binding_in(&bindings(cert), address)
}

/// [`check_binding`] against bindings already read from the certificate.
pub fn check_binding_in(all: &[CertBinding], address: &str) -> Result<CertBinding, BindingError> {
    let address = address.trim().to_ascii_lowercase();
    let addresses: Vec<&str> = all
        .iter()
        .filter(|b| matches!(b, CertBinding::Address(_)))
        .map(CertBinding::value)
        .collect();
    if !addresses.is_empty() {
        return if addresses.contains(&address.as_str()) {
            Ok(CertBinding::Address(address))
        } else {
            Err(BindingError::AddressMismatch {
                from: address,
                bound: addresses.join(", "),
            })
        };
    }
    let domains: Vec<&str> = all
        .iter()
        .filter(|b| matches!(b, CertBinding::Domain(_)))
        .map(CertBinding::value)
        .collect();
    if domains.is_empty() {
        return Err(BindingError::Unbound);
    }
    match domain_of(&address) {
        Some(d) if domains.contains(&d.as_str()) => Ok(CertBinding::Domain(d)),
        _ => Err(BindingError::DomainMismatch {
            from: address,
            bound: domains.join(", "),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::x509::X509;

    macro_rules! cert {
        ($p:literal) => {
            X509::from_der(include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/vectors/interop/",
                $p
            )))
            .unwrap()
        };
    }

    #[test]
    fn applicability_4_address_bound_san() {
        let c = cert!("javari/certs/gm2552.der");
        assert_eq!(
            check_binding(&c, "GM2552@SecureHealthEmail.com").unwrap(),
            CertBinding::Address("gm2552@securehealthemail.com".into())
        );
        // An address-bound certificate for another address fails, even in the same domain.
        assert!(matches!(
            check_binding(&c, "ryan@securehealthemail.com"),
            Err(BindingError::AddressMismatch { .. })
        ));
    }

    #[test]
    fn applicability_4_legacy_dn_email_address_and_domain() {
        let c = cert!("nhind/certs/gm2552.der");
        assert!(check_binding(&c, "gm2552@securehealthemail.com").is_ok());
        let d = cert!("javari/certs/mshost.der");
        assert_eq!(
            bindings(&d),
            vec![CertBinding::Domain("nhind.hsgincubator.com".into())]
        );
        assert!(check_binding(&d, "biff@nhind.hsgincubator.com").is_ok());
        assert!(matches!(
            check_binding(&d, "biff@other.example"),
            Err(BindingError::DomainMismatch { .. })
        ));
    }

    #[test]
    fn applicability_4_domain_bound_dns_san_not_subdomains() {
        let c = cert!("javari/certs/test.email.com.der");
        assert!(check_binding(&c, "anyone@test.email.com").is_ok());
        assert!(check_binding(&c, "anyone@sub.test.email.com").is_err());
        let m = cert!("javari/certs/cert-a.der");
        assert!(bindings(&m).is_empty(), "address only in CN binds nothing");
        assert_eq!(
            check_binding(&m, "moe@direct.fnhubapp01.qa.medplus.com"),
            Err(BindingError::Unbound)
        );
    }
}
