//! Publishing our own certificates where discovery looks: CERT records for a zone file
//! (RFC 4398 §2, presentation format §2.2) and LDIF entries for a directory.

use crate::record::{address_owner, cert_type, domain_owner, CertRecord, NameError};
use hickory_resolver::proto::rr::Name;
use hisp_direct::binding::{bindings, CertBinding};
use openssl::x509::X509Ref;

/// DNSSEC algorithm number for RSA/SHA-256 (RFC 5702), the CERT algorithm of an RSA key.
const RSASHA256: u8 = 8;

/// The key tag (RFC 4034 Appendix B) and algorithm RFC 4398 §2.1 asks for: computed over
/// the key in DNSKEY form (flags 0, protocol 3, RFC 3110 RSA public key); (0, 0) for a key
/// that has no DNSSEC algorithm number here.
pub fn key_tag_and_algorithm(cert: &X509Ref) -> (u16, u8) {
    let Ok(rsa) = cert.public_key().and_then(|k| k.rsa()) else {
        return (0, 0);
    };
    let (e, n) = (rsa.e().to_vec(), rsa.n().to_vec());
    let mut rdata = vec![0, 0, 3, RSASHA256];
    // RFC 3110 §2: a one-octet exponent length, or zero and then two octets.
    match u8::try_from(e.len()) {
        Ok(len) => rdata.push(len),
        Err(_) => {
            rdata.push(0);
            rdata.extend_from_slice(&u16::try_from(e.len()).unwrap_or(0).to_be_bytes());
        }
    }
    rdata.extend_from_slice(&e);
    rdata.extend_from_slice(&n);
    (key_tag(&rdata), RSASHA256)
}

/// RFC 4034 Appendix B: the 16-bit sum of the RDATA taken as big-endian words, carry folded.
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}

/// Where `cert` is published: the owner name of every address and domain it is bound to
/// (an address-bound certificate at its address, a domain-bound one at its domain), each
/// once though the SAN and the subject DN may both name it; a binding that makes no DNS
/// name is an error in its place.
pub fn owners(cert: &X509Ref) -> Vec<Result<Name, NameError>> {
    let mut out: Vec<Result<Name, NameError>> = Vec::new();
    for b in bindings(cert) {
        let owner = match &b {
            CertBinding::Address(a) => address_owner(a),
            CertBinding::Domain(d) => domain_owner(d),
        }
        .map(|n| n.to_lowercase());
        if !out.contains(&owner) {
            out.push(owner);
        }
    }
    out
}

/// The CERT record holding `cert`: PKIX, with the key tag and algorithm of RFC 4398 §2.1.
pub fn cert_record(cert: &X509Ref) -> CertRecord {
    let (key_tag, algorithm) = key_tag_and_algorithm(cert);
    CertRecord {
        cert_type: cert_type::PKIX,
        key_tag,
        algorithm,
        data: cert.to_der().unwrap_or_default(),
    }
}

/// Zone-file lines publishing `cert` at every owner name it is bound to.
pub fn cert_records(cert: &X509Ref, ttl: u32) -> Result<Vec<String>, NameError> {
    let r = cert_record(cert);
    let b64 = openssl::base64::encode_block(&r.data).replace(['\n', '\r'], "");
    let (tag, alg) = (r.key_tag, r.algorithm);
    owners(cert)
        .into_iter()
        .map(|o| o.map(|owner| format!("{owner} {ttl} IN CERT PKIX {tag} {alg} {b64}")))
        .collect()
}

/// The base DN conventionally used for a domain: `dc=` for each label.
pub fn base_dn(domain: &str) -> String {
    domain
        .trim_end_matches('.')
        .split('.')
        .map(|l| format!("dc={l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// An `inetOrgPerson` entry for `address` under `base` with each certificate as
/// `userCertificate;binary` (what LDAP discovery searches for with `(mail=address)`).
pub fn ldif_entry(base: &str, address: &str, certs: &[&X509Ref]) -> String {
    let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address);
    let mut e = format!(
        "dn: mail={},{base}\nobjectClass: inetOrgPerson\nmail: {address}\ncn: {address}\nsn: {}\n",
        dn_escape(address),
        ldif_value(local)
    );
    for c in certs {
        let der = c.to_der().unwrap_or_default();
        let b64 = openssl::base64::encode_block(&der).replace(['\n', '\r'], "");
        e.push_str(&format!("userCertificate;binary:: {b64}\n"));
    }
    e
}

/// RFC 4514 §2.4: escape the characters special in a DN attribute value.
fn dn_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A plain LDIF value, or `: base64` for one RFC 2849 says must be encoded (leading space,
/// colon or `<`, or non-ASCII).
fn ldif_value(v: &str) -> String {
    let safe = v.is_ascii()
        && !v.starts_with([' ', ':', '<'])
        && !v.ends_with(' ')
        && !v.contains(['\n', '\r', '\0']);
    if safe {
        v.to_string()
    } else {
        format!(": {}", openssl::base64::encode_block(v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4034 Appendix B.1's algorithm on a hand-checked input: 0x0102 + 0x0304 + 0x0500.
    #[test]
    fn rfc4034_appendix_b_key_tag() {
        assert_eq!(key_tag(&[1, 2, 3, 4, 5]), 0x0102 + 0x0304 + 0x0500);
        // The carry is folded back in.
        assert_eq!(key_tag(&[0xff, 0xff, 0x00, 0x02]), 0x0002);
    }

    #[test]
    fn rfc4514_dn_values_and_rfc2849_ldif_values_are_escaped() {
        assert_eq!(dn_escape("a+b@x.example"), "a\\+b@x.example");
        assert_eq!(dn_escape(" lead"), "\\ lead");
        assert_eq!(ldif_value("bob"), "bob");
        assert_eq!(ldif_value(":x"), ": Ong=");
        assert_eq!(
            base_dn("direct.clinic.example."),
            "dc=direct,dc=clinic,dc=example"
        );
    }
}
