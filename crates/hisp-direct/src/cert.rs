//! Facts about certificates that CMS needs and OpenSSL does not hand out directly: the raw
//! issuer Name and serial (to match IssuerAndSerialNumber, RFC 5652 §10.2.4), the key size,
//! a readable subject, and the SHA-256 fingerprint that names a certificate in verdicts.

use crate::asn1::{reader::tags, Class, Tlv};
use openssl::hash::MessageDigest;
use openssl::x509::{X509NameRef, X509Ref};

/// Identifiers of a certificate as they appear in a RecipientInfo or SignerInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIds {
    /// DER of the issuer Name.
    pub issuer: Vec<u8>,
    /// Content octets of the serial INTEGER, leading zero octets removed.
    pub serial: Vec<u8>,
    /// The subjectKeyIdentifier, if the certificate has one.
    pub ski: Option<Vec<u8>>,
}

impl CertIds {
    /// Read the identifiers from a certificate.
    pub fn of(cert: &X509Ref) -> Option<CertIds> {
        let der = cert.to_der().ok()?;
        let tbs = Tlv::parse(&der)
            .ok()?
            .sequence("Certificate")
            .ok()?
            .into_iter()
            .next()?;
        let mut fields = tbs.sequence("TBSCertificate").ok()?.into_iter();
        let mut serial = fields.next()?;
        if serial.tag.is(Class::Context, 0) {
            serial = fields.next()?; // skip the explicit [0] version
        }
        fields.next()?; // signature AlgorithmIdentifier
        let issuer = fields.next()?;
        Some(CertIds {
            issuer: issuer.raw().to_vec(),
            serial: normalize_serial(serial.content()).to_vec(),
            ski: cert.subject_key_id().map(|s| s.as_slice().to_vec()),
        })
    }

    /// True when an IssuerAndSerialNumber (issuer Name DER, serial INTEGER content) names
    /// this certificate. Names that differ in bytes are compared the way OpenSSL compares
    /// them (canonical form), because some producers re-encode the issuer.
    pub fn matches_issuer_serial(&self, cert: &X509Ref, issuer: &[u8], serial: &[u8]) -> bool {
        if normalize_serial(serial) != self.serial.as_slice() {
            return false;
        }
        if issuer == self.issuer.as_slice() {
            return true;
        }
        openssl::x509::X509Name::from_der(issuer)
            .ok()
            .and_then(|n| n.try_cmp(cert.issuer_name()).ok())
            .is_some_and(|o| o.is_eq())
    }
}

fn normalize_serial(s: &[u8]) -> &[u8] {
    let zeros = s.iter().take_while(|b| **b == 0).count();
    &s[zeros.min(s.len().saturating_sub(1))..]
}

/// Lowercase hex SHA-256 of the certificate's DER (DESIGN §3).
pub fn sha256_hex(cert: &X509Ref) -> String {
    cert.digest(MessageDigest::sha256())
        .map(|d| hex::encode(&*d))
        .unwrap_or_default()
}

/// RSA modulus size in bits, or `None` for other key types.
pub fn rsa_bits(cert: &X509Ref) -> Option<u32> {
    let key = cert.public_key().ok()?;
    key.rsa().ok().map(|r| r.n().num_bits() as u32)
}

/// A one-line distinguished name, `CN=…, O=…, emailAddress=…` in certificate order.
pub fn name_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            let val = e.data().to_string().unwrap_or_default();
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subject of a certificate as one line.
pub fn subject_string(cert: &X509Ref) -> String {
    name_string(cert.subject_name())
}

/// The DER TLV of a certificate's serial INTEGER (for IssuerAndSerialNumber).
pub fn serial_tlv(cert: &X509Ref) -> Option<Vec<u8>> {
    let der = cert.to_der().ok()?;
    let tbs = Tlv::parse(&der)
        .ok()?
        .sequence("Certificate")
        .ok()?
        .into_iter()
        .next()?;
    tbs.sequence("TBSCertificate")
        .ok()?
        .into_iter()
        .find(|t| t.tag.is(Class::Universal, tags::INTEGER))
        .map(|t| t.raw().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openssl::x509::X509;

    const GM2552: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/interop/javari/certs/gm2552.der"
    ));

    #[test]
    fn rfc5652_10_2_4_issuer_and_serial() {
        let c = X509::from_der(GM2552).unwrap();
        let ids = CertIds::of(&c).unwrap();
        assert_eq!(hex::encode_upper(&ids.serial), "24891677AF35099A");
        assert_eq!(ids.issuer, c.issuer_name().to_der().unwrap());
        assert_eq!(rsa_bits(&c), Some(2048));
        assert!(subject_string(&c).contains("gm2552@securehealthemail.com"));
        assert_eq!(
            sha256_hex(&c),
            "01ec5b2e0c25ccd9572cf1909a2ec3413eb20860fcbc1c0d44b5235d15676e69"
        );
    }
}
