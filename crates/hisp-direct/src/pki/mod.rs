//! Test and operational PKI material issued in-process (RFC 5280 profile, DESIGN §4
//! "Certificates"): root and intermediate CAs, Direct end-entity certificates bound to an
//! address or a domain, CRLs and PKCS#12 bundles, for `hisp init`, `hisp demo`, tests and
//! benchmarks. It builds exactly what it is asked for, including expired, inverted or wrongly
//! bound certificates; judging a certificate is the trust evaluation's job, not this module's.

mod ext;
mod spec;
#[cfg(test)]
mod tests;

use openssl::asn1::{Asn1Integer, Asn1Time, Asn1Type};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{
    CrlNumber, X509Builder, X509Crl, X509CrlBuilder, X509Extension, X509Name, X509NameBuilder,
    X509NameRef, X509Ref, X509RevokedBuilder, X509,
};
use spec::{ia5, SanEntry};
pub use spec::{LeafSpec, LeafUsage, SubjectBinding};

/// Organization put in every subject DN, so test material is recognisable at a glance.
pub const TEST_ORGANIZATION: &str = "Hisp Test";

/// RSA modulus size of the convenience constructors (DESIGN §4: send with RSA ≥ 2048).
pub const DEFAULT_RSA_BITS: u32 = 2048;

/// Why PKI material could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// OpenSSL refused a step; `what` names the step.
    #[error("cannot {what}: {source}")]
    OpenSsl {
        /// The step that failed, e.g. "sign the certificate".
        what: &'static str,
        /// OpenSSL's error queue at the time.
        #[source]
        source: ErrorStack,
    },
    /// A value that is encoded as an IA5String (RFC 5280 §4.2.1.6, Appendix A) is not ASCII.
    #[error("{field} must be ASCII to fit an IA5String: {value:?}")]
    NotIa5 {
        /// Which input, e.g. "subject address".
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// The issuer has no subjectKeyIdentifier to copy into authorityKeyIdentifier (§4.2.1.1).
    #[error("issuer certificate has no subjectKeyIdentifier to reference")]
    IssuerWithoutKeyId,
    /// OpenSSL takes PKCS#12 passwords as C strings, so a NUL cannot be represented.
    #[error("PKCS#12 password contains a NUL byte")]
    PasswordContainsNul,
}

/// Maps an OpenSSL failure to [`PkiError::OpenSsl`] naming the step.
fn ossl(what: &'static str) -> impl FnOnce(ErrorStack) -> PkiError {
    move |source| PkiError::OpenSsl { what, source }
}

/// A certificate together with its private key.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub cert: X509,
    /// The private key matching the certificate's public key.
    pub key: PKey<Private>,
}

impl Issued {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> Result<Vec<u8>, PkiError> {
        self.cert
            .to_pem()
            .map_err(ossl("encode the certificate as PEM"))
    }

    /// The private key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn key_pem(&self) -> Result<Vec<u8>, PkiError> {
        let pem = self.key.private_key_to_pem_pkcs8();
        pem.map_err(ossl("encode the key as PKCS#8 PEM"))
    }

    /// The certificate as DER.
    pub fn cert_der(&self) -> Result<Vec<u8>, PkiError> {
        self.cert
            .to_der()
            .map_err(ossl("encode the certificate as DER"))
    }

    /// The private key as unencrypted PKCS#8 DER.
    pub fn key_der_pkcs8(&self) -> Result<Vec<u8>, PkiError> {
        let der = self.key.private_key_to_pkcs8();
        der.map_err(ossl("encode the key as PKCS#8 DER"))
    }

    /// A PKCS#12 file (OpenSSL 3 defaults: AES-256, PBKDF2) with key, certificate and `chain`.
    pub fn to_pkcs12(&self, password: &str, chain: &[&X509]) -> Result<Vec<u8>, PkiError> {
        if password.contains('\0') {
            return Err(PkiError::PasswordContainsNul);
        }
        let mut builder = Pkcs12::builder();
        builder.pkey(&self.key).cert(&self.cert);
        let name = common_name(&self.cert);
        if let Some(name) = &name {
            builder.name(name);
        }
        if !chain.is_empty() {
            let mut stack = Stack::new().map_err(ossl("allocate the PKCS#12 chain"))?;
            for cert in chain {
                let pushed = stack.push((*cert).clone());
                pushed.map_err(ossl("add a chain certificate to PKCS#12"))?;
            }
            builder.ca(stack);
        }
        let pkcs12 = builder
            .build2(password)
            .map_err(ossl("build the PKCS#12"))?;
        pkcs12.to_der().map_err(ossl("encode the PKCS#12 as DER"))
    }
}

/// The first subject commonName, used as the PKCS#12 friendly name.
fn common_name(cert: &X509Ref) -> Option<String> {
    let entry = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

/// A fresh RSA key of `bits` bits (public exponent 65537).
pub fn generate_rsa(bits: u32) -> Result<PKey<Private>, PkiError> {
    let rsa = Rsa::generate(bits).map_err(ossl("generate an RSA key"))?;
    PKey::from_rsa(rsa).map_err(ossl("wrap the RSA key"))
}

/// A self-signed root CA: basicConstraints critical CA:TRUE, keyUsage critical
/// keyCertSign+cRLSign, subjectKeyIdentifier, sha256WithRSAEncryption.
pub fn new_root_ca(
    common_name: &str,
    not_before: i64,
    not_after: i64,
    rsa_bits: u32,
) -> Result<Issued, PkiError> {
    let key = generate_rsa(rsa_bits)?;
    let name = subject_name(common_name, &[])?;
    let mut builder = start_cert(&name, &name, &key, (not_before, not_after), None)?;
    add_ca_extensions(&mut builder, None)?;
    // No authorityKeyIdentifier: RFC 5280 §4.2.1.1 lets self-signed certificates omit it.
    let cert = sign(builder, &key)?;
    Ok(Issued { cert, key })
}

/// An intermediate CA under `issuer`: as a root but CA:TRUE pathlen:0, plus
/// authorityKeyIdentifier and, if given, an authorityInfoAccess caIssuers URI.
pub fn new_intermediate_ca(
    issuer: &Issued,
    common_name: &str,
    not_before: i64,
    not_after: i64,
    rsa_bits: u32,
    aia_ca_issuers_url: Option<&str>,
) -> Result<Issued, PkiError> {
    if let Some(url) = aia_ca_issuers_url {
        ia5("caIssuers URI", url)?;
    }
    let key = generate_rsa(rsa_bits)?;
    let name = subject_name(common_name, &[])?;
    let issuer_name = issuer.cert.subject_name();
    let mut builder = start_cert(&name, issuer_name, &key, (not_before, not_after), None)?;
    add_ca_extensions(&mut builder, Some(0))?;
    add_authority_key_id(&mut builder, &issuer.cert)?;
    if let Some(url) = aia_ca_issuers_url {
        append(
            &mut builder,
            ext::ca_issuers(url),
            "build authorityInfoAccess",
        )?;
    }
    let cert = sign(builder, &issuer.key)?;
    Ok(Issued { cert, key })
}

/// An end-entity certificate under `issuer`, with a fresh key of `spec.rsa_bits` bits.
pub fn issue_leaf(issuer: &Issued, spec: &LeafSpec) -> Result<Issued, PkiError> {
    spec.check_ia5()?; // before the slow key generation
    let key = generate_rsa(spec.rsa_bits)?;
    issue_leaf_for_key(issuer, spec, key)
}

/// As [`issue_leaf`] but for an existing key (`spec.rsa_bits` is ignored): renewals, and
/// benchmarks that cannot afford a key generation per certificate.
///
/// The certificate has basicConstraints critical CA:FALSE, subjectKeyIdentifier,
/// authorityKeyIdentifier (keyid), keyUsage critical per spec, extendedKeyUsage
/// emailProtection if asked, subjectAltName per binding, sha256WithRSAEncryption.
pub fn issue_leaf_for_key(
    issuer: &Issued,
    spec: &LeafSpec,
    key: PKey<Private>,
) -> Result<Issued, PkiError> {
    spec.check_ia5()?;
    let name = subject_name(&spec.common_name, &spec.dn_emails())?;
    let validity = (spec.not_before, spec.not_after);
    let issuer_name = issuer.cert.subject_name();
    let mut b = start_cert(&name, issuer_name, &key, validity, spec.serial)?;
    let not_ca = BasicConstraints::new().critical().build();
    append(&mut b, not_ca, "build basicConstraints")?;
    append(&mut b, spec.key_usage.extension(), "build keyUsage")?;
    if spec.email_protection_eku {
        let eku = ExtendedKeyUsage::new().email_protection().build();
        append(&mut b, eku, "build extendedKeyUsage")?;
    }
    add_subject_alt_name(&mut b, &spec.san_entries())?;
    add_subject_key_id(&mut b)?;
    add_authority_key_id(&mut b, &issuer.cert)?;
    if let Some(url) = &spec.crl_url {
        append(
            &mut b,
            ext::crl_distribution_point(url),
            "build cRLDistributionPoints",
        )?;
    }
    if let Some(url) = &spec.aia_ca_issuers_url {
        append(&mut b, ext::ca_issuers(url), "build authorityInfoAccess")?;
    }
    let cert = sign(b, &issuer.key)?;
    Ok(Issued { cert, key })
}

/// A v2 CRL (RFC 5280 §5) signed by `issuer`, listing each certificate's serial with its
/// revocation time, with authorityKeyIdentifier and cRLNumber `crl_number`.
pub fn issue_crl(
    issuer: &Issued,
    revoked: &[(&X509, i64)],
    this_update: i64,
    next_update: i64,
    crl_number: u64,
) -> Result<X509Crl, PkiError> {
    let mut crl = X509CrlBuilder::new().map_err(ossl("start a CRL"))?;
    let issuer_name = crl.set_issuer_name(issuer.cert.subject_name());
    issuer_name.map_err(ossl("set the CRL issuer"))?;
    let this = asn1_time(this_update)?;
    crl.set_last_update(&this)
        .map_err(ossl("set the CRL thisUpdate"))?;
    let next = asn1_time(next_update)?;
    crl.set_next_update(&next)
        .map_err(ossl("set the CRL nextUpdate"))?;
    for (cert, at) in revoked {
        let mut entry = X509RevokedBuilder::new().map_err(ossl("start a CRL entry"))?;
        let serial = entry.set_serial_number(cert.serial_number());
        serial.map_err(ossl("set a revoked serial"))?;
        let date = asn1_time(*at)?;
        entry
            .set_revocation_date(&date)
            .map_err(ossl("set a revocation date"))?;
        crl.add_revoked(entry.build())
            .map_err(ossl("add a CRL entry"))?;
    }
    let aki = authority_key_id(&issuer.cert)?;
    crl.append_extension(aki)
        .map_err(ossl("add the CRL authorityKeyIdentifier"))?;
    let number = BigNum::from_slice(&crl_number.to_be_bytes()).and_then(CrlNumber::new);
    let number = number
        .and_then(CrlNumber::build)
        .map_err(ossl("build cRLNumber"))?;
    crl.append_extension(number)
        .map_err(ossl("add the cRLNumber"))?;
    crl.sort().map_err(ossl("sort the CRL entries"))?;
    let signed = crl.sign(&issuer.key, MessageDigest::sha256());
    signed.map_err(ossl("sign the CRL"))?;
    crl.build().map_err(ossl("finish the CRL"))
}

/// Subject DN: O, CN (UTF8String), then each emailAddress (IA5String). Explicit string
/// types bypass OpenSSL's RFC 5280 size limits, so over-long names can be built on purpose.
fn subject_name(common_name: &str, emails: &[&str]) -> Result<X509Name, PkiError> {
    let mut name = X509NameBuilder::new().map_err(ossl("start a subject name"))?;
    let org = name.append_entry_by_nid_with_type(
        Nid::ORGANIZATIONNAME,
        TEST_ORGANIZATION,
        Asn1Type::UTF8STRING,
    );
    org.map_err(ossl("set the subject organization"))?;
    let cn = name.append_entry_by_nid_with_type(Nid::COMMONNAME, common_name, Asn1Type::UTF8STRING);
    cn.map_err(ossl("set the subject commonName"))?;
    for email in emails {
        let entry =
            name.append_entry_by_nid_with_type(Nid::PKCS9_EMAILADDRESS, email, Asn1Type::IA5STRING);
        entry.map_err(ossl("set the subject emailAddress"))?;
    }
    Ok(name.build())
}

/// A v3 certificate builder with names, key, validity and serial set.
fn start_cert(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKeyRef<Private>,
    (not_before, not_after): (i64, i64),
    serial: Option<u64>,
) -> Result<X509Builder, PkiError> {
    let mut b = X509Builder::new().map_err(ossl("start a certificate"))?;
    // The field holds version - 1: 2 means v3, needed for extensions (RFC 5280 §4.1.2.1).
    b.set_version(2)
        .map_err(ossl("set the certificate version"))?;
    let serial = serial_number(serial)?;
    b.set_serial_number(&serial)
        .map_err(ossl("set the serial number"))?;
    b.set_subject_name(subject)
        .map_err(ossl("set the subject name"))?;
    b.set_issuer_name(issuer)
        .map_err(ossl("set the issuer name"))?;
    b.set_pubkey(key).map_err(ossl("set the public key"))?;
    let start = asn1_time(not_before)?;
    b.set_not_before(&start).map_err(ossl("set notBefore"))?;
    let end = asn1_time(not_after)?;
    b.set_not_after(&end).map_err(ossl("set notAfter"))?;
    Ok(b)
}

/// The given serial, or a random one: 63 bits with the top bit set, so it is positive,
/// never zero, always eight octets and fits an i64 (RFC 5280 §4.1.2.2 allows 20 octets).
fn serial_number(serial: Option<u64>) -> Result<Asn1Integer, PkiError> {
    let bn = match serial {
        Some(n) => BigNum::from_slice(&n.to_be_bytes()),
        None => BigNum::new().and_then(|mut bn| bn.rand(63, MsbOption::ONE, false).map(|()| bn)),
    };
    bn.and_then(|bn| bn.to_asn1_integer())
        .map_err(ossl("make a serial number"))
}

fn asn1_time(unix: i64) -> Result<Asn1Time, PkiError> {
    Asn1Time::from_unix(unix).map_err(ossl("convert a unix time to ASN.1"))
}

/// basicConstraints critical CA:TRUE (with `pathlen`), keyUsage critical
/// keyCertSign+cRLSign (RFC 5280 §4.2.1.9, §4.2.1.3), subjectKeyIdentifier.
fn add_ca_extensions(b: &mut X509Builder, pathlen: Option<u32>) -> Result<(), PkiError> {
    let mut constraints = BasicConstraints::new();
    constraints.critical().ca();
    if let Some(len) = pathlen {
        constraints.pathlen(len);
    }
    append(b, constraints.build(), "build basicConstraints")?;
    let usage = KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build();
    append(b, usage, "build keyUsage")?;
    add_subject_key_id(b)
}

/// subjectKeyIdentifier: SHA-1 of the subject public key (RFC 5280 §4.2.1.2 method 1).
fn add_subject_key_id(b: &mut X509Builder) -> Result<(), PkiError> {
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None));
    append(b, ski, "build subjectKeyIdentifier")
}

/// subjectAltName with `entries`, left out when there are none (legacy DN-only bindings).
fn add_subject_alt_name(b: &mut X509Builder, entries: &[SanEntry<'_>]) -> Result<(), PkiError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut san = SubjectAlternativeName::new();
    for entry in entries {
        match entry {
            SanEntry::Email(v) => san.email(v),
            SanEntry::Dns(v) => san.dns(v),
        };
    }
    let built = san.build(&b.x509v3_context(None, None));
    append(b, built, "build subjectAltName")
}

/// authorityKeyIdentifier copying the issuer's subjectKeyIdentifier (RFC 5280 §4.2.1.1).
fn authority_key_id(issuer: &X509Ref) -> Result<X509Extension, PkiError> {
    let key_id = issuer
        .subject_key_id()
        .ok_or(PkiError::IssuerWithoutKeyId)?;
    ext::authority_key_id(key_id.as_slice()).map_err(ossl("build authorityKeyIdentifier"))
}

fn add_authority_key_id(b: &mut X509Builder, issuer: &X509Ref) -> Result<(), PkiError> {
    let aki = authority_key_id(issuer)?;
    b.append_extension(aki)
        .map_err(ossl("add authorityKeyIdentifier"))
}

/// Adds a freshly built extension; `what` names it if building failed.
fn append(
    b: &mut X509Builder,
    extension: Result<X509Extension, ErrorStack>,
    what: &'static str,
) -> Result<(), PkiError> {
    b.append_extension(extension.map_err(ossl(what))?)
        .map_err(ossl("add an extension"))
}

fn sign(mut b: X509Builder, issuer_key: &PKeyRef<Private>) -> Result<X509, PkiError> {
    b.sign(issuer_key, MessageDigest::sha256())
        .map_err(ossl("sign the certificate"))?;
    Ok(b.build())
}
