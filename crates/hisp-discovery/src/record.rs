//! CERT resource records (RFC 4398): the owner name a Direct address or domain is published
//! under, and the record data.

use hickory_resolver::proto::rr::domain::Label;
use hickory_resolver::proto::rr::Name;

/// RFC 4398 §2.1 certificate types Direct uses.
pub mod cert_type {
    /// X.509 as profiled by PKIX: the record holds the DER certificate.
    pub const PKIX: u16 = 1;
    /// The URL of an X.509 certificate (fetched).
    pub const IPKIX: u16 = 4;
    /// "URI private" (RFC 4398 §2.1): published by some HISPs with a URL, like IPKIX.
    pub const URI_PRIVATE: u16 = 253;
}

/// One CERT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// The certificate type (RFC 4398 §2.1).
    pub cert_type: u16,
    /// The key tag (ignored for X.509: Direct publishes 0).
    pub key_tag: u16,
    /// The algorithm (0 for X.509).
    pub algorithm: u8,
    /// The certificate, or for IPKIX the URL's bytes.
    pub data: Vec<u8>,
}

impl CertRecord {
    /// Parse CERT RDATA: type (2 octets), key tag (2), algorithm (1), certificate.
    pub fn parse(rdata: &[u8]) -> Option<CertRecord> {
        let (head, data) = rdata.split_at_checked(5)?;
        Some(CertRecord {
            cert_type: u16::from_be_bytes([head[0], head[1]]),
            key_tag: u16::from_be_bytes([head[2], head[3]]),
            algorithm: head[4],
            data: data.to_vec(),
        })
    }

    /// The RDATA of this record (for tests and for answering queries).
    pub fn to_rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.data.len());
        out.extend_from_slice(&self.cert_type.to_be_bytes());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.push(self.algorithm);
        out.extend_from_slice(&self.data);
        out
    }

    /// The URL an IPKIX or URI-private record points at.
    pub fn url(&self) -> Option<&str> {
        match self.cert_type {
            cert_type::IPKIX | cert_type::URI_PRIVATE => std::str::from_utf8(&self.data).ok(),
            _ => None,
        }
    }
}

/// Why an owner name cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot look up {input:?} in DNS: {why}")]
pub struct NameError {
    /// The address or domain.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

/// The owner name of an address's certificates: the local part as one label in front of the
/// domain (RFC 4398 §3.3), so `john.doe@example.org` is the three labels
/// `john\.doe.example.org.`, not four.
pub fn address_owner(address: &str) -> Result<Name, NameError> {
    let err = |why: &str| NameError {
        input: address.to_string(),
        why: why.to_string(),
    };
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| err("no @"))?;
    if local.is_empty() {
        return Err(err("empty local part"));
    }
    let label = Label::from_raw_bytes(local.as_bytes()).map_err(|e| err(&e.to_string()))?;
    let domain = domain_owner(domain).map_err(|e| err(&e.why))?;
    let mut name = Name::from_labels([label])
        .and_then(|n| n.append_domain(&domain))
        .map_err(|e| err(&e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The owner name of a domain's certificates: the domain itself, fully qualified.
pub fn domain_owner(domain: &str) -> Result<Name, NameError> {
    let err = |why: String| NameError {
        input: domain.to_string(),
        why,
    };
    let d = domain.trim_end_matches('.');
    if d.is_empty() {
        return Err(err("empty domain".into()));
    }
    let mut name = Name::from_ascii(d).map_err(|e| err(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4398 §2: type, key tag, algorithm, then the certificate.
    #[test]
    fn rfc4398_rdata_round_trips() {
        let r = CertRecord {
            cert_type: cert_type::PKIX,
            key_tag: 0,
            algorithm: 0,
            data: vec![0x30, 0x82, 1, 2],
        };
        let rdata = r.to_rdata();
        assert_eq!(rdata, [0, 1, 0, 0, 0, 0x30, 0x82, 1, 2]);
        assert_eq!(CertRecord::parse(&rdata), Some(r));
        assert_eq!(CertRecord::parse(&[0, 1, 0, 0]), None);
        let url = CertRecord::parse(b"\x00\x04\x00\x00\x00http://x/c.der").unwrap();
        assert_eq!(url.url(), Some("http://x/c.der"));
    }

    /// RFC 4398 §3.3: the local part is a single label, dots and all.
    #[test]
    fn rfc4398_address_owner_keeps_the_local_part_in_one_label() {
        let n = address_owner("john.doe@direct.example.org").unwrap();
        assert_eq!(n.num_labels(), 4);
        assert_eq!(n.to_string(), "john\\.doe.direct.example.org.");
        let n = address_owner("bob@d.example").unwrap();
        assert_eq!(n.to_string(), "bob.d.example.");
        assert!(address_owner("no-at-sign").is_err());
        assert!(address_owner("@d.example").is_err());
        assert_eq!(
            domain_owner("d.example.").unwrap().to_string(),
            "d.example."
        );
    }
}
