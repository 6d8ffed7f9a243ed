//! Verifying CMS SignedData (RFC 5652 §5.4–5.6) over detached or encapsulated content:
//! messageDigest and contentType attributes, RFC 6211 algorithm protection, and the
//! signature itself (RSA PKCS#1 v1.5 under rsaEncryption or shaNWithRSA, RSASSA-PSS per
//! RFC 4056, ECDSA). Trust in the signer is a separate step (`crate::trust`).

use super::{alg_id, content_info, decrypt::RecipientId, rid_from};
use crate::alg::{Digest, Profile};
use crate::asn1::{oid, reader::tags, Class, Tlv};
use crate::cert::{CertCache, ParsedCert};
use crate::error::SignatureError;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use std::sync::Arc;

/// A parsed SignedData.
#[derive(Debug, Clone)]
pub struct SignedData {
    /// The certificates carried in the message.
    pub certs: Vec<Arc<ParsedCert>>,
    /// Each SignerInfo.
    pub signers: Vec<SignerInfo>,
    /// eContentType OID content.
    pub econtent_type: Vec<u8>,
    /// Encapsulated content, when not detached.
    pub econtent: Option<Vec<u8>>,
}

/// One SignerInfo (RFC 5652 §5.3).
#[derive(Debug, Clone)]
pub struct SignerInfo {
    /// Who signed.
    pub sid: RecipientId,
    /// digestAlgorithm OID content.
    pub digest_oid: Vec<u8>,
    /// digestAlgorithm as DER (for RFC 6211 comparison).
    pub digest_alg_der: Vec<u8>,
    /// The signed attributes as a DER SET (what the signature covers), if present.
    pub signed_attrs: Option<Vec<u8>>,
    /// signatureAlgorithm OID content.
    pub sig_oid: Vec<u8>,
    /// signatureAlgorithm as DER.
    pub sig_alg_der: Vec<u8>,
    /// signatureAlgorithm parameters (DER) if any.
    pub sig_params: Option<Vec<u8>>,
    /// The signature value.
    pub signature: Vec<u8>,
}

/// Parse a DER/BER ContentInfo holding SignedData; certificates are parsed through `cache`
/// when one is given.
pub fn parse_signed_data(
    der: &[u8],
    cache: Option<&CertCache>,
) -> Result<SignedData, SignatureError> {
    let (ctype, body) = content_info(der)?;
    if ctype.content() != oid::SIGNED_DATA {
        return Err(SignatureError::NotSignedData(oid::dotted(ctype.content())));
    }
    let f = body.sequence("SignedData")?;
    let mut it = f.into_iter().skip(2); // version, digestAlgorithms
    let eci = it.next().ok_or(crate::asn1::Asn1Error::Unexpected {
        what: "encapContentInfo",
        offset: body.end,
    })?;
    let ef = eci.sequence("EncapsulatedContentInfo")?;
    let econtent_type = ef.first().map(|t| t.content().to_vec()).unwrap_or_default();
    let econtent = match ef.get(1) {
        Some(e) => match e.children().next() {
            Some(c) => Some(c?.octets()?),
            None => None,
        },
        None => None,
    };
    let mut certs = Vec::new();
    let mut signers = Vec::new();
    for t in it {
        if t.tag.is(Class::Context, 0) {
            for c in t.children() {
                let c = c?;
                // Other CertificateChoices (attribute certificates) are skipped.
                let raw = c.raw();
                let parsed = match cache {
                    Some(cache) => cache.parse(raw),
                    None => ParsedCert::from_der(raw).map(Arc::new),
                };
                if let Ok(c) = parsed {
                    certs.push(c);
                }
            }
        } else if t.tag.is(Class::Universal, tags::SET) {
            for si in t.children() {
                signers.push(parse_signer(&si?)?);
            }
        }
    }
    Ok(SignedData {
        certs,
        signers,
        econtent_type,
        econtent,
    })
}

fn parse_signer(t: &Tlv<'_>) -> Result<SignerInfo, SignatureError> {
    let f = t.sequence("SignerInfo")?;
    let bad = || crate::asn1::Asn1Error::Unexpected {
        what: "SignerInfo field",
        offset: t.start,
    };
    let sid = rid_from(f.get(1).ok_or_else(bad)?)?;
    let dalg = f.get(2).ok_or_else(bad)?;
    let (digest_oid, _) = alg_id(dalg)?;
    let mut i = 3;
    let mut signed_attrs = None;
    if let Some(a) = f.get(3).filter(|a| a.tag.is(Class::Context, 0)) {
        let mut der = Vec::new();
        crate::asn1::reader::to_definite(a, &mut der)?;
        if let Some(b) = der.first_mut() {
            *b = 0x31; // RFC 5652 §5.4: the signature covers the attributes as an explicit SET
        }
        signed_attrs = Some(der);
        i += 1;
    }
    let salg = f.get(i).ok_or_else(bad)?;
    let (sig_oid, sig_params) = alg_id(salg)?;
    let signature = f.get(i + 1).ok_or_else(bad)?.octets()?;
    Ok(SignerInfo {
        sid,
        digest_oid: digest_oid.to_vec(),
        digest_alg_der: dalg.raw().to_vec(),
        signed_attrs,
        sig_oid: sig_oid.to_vec(),
        sig_alg_der: salg.raw().to_vec(),
        sig_params: sig_params.map(|p| p.raw().to_vec()),
        signature,
    })
}

/// A verified signature.
#[derive(Debug, Clone)]
pub struct SignatureOutcome {
    /// The signer's certificate (from the message).
    pub signer: Arc<ParsedCert>,
    /// The digest used.
    pub digest: Digest,
    /// The signature algorithm, named.
    pub signature_alg: String,
    /// signingTime attribute (Unix seconds), if present.
    pub signing_time: Option<i64>,
    /// Legacy algorithms accepted.
    pub warnings: Vec<String>,
}

/// Verify the first SignerInfo that verifies over `content` (RFC 5652 §5.6); if none
/// does, report why the first one failed.
pub fn verify(
    sd: &SignedData,
    content: &[u8],
    profile: &Profile,
) -> Result<SignatureOutcome, SignatureError> {
    verify_digested(sd, content, None, profile)
}

/// [`verify`], with the digest of `content` already taken by one algorithm (while the
/// content was located): a signer using that algorithm is checked against it instead of
/// hashing the content again.
pub fn verify_digested(
    sd: &SignedData,
    content: &[u8],
    known: Option<(Digest, &[u8])>,
    profile: &Profile,
) -> Result<SignatureOutcome, SignatureError> {
    let mut first_err = None;
    for si in &sd.signers {
        match verify_one(sd, si, content, known, profile) {
            Ok(o) => return Ok(o),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(SignatureError::NoSigner))
}

fn verify_one(
    sd: &SignedData,
    si: &SignerInfo,
    content: &[u8],
    known: Option<(Digest, &[u8])>,
    profile: &Profile,
) -> Result<SignatureOutcome, SignatureError> {
    let digest = Digest::from_oid(&si.digest_oid)
        .ok_or_else(|| SignatureError::UnsupportedDigest(oid::dotted(&si.digest_oid)))?;
    let warnings: Vec<String> = profile
        .check_digest(digest)
        .map_err(SignatureError::Policy)?
        .into_iter()
        .collect();
    let signer = find_signer(sd, &si.sid).ok_or(SignatureError::SignerCertMissing)?;
    let scheme = Scheme::of(si, digest)?;
    let mut signing_time = None;
    let covered: &[u8] = match &si.signed_attrs {
        Some(attrs) => {
            let a = read_attributes(attrs)?;
            let ct = a
                .content_type
                .ok_or(SignatureError::MissingAttribute("contentType"))?;
            if ct != sd.econtent_type {
                return Err(SignatureError::ContentTypeMismatch);
            }
            let md = a
                .message_digest
                .ok_or(SignatureError::MissingAttribute("messageDigest"))?;
            let matches = match known {
                Some((d, value)) if d == digest => md == value,
                _ => md == digest.hash(content),
            };
            if !matches {
                return Err(SignatureError::DigestMismatch);
            }
            if let Some((d, s)) = a.protection {
                let sig_ok = s.as_deref().is_none_or(|s| same_alg(s, &si.sig_alg_der));
                if !same_alg(&d, &si.digest_alg_der) || !sig_ok {
                    return Err(SignatureError::AlgorithmProtection);
                }
            }
            signing_time = a.signing_time;
            attrs
        }
        None => content,
    };
    let key = signer
        .x509
        .public_key()
        .map_err(|_| SignatureError::BadSignature)?;
    let ok = scheme.verify(&key, covered, &si.signature).unwrap_or(false);
    if !ok {
        return Err(SignatureError::BadSignature);
    }
    Ok(SignatureOutcome {
        signer,
        digest,
        signature_alg: scheme.name(),
        signing_time,
        warnings,
    })
}

fn find_signer(sd: &SignedData, sid: &RecipientId) -> Option<Arc<ParsedCert>> {
    sd.certs
        .iter()
        .find(|c| {
            let Some(ids) = &c.ids else {
                return false;
            };
            match sid {
                RecipientId::IssuerSerial { issuer, serial } => {
                    ids.matches_issuer_serial(&c.x509, issuer, serial)
                }
                RecipientId::Ski(k) => ids.ski.as_deref() == Some(k.as_slice()),
            }
        })
        .cloned()
}

/// AlgorithmIdentifiers compare equal when OIDs match and parameters are equal, treating
/// absent and NULL parameters alike (producers differ, RFC 5754 §2).
fn same_alg(a: &[u8], b: &[u8]) -> bool {
    let norm = |x: &[u8]| -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let t = Tlv::parse(x).ok()?;
        let (o, p) = alg_id(&t).ok()?;
        Some((o.to_vec(), p.map(|p| p.raw().to_vec())))
    };
    norm(a).is_some() && norm(a) == norm(b)
}

#[derive(Default)]
struct Attributes {
    content_type: Option<Vec<u8>>,
    message_digest: Option<Vec<u8>>,
    signing_time: Option<i64>,
    protection: Option<(Vec<u8>, Option<Vec<u8>>)>,
}

fn read_attributes(der: &[u8]) -> Result<Attributes, SignatureError> {
    let mut a = Attributes::default();
    for attr in Tlv::parse(der)?.child_vec()? {
        let f = attr.sequence("Attribute")?;
        let (Some(t), Some(values)) = (f.first(), f.get(1)) else {
            continue;
        };
        let Some(v) = values.children().next().transpose()? else {
            continue;
        };
        match t.content() {
            o if o == oid::ATTR_CONTENT_TYPE => a.content_type = Some(v.content().to_vec()),
            o if o == oid::ATTR_MESSAGE_DIGEST => a.message_digest = Some(v.octets()?),
            o if o == oid::ATTR_SIGNING_TIME => {
                a.signing_time = crate::time::parse_der_time(v.tag.number, v.content());
            }
            o if o == oid::ATTR_ALGORITHM_PROTECTION => {
                let p = v.sequence("CMSAlgorithmProtection")?;
                let d = p.first().map(|d| d.raw().to_vec()).unwrap_or_default();
                let s = p.iter().find(|x| x.tag.is(Class::Context, 1)).map(|x| {
                    let mut s = x.raw().to_vec();
                    s[0] = 0x30; // [1] IMPLICIT AlgorithmIdentifier → SEQUENCE
                    s
                });
                a.protection = Some((d, s));
            }
            _ => {}
        }
    }
    Ok(a)
}

/// How the signature value is computed.
enum Scheme {
    Pkcs1(Digest),
    Pss { hash: Digest, salt: i32 },
    Ecdsa(Digest),
}

impl Scheme {
    fn of(si: &SignerInfo, digest: Digest) -> Result<Scheme, SignatureError> {
        let combined = |d: Digest| Ok(Scheme::Pkcs1(d));
        match si.sig_oid.as_slice() {
            o if o == oid::RSA_ENCRYPTION => Ok(Scheme::Pkcs1(digest)),
            o if o == oid::SHA1_WITH_RSA => combined(Digest::Sha1),
            o if o == oid::SHA224_WITH_RSA => combined(Digest::Sha224),
            o if o == oid::SHA256_WITH_RSA => combined(Digest::Sha256),
            o if o == oid::SHA384_WITH_RSA => combined(Digest::Sha384),
            o if o == oid::SHA512_WITH_RSA => combined(Digest::Sha512),
            o if o == oid::ECDSA_SHA1 => Ok(Scheme::Ecdsa(Digest::Sha1)),
            o if o == oid::ECDSA_SHA256 => Ok(Scheme::Ecdsa(Digest::Sha256)),
            o if o == oid::ECDSA_SHA384 => Ok(Scheme::Ecdsa(Digest::Sha384)),
            o if o == oid::ECDSA_SHA512 => Ok(Scheme::Ecdsa(Digest::Sha512)),
            o if o == oid::EC_PUBLIC_KEY => Ok(Scheme::Ecdsa(digest)),
            o if o == oid::RSASSA_PSS => pss_params(si.sig_params.as_deref()),
            o => Err(SignatureError::UnsupportedSignature(oid::dotted(o))),
        }
    }

    fn name(&self) -> String {
        match self {
            Scheme::Pkcs1(d) => format!("rsa-pkcs1-v1_5-{}", d.name()),
            Scheme::Pss { hash, .. } => format!("rsassa-pss-{}", hash.name()),
            Scheme::Ecdsa(d) => format!("ecdsa-{}", d.name()),
        }
    }

    fn verify(
        &self,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Public>,
        data: &[u8],
        sig: &[u8],
    ) -> Result<bool, openssl::error::ErrorStack> {
        if let (Scheme::Pkcs1(d), Ok(rsa)) = (self, key.rsa()) {
            return Ok(pkcs1_verify(&rsa, *d, data, sig));
        }
        let d = match self {
            Scheme::Pkcs1(d) | Scheme::Ecdsa(d) | Scheme::Pss { hash: d, .. } => *d,
        };
        let mut v = Verifier::new(d.openssl(), key)?;
        if let Scheme::Pss { hash, salt } = self {
            v.set_rsa_padding(Padding::PKCS1_PSS)?;
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(*salt))?;
            v.set_rsa_mgf1_md(hash.openssl())?;
        }
        v.update(data)?;
        v.verify(sig)
    }
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) through the RSA method directly: the
/// recovered encoding must be the DigestInfo of `data`, with the NULL parameter or, as some
/// producers write it, without.
fn pkcs1_verify(
    rsa: &openssl::rsa::RsaRef<openssl::pkey::Public>,
    d: Digest,
    data: &[u8],
    sig: &[u8],
) -> bool {
    let md = d.hash(data);
    let mut em = vec![0u8; rsa.size() as usize];
    let Ok(n) = rsa.public_decrypt(sig, &mut em, Padding::PKCS1) else {
        return false;
    };
    let em = &em[..n];
    use crate::asn1::writer as w;
    let with_null = w::seq(&[&w::alg(d.oid(), &w::NULL), &w::octets(&md)]);
    let without = w::seq(&[&w::seq(&[&w::oid(d.oid())]), &w::octets(&md)]);
    em == with_null.as_slice() || em == without.as_slice()
}

/// RSASSA-PSS-params (RFC 4055 §3.1): hash [0] (default SHA-1), MGF1 [1] with the same hash,
/// salt length [2] (default 20).
fn pss_params(params: Option<&[u8]>) -> Result<Scheme, SignatureError> {
    let unsupported = |w: &str| SignatureError::UnsupportedSignature(format!("RSASSA-PSS {w}"));
    let mut hash = Digest::Sha1;
    let mut salt = 20;
    if let Some(p) = params {
        for f in Tlv::parse(p)?.sequence("RSASSA-PSS-params")? {
            let Some(v) = f.children().next().transpose()? else {
                continue;
            };
            match f.tag.number {
                0 => {
                    let (o, _) = alg_id(&v)?;
                    hash = Digest::from_oid(o).ok_or_else(|| unsupported("hash"))?;
                }
                2 => {
                    salt = i32::try_from(v.small_uint()?).map_err(|_| unsupported("salt length"))?
                }
                _ => {}
            }
        }
    }
    Ok(Scheme::Pss { hash, salt })
}
