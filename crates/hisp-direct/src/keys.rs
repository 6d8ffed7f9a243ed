//! Loading certificates, private keys, PKCS#12 files and CRLs from bytes, whatever form
//! operators and the reference implementations use: PEM or DER, PKCS#8 or PKCS#1, and
//! PKCS#12 with the 2010-era RC2-40 bags (OpenSSL 3's legacy provider is loaded for those).

use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::provider::Provider;
use openssl::x509::{X509Crl, X509};
use std::sync::OnceLock;

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Bytes that are neither a PEM nor a DER certificate.
    #[error("not a certificate (expected PEM or DER X.509)")]
    NotACertificate,
    /// Bytes that are not a private key in any supported form.
    #[error("not a private key (expected PEM or DER, PKCS#8 or PKCS#1, or PKCS#12)")]
    NotAKey,
    /// An encrypted key or PKCS#12 file that needs a password.
    #[error("the key is encrypted: give its password (--key-password)")]
    PasswordRequired,
    /// PKCS#12 MAC check failed.
    #[error("wrong PKCS#12 password (MAC verification failed)")]
    WrongPassword,
    /// PKCS#12 without a key or certificate.
    #[error("PKCS#12 file has no {0}")]
    Pkcs12Missing(&'static str),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate {subject}")]
    Mismatch {
        /// Subject of the certificate.
        subject: String,
    },
    /// Bytes that are not a CRL.
    #[error("not a CRL (expected PEM or DER X.509 CRL)")]
    NotACrl,
}

/// A certificate with its private key (and any chain that came with it).
#[derive(Clone)]
pub struct Credential {
    cert: X509,
    key: PKey<Private>,
    chain: Vec<X509>,
    der: Vec<u8>,
    ids: crate::cert::CertIds,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("cert", &crate::cert::subject_string(&self.cert))
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Pair a certificate and key, refusing a key that is not the certificate's.
    pub fn new(cert: X509, key: PKey<Private>, chain: Vec<X509>) -> Result<Credential, KeyError> {
        let matches = cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        let subject = || crate::cert::subject_string(&cert);
        if !matches {
            return Err(KeyError::Mismatch { subject: subject() });
        }
        let der = cert.to_der().map_err(|_| KeyError::NotACertificate)?;
        let ids = crate::cert::CertIds::from_der(&der).ok_or(KeyError::NotACertificate)?;
        Ok(Credential {
            cert,
            key,
            chain,
            der,
            ids,
        })
    }

    /// The end-entity certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// Its private key.
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// Intermediate certificates to send along (from PKCS#12 or configured).
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// The certificate's DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate's issuer/serial/key identifiers.
    pub fn ids(&self) -> &crate::cert::CertIds {
        &self.ids
    }
}

fn is_pem(b: &[u8]) -> bool {
    memchr::memmem::find(b, b"-----BEGIN ").is_some()
}

/// Every certificate in a PEM bundle, or the one DER certificate.
pub fn load_certs(bytes: &[u8]) -> Result<Vec<X509>, KeyError> {
    let certs = if is_pem(bytes) {
        X509::stack_from_pem(bytes).map_err(|_| KeyError::NotACertificate)?
    } else {
        vec![X509::from_der(bytes).map_err(|_| KeyError::NotACertificate)?]
    };
    if certs.is_empty() {
        return Err(KeyError::NotACertificate);
    }
    Ok(certs)
}

/// The first certificate of a PEM or DER file.
pub fn load_cert(bytes: &[u8]) -> Result<X509, KeyError> {
    load_certs(bytes)?
        .into_iter()
        .next()
        .ok_or(KeyError::NotACertificate)
}

/// A private key: PEM (PKCS#8, encrypted PKCS#8, PKCS#1) or DER (PKCS#8 or PKCS#1).
pub fn load_private_key(bytes: &[u8], password: Option<&str>) -> Result<PKey<Private>, KeyError> {
    if is_pem(bytes) {
        if memchr::memmem::find(bytes, b"ENCRYPTED").is_some() {
            let pw = password.ok_or(KeyError::PasswordRequired)?;
            return PKey::private_key_from_pem_passphrase(bytes, pw.as_bytes())
                .map_err(|_| KeyError::WrongPassword);
        }
        return PKey::private_key_from_pem(bytes).map_err(|_| KeyError::NotAKey);
    }
    PKey::private_key_from_der(bytes)
        .or_else(|_| openssl::rsa::Rsa::private_key_from_der(bytes).and_then(PKey::from_rsa))
        .or_else(|_| match password {
            Some(pw) => PKey::private_key_from_pkcs8_passphrase(bytes, pw.as_bytes()),
            None => PKey::private_key_from_der(bytes),
        })
        .map_err(|_| KeyError::NotAKey)
}

/// True when the bytes look like a PKCS#12 PFX (SEQUENCE { INTEGER 3, ContentInfo … }).
pub fn is_pkcs12(bytes: &[u8]) -> bool {
    let Ok(t) = crate::asn1::Tlv::parse(bytes) else {
        return false;
    };
    let Ok(kids) = t.sequence("PFX") else {
        return false;
    };
    kids.first().and_then(|v| v.small_uint().ok()) == Some(3) && kids.len() >= 2
}

/// OpenSSL 3 keeps RC2-40 and other old PKCS#12 algorithms in the legacy provider. Load it
/// once, keeping the default provider available.
fn ensure_legacy_provider() {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY.get_or_init(|| Provider::try_load(None, "legacy", true).ok());
}

/// Open a PKCS#12 file.
pub fn load_pkcs12(bytes: &[u8], password: &str) -> Result<Credential, KeyError> {
    let p12 = Pkcs12::from_der(bytes).map_err(|_| KeyError::NotAKey)?;
    let parsed = p12.parse2(password).or_else(|_| {
        ensure_legacy_provider();
        p12.parse2(password)
    });
    let parsed = parsed.map_err(|e| {
        let mac = e
            .errors()
            .iter()
            .any(|x| x.reason().is_some_and(|r| r.contains("mac")));
        if mac || !password.is_empty() {
            KeyError::WrongPassword
        } else {
            KeyError::PasswordRequired
        }
    })?;
    let key = parsed.pkey.ok_or(KeyError::Pkcs12Missing("private key"))?;
    let cert = parsed.cert.ok_or(KeyError::Pkcs12Missing("certificate"))?;
    let chain = parsed
        .ca
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    Credential::new(cert, key, chain)
}

/// A credential from a key file (PEM/DER key, or PKCS#12) and an optional certificate file
/// (required unless the key file is PKCS#12).
pub fn load_credential(
    cert: Option<&[u8]>,
    key: &[u8],
    password: Option<&str>,
) -> Result<Credential, KeyError> {
    if is_pkcs12(key) {
        return load_pkcs12(key, password.unwrap_or(""));
    }
    let key = load_private_key(key, password)?;
    let certs = match cert {
        Some(c) if is_pkcs12(c) => return load_pkcs12(c, password.unwrap_or("")),
        Some(c) => load_certs(c)?,
        None => return Err(KeyError::NotACertificate),
    };
    let mut it = certs.into_iter();
    let leaf = it.next().ok_or(KeyError::NotACertificate)?;
    Credential::new(leaf, key, it.collect())
}

/// A CRL in PEM or DER.
pub fn load_crl(bytes: &[u8]) -> Result<X509Crl, KeyError> {
    if is_pem(bytes) {
        X509Crl::from_pem(bytes).map_err(|_| KeyError::NotACrl)
    } else {
        X509Crl::from_der(bytes).map_err(|_| KeyError::NotACrl)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    macro_rules! vector {
        ($p:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/vectors/interop/",
                $p
            ))
        };
    }

    #[test]
    fn pkcs12_legacy_rc2_40_with_password() {
        let p12 = vector!("javari/certs/gm2552encrypted.p12");
        assert!(is_pkcs12(p12));
        let c = load_pkcs12(p12, "1kingpuff").unwrap();
        assert_eq!(
            hex::encode_upper(c.cert().serial_number().to_bn().unwrap().to_vec()),
            "F74F1C4FE4E1762B"
        );
        assert_eq!(c.key().bits(), 1024);
        assert!(matches!(
            load_pkcs12(p12, "wrong"),
            Err(KeyError::WrongPassword)
        ));
        assert!(load_credential(None, p12, Some("1kingpuff")).is_ok());
    }

    #[test]
    fn der_pkcs8_key_and_cert_pair_up() {
        let c = load_credential(
            Some(vector!("javari/certs/ryan.der")),
            vector!("javari/certs/ryanKey.der"),
            None,
        );
        assert!(c.is_ok());
        let wrong = load_credential(
            Some(vector!("javari/certs/gm2552.der")),
            vector!("javari/certs/ryanKey.der"),
            None,
        );
        assert!(matches!(wrong, Err(KeyError::Mismatch { .. })));
        assert!(load_cert(b"garbage").is_err());
        assert!(load_private_key(b"", None).is_err());
        assert!(load_crl(vector!("javari/crl/certs.crl")).is_ok());
    }
}
