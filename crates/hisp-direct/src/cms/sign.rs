//! Writing detached CMS SignedData (RFC 5652 §5) for `multipart/signed` (RFC 5751 §3.5.3):
//! signed attributes contentType, signingTime, messageDigest, smimeCapabilities and
//! cmsAlgorithmProtection (RFC 6211), the signer certificate and its chain included.

use crate::alg::Digest;
use crate::asn1::{oid, writer as w};
use crate::error::SealError;
use crate::keys::Credential;
use crate::time::{der_time, UnixTime};
use openssl::pkey::Id;
use openssl::sign::Signer;

/// Sign the concatenation of `parts`; returns the DER ContentInfo of a detached SignedData.
pub fn sign_detached(
    parts: &[&[u8]],
    cred: &Credential,
    digest: Digest,
    signing_time: UnixTime,
) -> Result<Vec<u8>, SealError> {
    let mut h = digest.start();
    for p in parts {
        h.update(p);
    }
    let md = h.finish();
    let digest_alg = w::seq(&[&w::oid(digest.oid())]); // RFC 5754 §2: parameters absent
    let sig_alg = signature_alg(cred, digest)?;
    let attrs = signed_attributes(&md, signing_time, &digest_alg, &sig_alg);
    let signature = sign_attrs(cred, digest, &attrs)?;
    let ids = cred.ids();
    let mut attrs_implicit = attrs;
    attrs_implicit[0] = 0xa0; // [0] IMPLICIT SET OF Attribute
    let signer_info = w::seq(&[
        &w::uint(1),
        &w::seq(&[&ids.issuer, &ids.serial_tlv]),
        &digest_alg,
        &attrs_implicit,
        &sig_alg,
        &w::octets(&signature),
    ]);
    let mut certs = vec![cred.cert_der().to_vec()];
    for c in cred.chain() {
        certs.push(
            c.to_der()
                .map_err(SealError::crypto("encode a chain certificate"))?,
        );
    }
    let cert_refs: Vec<&[u8]> = certs.iter().map(|c| c.as_slice()).collect();
    let signed_data = w::seq(&[
        &w::uint(1),
        &w::cons(0x31, &[&digest_alg]),
        &w::seq(&[&w::oid(oid::DATA)]),
        &w::cons(0xa0, &cert_refs),
        &w::cons(0x31, &[&signer_info]),
    ]);
    Ok(w::seq(&[
        &w::oid(oid::SIGNED_DATA),
        &w::cons(0xa0, &[&signed_data]),
    ]))
}

fn signature_alg(cred: &Credential, digest: Digest) -> Result<Vec<u8>, SealError> {
    match cred.key().id() {
        Id::RSA => Ok(w::alg(oid::RSA_ENCRYPTION, &w::NULL)),
        Id::EC => {
            let o = match digest {
                Digest::Sha1 => oid::ECDSA_SHA1,
                Digest::Sha224 | Digest::Sha256 => oid::ECDSA_SHA256,
                Digest::Sha384 => oid::ECDSA_SHA384,
                Digest::Sha512 => oid::ECDSA_SHA512,
            };
            Ok(w::seq(&[&w::oid(o)]))
        }
        _ => Err(SealError::RecipientKey(
            "signer key is neither RSA nor EC".into(),
        )),
    }
}

fn attribute(attr_oid: &[u8], value: &[u8]) -> Vec<u8> {
    w::seq(&[&w::oid(attr_oid), &w::cons(0x31, &[value])])
}

/// The SET OF signed attributes, DER (sorted), tagged as a SET for signing.
fn signed_attributes(md: &[u8], t: UnixTime, digest_alg: &[u8], sig_alg: &[u8]) -> Vec<u8> {
    let caps = w::seq(&[
        &w::seq(&[&w::oid(oid::AES256_CBC)]),
        &w::seq(&[&w::oid(oid::AES128_CBC)]),
        &w::seq(&[&w::oid(oid::AES256_GCM)]),
        &w::seq(&[&w::oid(oid::AES128_GCM)]),
    ]);
    let mut sig_alg_implicit = sig_alg.to_vec();
    sig_alg_implicit[0] = 0xa1; // [1] IMPLICIT signatureAlgorithm
    let protection = w::seq(&[digest_alg, &sig_alg_implicit]);
    w::set_of(vec![
        attribute(oid::ATTR_CONTENT_TYPE, &w::oid(oid::DATA)),
        attribute(oid::ATTR_SIGNING_TIME, &der_time(t)),
        attribute(oid::ATTR_MESSAGE_DIGEST, &w::octets(md)),
        attribute(oid::ATTR_SMIME_CAPABILITIES, &caps),
        attribute(oid::ATTR_ALGORITHM_PROTECTION, &protection),
    ])
}

fn sign_attrs(cred: &Credential, digest: Digest, attrs: &[u8]) -> Result<Vec<u8>, SealError> {
    if let Ok(rsa) = cred.key().rsa() {
        // RSASSA-PKCS1-v1_5 (RFC 8017 §8.2): the DigestInfo, type-1 padded, through the RSA
        // method directly; the EVP layer would add a provider fetch per message.
        let md = digest.hash(attrs);
        let info = w::seq(&[&w::alg(digest.oid(), &w::NULL), &w::octets(&md)]);
        let mut sig = vec![0u8; rsa.size() as usize];
        let n = rsa
            .private_encrypt(&info, &mut sig, openssl::rsa::Padding::PKCS1)
            .map_err(SealError::crypto("sign"))?;
        sig.truncate(n);
        return Ok(sig);
    }
    let mut s =
        Signer::new(digest.openssl(), cred.key()).map_err(SealError::crypto("start signing"))?;
    s.update(attrs).map_err(SealError::crypto("sign"))?;
    s.sign_to_vec().map_err(SealError::crypto("sign"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-built DigestInfo signature is exactly what EVP_DigestSign produces
    /// (RFC 8017 §9.2: PKCS#1 v1.5 signatures are deterministic).
    #[test]
    fn rfc8017_9_2_digest_info_matches_evp() {
        let ca = crate::pki::new_root_ca("t", 0, 4_000_000_000, 2048).unwrap();
        let cred = Credential::new(ca.cert.clone(), ca.key.clone(), vec![]).unwrap();
        for d in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
            let ours = sign_attrs(&cred, d, b"attributes").unwrap();
            let mut s = Signer::new(d.openssl(), cred.key()).unwrap();
            s.update(b"attributes").unwrap();
            assert_eq!(ours, s.sign_to_vec().unwrap(), "{d:?}");
        }
    }
}
