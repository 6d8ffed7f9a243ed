//! What varies between end-entity certificates: the subject binding (address or domain,
//! SAN or legacy DN-only, DESIGN §4 "Certificates"), key usage, validity, extensions.
//! Plain data with defaults; the parent module turns a [`LeafSpec`] into a certificate.

use openssl::error::ErrorStack;
use openssl::x509::extension::KeyUsage;
use openssl::x509::X509Extension;

use super::{PkiError, DEFAULT_RSA_BITS};

/// What an end-entity certificate is bound to (DESIGN §4 "Certificates").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectBinding {
    /// A Direct address: SAN rfc822Name and subject DN emailAddress.
    Address(String),
    /// A health domain: SAN dNSName and the domain (no `@`) as subject DN emailAddress.
    Domain(String),
    /// Legacy address binding: subject DN emailAddress only, no SAN.
    AddressDnOnly(String),
    /// Legacy domain binding: the domain as subject DN emailAddress only, no SAN.
    DomainDnOnly(String),
    /// Bound to nothing (for negative tests).
    None,
}

/// One subjectAltName entry a binding contributes.
pub(super) enum SanEntry<'a> {
    Email(&'a str),
    Dns(&'a str),
}

impl SubjectBinding {
    /// The address or domain, if any.
    fn value(&self) -> Option<&str> {
        match self {
            Self::Address(v) | Self::Domain(v) | Self::AddressDnOnly(v) | Self::DomainDnOnly(v) => {
                Some(v)
            }
            Self::None => None,
        }
    }

    fn san_entry(&self) -> Option<SanEntry<'_>> {
        match self {
            Self::Address(v) => Some(SanEntry::Email(v)),
            Self::Domain(v) => Some(SanEntry::Dns(v)),
            _ => None,
        }
    }
}

/// The keyUsage an end-entity certificate gets (RFC 5280 §4.2.1.3), always critical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeafUsage {
    /// digitalSignature + keyEncipherment: one certificate to sign and to receive.
    #[default]
    SignAndEncrypt,
    /// digitalSignature only.
    SignOnly,
    /// keyEncipherment only.
    EncryptOnly,
    /// keyCertSign only: wrong for any Direct use, for negative tests.
    CertSignOnly,
}

impl LeafUsage {
    pub(super) fn extension(self) -> Result<X509Extension, ErrorStack> {
        let mut usage = KeyUsage::new();
        usage.critical();
        match self {
            Self::SignAndEncrypt => usage.digital_signature().key_encipherment(),
            Self::SignOnly => usage.digital_signature(),
            Self::EncryptOnly => usage.key_encipherment(),
            Self::CertSignOnly => usage.key_cert_sign(),
        };
        usage.build()
    }
}

/// Everything that varies between end-entity certificates; times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject commonName.
    pub common_name: String,
    /// The primary binding: SAN entry and/or DN emailAddress as [`SubjectBinding`] says.
    pub binding: SubjectBinding,
    /// Start of validity; not checked against `not_after`, so inverted windows can be built.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// RSA modulus size of the generated key (default [`DEFAULT_RSA_BITS`]).
    pub rsa_bits: u32,
    /// keyUsage flags.
    pub key_usage: LeafUsage,
    /// Whether to add extendedKeyUsage emailProtection (default true).
    pub email_protection_eku: bool,
    /// Serial number; a random positive 63-bit value when `None`.
    pub serial: Option<u64>,
    /// URI for a cRLDistributionPoints extension.
    pub crl_url: Option<String>,
    /// URI for an authorityInfoAccess caIssuers extension (where the issuer cert is).
    pub aia_ca_issuers_url: Option<String>,
    /// Further names: `Address`/`Domain` add a SAN entry only, `*DnOnly` add a DN
    /// emailAddress only, `None` adds nothing.
    pub extra_sans: Vec<SubjectBinding>,
}

impl LeafSpec {
    /// An address-bound certificate for `addr`, with the defaults above and CN = `addr`.
    pub fn address(addr: &str, not_before: i64, not_after: i64) -> Self {
        Self::with_binding(
            addr,
            SubjectBinding::Address(addr.to_string()),
            not_before,
            not_after,
        )
    }

    /// A domain-bound certificate for `domain`, with the defaults above and CN = `domain`.
    pub fn domain(domain: &str, not_before: i64, not_after: i64) -> Self {
        let binding = SubjectBinding::Domain(domain.to_string());
        Self::with_binding(domain, binding, not_before, not_after)
    }

    fn with_binding(cn: &str, binding: SubjectBinding, not_before: i64, not_after: i64) -> Self {
        Self {
            common_name: cn.to_string(),
            binding,
            not_before,
            not_after,
            rsa_bits: DEFAULT_RSA_BITS,
            key_usage: LeafUsage::default(),
            email_protection_eku: true,
            serial: None,
            crl_url: None,
            aia_ca_issuers_url: None,
            extra_sans: Vec::new(),
        }
    }

    /// DN emailAddress values: the primary binding's, then the DN-only extras.
    pub(super) fn dn_emails(&self) -> Vec<&str> {
        let extras = self.extra_sans.iter().filter(|b| b.san_entry().is_none());
        self.binding
            .value()
            .into_iter()
            .chain(extras.filter_map(SubjectBinding::value))
            .collect()
    }

    /// SAN entries: the primary binding's, then the extras'.
    pub(super) fn san_entries(&self) -> Vec<SanEntry<'_>> {
        let all = std::iter::once(&self.binding).chain(&self.extra_sans);
        all.filter_map(SubjectBinding::san_entry).collect()
    }

    /// Rejects non-ASCII names and URIs up front, since OpenSSL would encode them as
    /// invalid IA5Strings rather than fail.
    pub(super) fn check_ia5(&self) -> Result<(), PkiError> {
        let names = std::iter::once(&self.binding).chain(&self.extra_sans);
        for name in names.filter_map(SubjectBinding::value) {
            ia5("subject address or domain", name)?;
        }
        if let Some(url) = &self.crl_url {
            ia5("CRL distribution point URI", url)?;
        }
        if let Some(url) = &self.aia_ca_issuers_url {
            ia5("caIssuers URI", url)?;
        }
        Ok(())
    }
}

pub(super) fn ia5(field: &'static str, value: &str) -> Result<(), PkiError> {
    if value.is_ascii() {
        return Ok(());
    }
    Err(PkiError::NotIa5 {
        field,
        value: value.to_string(),
    })
}
