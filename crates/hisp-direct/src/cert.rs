//! Facts about certificates that CMS needs and OpenSSL does not hand out directly: the raw
//! issuer Name and serial (to match IssuerAndSerialNumber, RFC 5652 §10.2.4), the key size,
//! a readable subject, and the SHA-256 fingerprint that names a certificate in verdicts.

use crate::asn1::{Class, Tlv};
use openssl::hash::MessageDigest;
use openssl::x509::{X509NameRef, X509Ref};

/// Identifiers of a certificate as they appear in a RecipientInfo or SignerInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIds {
    /// DER of the issuer Name.
    pub issuer: Vec<u8>,
    /// Content octets of the serial INTEGER, leading zero octets removed.
    pub serial: Vec<u8>,
    /// The serial INTEGER as encoded (tag and length included).
    pub serial_tlv: Vec<u8>,
    /// The subjectKeyIdentifier, if the certificate has one.
    pub ski: Option<Vec<u8>>,
}

/// id-ce-subjectKeyIdentifier (RFC 5280 §4.2.1.2)
const OID_SKI: &[u8] = &[0x55, 0x1d, 0x0e];

impl CertIds {
    /// Read the identifiers from a certificate (through OpenSSL's decoded fields, which is
    /// cheaper than re-encoding the whole certificate).
    pub fn of(cert: &X509Ref) -> Option<CertIds> {
        let serial = cert.serial_number().to_bn().ok()?;
        if serial.is_negative() {
            // Invalid (RFC 5280 §4.1.2.2) but seen: keep the exact encoding.
            return Self::from_der(&cert.to_der().ok()?);
        }
        let issuer = cert.issuer_name().to_der().ok()?;
        let mut magnitude = serial.to_vec();
        if magnitude.is_empty() {
            magnitude.push(0);
        }
        let mut content = Vec::with_capacity(magnitude.len() + 1);
        if magnitude[0] & 0x80 != 0 {
            content.push(0); // keep the INTEGER positive (X.690 §8.3.2)
        }
        content.extend_from_slice(&magnitude);
        Some(CertIds {
            issuer,
            serial: normalize_serial(&content).to_vec(),
            serial_tlv: crate::asn1::writer::tlv(0x02, &content),
            ski: cert.subject_key_id().map(|k| k.as_slice().to_vec()),
        })
    }

    /// Read the identifiers from a certificate's DER (RFC 5280 §4.1).
    pub fn from_der(der: &[u8]) -> Option<CertIds> {
        let tbs = Tlv::parse(der)
            .ok()?
            .sequence("Certificate")
            .ok()?
            .into_iter()
            .next()?;
        let fields = tbs.sequence("TBSCertificate").ok()?;
        let mut it = fields.iter().skip_while(|t| t.tag.is(Class::Context, 0));
        let serial = it.next()?;
        it.next()?; // signature AlgorithmIdentifier
        let issuer = it.next()?;
        let ski = fields
            .iter()
            .find(|t| t.tag.is(Class::Context, 3))
            .and_then(|ext| subject_key_id(ext));
        Some(CertIds {
            issuer: issuer.raw().to_vec(),
            serial: normalize_serial(serial.content()).to_vec(),
            serial_tlv: serial.raw().to_vec(),
            ski,
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

/// The keyIdentifier inside the `[3]` extensions of a TBSCertificate.
fn subject_key_id(ext: &Tlv<'_>) -> Option<Vec<u8>> {
    let list = ext.children().next()?.ok()?;
    for e in list.children() {
        let f = e.ok()?.sequence("Extension").ok()?;
        if f.first().map(|o| o.content()) == Some(OID_SKI) {
            let value = f.last()?.content();
            return Tlv::parse(value).ok().map(|k| k.content().to_vec());
        }
    }
    None
}

/// A certificate parsed once, with what opening a message asks of it: its encoding and
/// fingerprint, the identifiers CMS names it by, what it is bound to, and its validity.
#[derive(Debug)]
pub struct ParsedCert {
    /// The certificate.
    pub x509: openssl::x509::X509,
    /// Its DER.
    pub der: Vec<u8>,
    /// SHA-256 of the DER.
    pub sha256: [u8; 32],
    /// Issuer/serial/key identifiers, if the TBSCertificate could be read.
    pub ids: Option<CertIds>,
    /// The addresses and domains it binds.
    pub bindings: Vec<crate::binding::CertBinding>,
    /// Its subject, one line.
    pub subject: String,
    /// notBefore (Unix seconds).
    pub not_before: Option<i64>,
    /// notAfter (Unix seconds).
    pub not_after: Option<i64>,
}

impl ParsedCert {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<ParsedCert, openssl::error::ErrorStack> {
        Ok(Self::describe(
            openssl::x509::X509::from_der(der)?,
            der.to_vec(),
        ))
    }

    /// Describe an already parsed certificate.
    pub fn from_x509(x509: openssl::x509::X509) -> Result<ParsedCert, openssl::error::ErrorStack> {
        let der = x509.to_der()?;
        Ok(Self::describe(x509, der))
    }

    fn describe(x509: openssl::x509::X509, der: Vec<u8>) -> ParsedCert {
        ParsedCert {
            sha256: openssl::sha::sha256(&der),
            ids: CertIds::from_der(&der),
            bindings: crate::binding::bindings(&x509),
            subject: subject_string(&x509),
            not_before: crate::time::from_asn1(x509.not_before()),
            not_after: crate::time::from_asn1(x509.not_after()),
            x509,
            der,
        }
    }

    /// The fingerprint as lowercase hex (DESIGN §3 `sha256`).
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A bounded cache of parsed certificates, keyed by their DER (hashed with the map's keyed
/// SipHash and compared whole on a hit: a third of the cost of a SHA-256 of the DER). Parsing an
/// X.509 certificate costs OpenSSL 3.0 about 100 µs, more than anything else in opening a
/// small message but the RSA operation; senders reuse their certificate for every message.
pub struct CertCache {
    map: std::sync::Mutex<std::collections::HashMap<Box<[u8]>, std::sync::Arc<ParsedCert>>>,
    capacity: usize,
}

impl std::fmt::Debug for CertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl CertCache {
    /// A cache holding up to `capacity` certificates (it empties itself when full).
    pub fn new(capacity: usize) -> CertCache {
        CertCache {
            map: Default::default(),
            capacity: capacity.max(1),
        }
    }

    /// The parsed certificate for `der`, from the cache or freshly parsed.
    pub fn parse(
        &self,
        der: &[u8],
    ) -> Result<std::sync::Arc<ParsedCert>, openssl::error::ErrorStack> {
        if let Some(c) = self.map.lock().ok().and_then(|m| m.get(der).cloned()) {
            return Ok(c);
        }
        let c = std::sync::Arc::new(ParsedCert::from_der(der)?);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(der.into(), c.clone());
        }
        Ok(c)
    }
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
        assert_eq!(Some(&ids), CertIds::from_der(&c.to_der().unwrap()).as_ref());
        assert_eq!(ids.ski.as_deref(), c.subject_key_id().map(|k| k.as_slice()));
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
