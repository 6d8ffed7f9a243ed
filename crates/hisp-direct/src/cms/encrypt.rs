//! Writing CMS EnvelopedData (RFC 5652 §6, AES-CBC per RFC 3565) and AuthEnvelopedData
//! (RFC 5083, AES-GCM per RFC 5084) in DER, one KeyTransRecipientInfo per recipient with
//! RSA PKCS#1 v1.5 or RSAES-OAEP (RFC 8017; parameters per RFC 4055 §4.1). The content is
//! given in pieces and encrypted straight into the output: no plaintext copy is made.

use crate::alg::{ContentCipher, Digest, KeyTransport};
use crate::asn1::{oid, writer as w};
use crate::cert::{subject_string, CertIds};
use crate::error::SealError;
use openssl::cipher_ctx::CipherCtx;
use openssl::pkey::{PKeyRef, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509Ref;

/// GCM tag length written: the full 16 bytes.
const GCM_TAG: usize = 16;

/// Encrypt the concatenation of `parts` for every recipient; returns a DER ContentInfo.
pub fn encrypt(
    parts: &[&[u8]],
    recipients: &[&X509Ref],
    cipher: ContentCipher,
    kt: KeyTransport,
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    encrypt_to(parts, recipients, cipher, kt, &mut |b| {
        out.extend_from_slice(b)
    })?;
    Ok(out)
}

/// Encrypt as [`encrypt`] does, handing the DER to `sink` in order as it is produced, so a
/// caller can encode it (base64) without holding the whole ciphertext.
pub fn encrypt_to(
    parts: &[&[u8]],
    recipients: &[&X509Ref],
    cipher: ContentCipher,
    kt: KeyTransport,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    // Key and IV in one draw: each call to the DRBG takes its lock and reseed checks.
    let key_len = cipher.key_len();
    let mut fresh = vec![0u8; key_len + if cipher.is_aead() { 12 } else { 16 }];
    openssl::rand::rand_bytes(&mut fresh)
        .map_err(SealError::crypto("generate a content key and IV"))?;
    let (key, iv) = fresh.split_at(key_len);
    let mut ris = Vec::with_capacity(recipients.len());
    for r in recipients {
        ris.push(recipient_info(r, kt, key)?);
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let ct_len = if cipher.is_aead() {
        total
    } else {
        (total / 16 + 1) * 16
    };
    let params = if cipher.is_aead() {
        w::seq(&[&w::octets(iv), &w::uint(GCM_TAG as u64)])
    } else {
        w::octets(iv)
    };
    let alg = w::alg(cipher.oid(), &params);
    let ct_header = w::header(0x80, ct_len); // [0] IMPLICIT OCTET STRING, primitive
    let ri_set = w::set_of(ris);
    let eci_len = w::oid(oid::DATA).len() + alg.len() + ct_header.len() + ct_len;
    let eci_header = w::header(0x30, eci_len);
    let mac = if cipher.is_aead() { GCM_TAG + 2 } else { 0 };
    let version = w::uint(0);
    let ed_len = version.len() + ri_set.len() + eci_header.len() + eci_len + mac;
    let ed_header = w::header(0x30, ed_len);
    let explicit = w::header(0xa0, ed_header.len() + ed_len);
    let ctype = w::oid(if cipher.is_aead() {
        oid::AUTH_ENVELOPED_DATA
    } else {
        oid::ENVELOPED_DATA
    });
    let ci_len = ctype.len() + explicit.len() + ed_header.len() + ed_len;

    sink(&w::header(0x30, ci_len));
    for piece in [
        &ctype,
        &explicit,
        &ed_header,
        &version,
        &ri_set,
        &eci_header,
    ] {
        sink(piece);
    }
    sink(&w::oid(oid::DATA));
    sink(&alg);
    sink(&ct_header);
    encrypt_into(parts, cipher, key, iv, sink)
}

fn encrypt_into(
    parts: &[&[u8]],
    cipher: ContentCipher,
    key: &[u8],
    iv: &[u8],
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), SealError> {
    let mut c = CipherCtx::new().map_err(SealError::crypto("start encryption"))?;
    c.encrypt_init(Some(cipher.fetched()), Some(key), Some(iv))
        .map_err(SealError::crypto("start encryption"))?;
    const STEP: usize = 64 * 1024;
    let largest = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut scratch = vec![0u8; largest.min(STEP) + 32];
    for part in parts {
        for chunk in part.chunks(STEP) {
            let n = c
                .cipher_update(chunk, Some(&mut scratch))
                .map_err(SealError::crypto("encrypt the content"))?;
            sink(&scratch[..n]);
        }
    }
    let n = c
        .cipher_final(&mut scratch)
        .map_err(SealError::crypto("finish encryption"))?;
    sink(&scratch[..n]);
    if cipher.is_aead() {
        let mut tag = [0u8; GCM_TAG];
        c.tag(&mut tag)
            .map_err(SealError::crypto("compute the GCM tag"))?;
        sink(&w::octets(&tag));
    }
    Ok(())
}

/// KeyTransRecipientInfo (RFC 5652 §6.2.1), version 0 with IssuerAndSerialNumber.
fn recipient_info(cert: &X509Ref, kt: KeyTransport, key: &[u8]) -> Result<Vec<u8>, SealError> {
    let unusable = || SealError::RecipientKey(subject_string(cert));
    let pkey = cert.public_key().map_err(|_| unusable())?;
    if pkey.rsa().is_err() {
        return Err(unusable());
    }
    let ids = CertIds::of(cert).ok_or_else(unusable)?;
    let (alg, ek) = match kt {
        KeyTransport::RsaPkcs1v15 => (
            w::alg(oid::RSA_ENCRYPTION, &w::NULL),
            pkcs1_encrypt(&pkey, key)?,
        ),
        KeyTransport::RsaOaep(d) => (oaep_alg(d), oaep_encrypt(&pkey, d, key)?),
    };
    let rid = w::seq(&[&ids.issuer, &ids.serial_tlv]);
    Ok(w::seq(&[&w::uint(0), &rid, &alg, &w::octets(&ek)]))
}

/// RSAES-PKCS1-v1_5 with the RSA method directly: the EVP layer adds a provider fetch per
/// recipient, a tenth of the cost of the operation itself.
fn pkcs1_encrypt(pkey: &PKeyRef<Public>, key: &[u8]) -> Result<Vec<u8>, SealError> {
    let rsa = pkey
        .rsa()
        .map_err(SealError::crypto("use a recipient key"))?;
    let mut ek = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(key, &mut ek, Padding::PKCS1)
        .map_err(SealError::crypto("encrypt the content key"))?;
    ek.truncate(n);
    Ok(ek)
}

/// RSAES-OAEP with `d` for both the label hash and MGF1.
fn oaep_encrypt(pkey: &PKeyRef<Public>, d: Digest, key: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut ctx = PkeyCtx::new(pkey).map_err(SealError::crypto("use a recipient key"))?;
    ctx.encrypt_init()
        .map_err(SealError::crypto("use a recipient key"))?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)
        .map_err(SealError::crypto("set RSA padding"))?;
    let md = openssl::md::Md::fetch(None, d.name(), None)
        .map_err(SealError::crypto("fetch the OAEP hash"))?;
    ctx.set_rsa_oaep_md(&md)
        .map_err(SealError::crypto("set the OAEP hash"))?;
    ctx.set_rsa_mgf1_md(&md)
        .map_err(SealError::crypto("set the MGF1 hash"))?;
    let mut ek = Vec::new();
    ctx.encrypt_to_vec(key, &mut ek)
        .map_err(SealError::crypto("encrypt the content key"))?;
    Ok(ek)
}

/// id-RSAES-OAEP with explicit hash and MGF1 (the SHA-1 defaults are left out, as DER
/// requires for DEFAULT values).
fn oaep_alg(d: Digest) -> Vec<u8> {
    if d == Digest::Sha1 {
        return w::alg(oid::RSAES_OAEP, &w::seq(&[]));
    }
    let hash = w::alg(d.oid(), &w::NULL);
    let mgf = w::alg(oid::MGF1, &hash);
    let params = w::seq(&[&w::cons(0xa0, &[&hash]), &w::cons(0xa1, &[&mgf])]);
    w::alg(oid::RSAES_OAEP, &params)
}
