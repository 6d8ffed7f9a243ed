//! Opening CMS EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083): find our
//! KeyTransRecipientInfo, recover the content-encryption key with RSA (PKCS#1 v1.5 or
//! OAEP), and decrypt the content *in place*, piece by piece, so a BER message with
//! thousands of 1000-byte OCTET STRING chunks costs no extra copy.

use super::{alg_id, content_info, rid_from};
use crate::alg::{ContentCipher, Digest, KeyTransport, Profile};
use crate::asn1::{oid, reader::tags, Asn1Error, Class, Tlv};
use crate::cert::name_string;
use crate::error::DecryptError;
use crate::keys::Credential;
use openssl::cipher_ctx::CipherCtx;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use std::ops::Range;

/// Who a RecipientInfo is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientId {
    /// IssuerAndSerialNumber: issuer Name DER and serial INTEGER content.
    IssuerSerial {
        /// DER of the issuer Name.
        issuer: Vec<u8>,
        /// Serial content octets.
        serial: Vec<u8>,
    },
    /// subjectKeyIdentifier.
    Ski(Vec<u8>),
}

/// One KeyTransRecipientInfo (RFC 5652 §6.2.1).
#[derive(Debug, Clone)]
pub struct KeyTrans {
    /// The recipient.
    pub rid: RecipientId,
    /// keyEncryptionAlgorithm OID content.
    pub alg: Vec<u8>,
    /// Its parameters (DER), if any.
    pub params: Option<Vec<u8>>,
    /// The encrypted content-encryption key.
    pub encrypted_key: Vec<u8>,
}

/// The parsed envelope: everything needed to decrypt, with the ciphertext left in place.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// AuthEnvelopedData (AES-GCM) rather than EnvelopedData.
    pub authenticated: bool,
    /// Key-transport recipients.
    pub recipients: Vec<KeyTrans>,
    /// Recipients of other kinds (key agreement, KEK, password), which we cannot use.
    pub other_recipients: usize,
    /// contentEncryptionAlgorithm OID content.
    pub cipher_oid: Vec<u8>,
    /// CBC IV or GCM nonce.
    pub iv: Vec<u8>,
    /// GCM tag length (RFC 5084 §3.2, default 12).
    pub icv_len: usize,
    /// Where the ciphertext pieces are in the buffer.
    pub pieces: Vec<Range<usize>>,
    /// The GCM tag (AuthEnvelopedData `mac`).
    pub mac: Option<Vec<u8>>,
    /// Authenticated attributes as DER SET, the GCM additional data (RFC 5083 §2.2).
    pub aad: Option<Vec<u8>>,
}

/// Parse a CMS ContentInfo holding (Auth)EnvelopedData.
pub fn parse_envelope(der: &[u8]) -> Result<Envelope, DecryptError> {
    let (ctype, body) = content_info(der)?;
    let authenticated = match ctype.content() {
        o if o == oid::ENVELOPED_DATA => false,
        o if o == oid::AUTH_ENVELOPED_DATA => true,
        o => return Err(DecryptError::NotEnveloped(oid::dotted(o))),
    };
    let kids = body.sequence("EnvelopedData")?;
    let mut it = kids.into_iter().skip(1).peekable(); // version
    if it.peek().is_some_and(|t| t.tag.is(Class::Context, 0)) {
        it.next(); // originatorInfo: certificates for key agreement, unused here
    }
    let ris = it.next().ok_or(Asn1Error::Unexpected {
        what: "recipientInfos",
        offset: body.end,
    })?;
    let (recipients, other_recipients) = parse_recipients(&ris)?;
    let eci = it.next().ok_or(Asn1Error::Unexpected {
        what: "encryptedContentInfo",
        offset: body.end,
    })?;
    let mut env = parse_content_info(&eci, authenticated)?;
    env.recipients = recipients;
    env.other_recipients = other_recipients;
    if authenticated {
        for t in it {
            if t.tag.is(Class::Context, 1) {
                let mut aad = Vec::new();
                crate::asn1::reader::to_definite(&t, &mut aad)?;
                if let Some(first) = aad.first_mut() {
                    *first = 0x31; // the MAC covers the attributes as a DER SET (RFC 5083 §2.2)
                }
                env.aad = Some(aad);
            } else if t.tag.is(Class::Universal, tags::OCTET_STRING) {
                env.mac = Some(t.octets()?);
            }
        }
    }
    Ok(env)
}

fn parse_recipients(set: &Tlv<'_>) -> Result<(Vec<KeyTrans>, usize), DecryptError> {
    let mut out = Vec::new();
    let mut other = 0;
    for ri in set.child_vec()? {
        if !ri.tag.is(Class::Universal, tags::SEQUENCE) {
            other += 1;
            continue;
        }
        let f = ri.sequence("KeyTransRecipientInfo")?;
        let [_, rid, alg, key, ..] = f.as_slice() else {
            return Err(Asn1Error::Unexpected {
                what: "KeyTransRecipientInfo",
                offset: ri.start,
            }
            .into());
        };
        let (alg, params) = alg_id(alg)?;
        out.push(KeyTrans {
            rid: rid_from(rid)?,
            alg: alg.to_vec(),
            params: params.map(|p| p.raw().to_vec()),
            encrypted_key: key.octets()?,
        });
    }
    Ok((out, other))
}

fn parse_content_info(eci: &Tlv<'_>, authenticated: bool) -> Result<Envelope, DecryptError> {
    let f = eci.sequence("EncryptedContentInfo")?;
    let alg = f.get(1).ok_or(Asn1Error::Unexpected {
        what: "contentEncryptionAlgorithm",
        offset: eci.start,
    })?;
    let (cipher_oid, params) = alg_id(alg)?;
    let (iv, icv_len) = match params {
        Some(p) if p.tag.is(Class::Universal, tags::OCTET_STRING) => (p.octets()?, 0),
        Some(p) if p.tag.is(Class::Universal, tags::SEQUENCE) => {
            // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
            let g = p.sequence("GCMParameters")?;
            let nonce = g.first().ok_or(Asn1Error::Unexpected {
                what: "GCM nonce",
                offset: p.start,
            })?;
            let icv = match g.get(1) {
                Some(i) => usize::try_from(i.small_uint()?).unwrap_or(0),
                None => 12,
            };
            (nonce.octets()?, icv)
        }
        _ => (Vec::new(), 0),
    };
    let mut pieces = Vec::new();
    match f.get(2) {
        Some(ct) if ct.tag.is(Class::Context, 0) => ct.octet_pieces(&mut pieces)?,
        _ => return Err(DecryptError::NoContent),
    }
    Ok(Envelope {
        authenticated,
        recipients: Vec::new(),
        other_recipients: 0,
        cipher_oid: cipher_oid.to_vec(),
        iv,
        icv_len,
        pieces,
        mac: None,
        aad: None,
    })
}

/// What decryption produced.
#[derive(Debug, Clone)]
pub struct Decrypted {
    /// Where the plaintext now is in the buffer.
    pub range: Range<usize>,
    /// The content cipher.
    pub cipher: ContentCipher,
    /// The key transport used for our RecipientInfo.
    pub key_transport: KeyTransport,
    /// Legacy algorithms accepted.
    pub warnings: Vec<String>,
}

/// Decrypt the envelope's content in `buf` (the buffer `parse_envelope` read) with `cred`.
pub fn decrypt_in_place(
    buf: &mut [u8],
    env: &Envelope,
    cred: &Credential,
    profile: &Profile,
) -> Result<Decrypted, DecryptError> {
    let cipher = ContentCipher::from_oid(&env.cipher_oid)
        .ok_or_else(|| DecryptError::UnsupportedCipher(cipher_name(&env.cipher_oid)))?;
    if cipher.is_aead() != env.authenticated {
        return Err(DecryptError::UnsupportedCipher(format!(
            "{} in {}",
            cipher.name(),
            if env.authenticated {
                "AuthEnvelopedData"
            } else {
                "EnvelopedData"
            }
        )));
    }
    let mut warnings: Vec<String> = profile
        .check_cipher(cipher)
        .map_err(DecryptError::Policy)?
        .into_iter()
        .collect();
    let ids = cred.ids();
    let ours: Vec<&KeyTrans> = env
        .recipients
        .iter()
        .filter(|r| match &r.rid {
            RecipientId::IssuerSerial { issuer, serial } => {
                ids.matches_issuer_serial(cred.cert(), issuer, serial)
            }
            RecipientId::Ski(ski) => ids.ski.as_deref() == Some(ski.as_slice()),
        })
        .collect();
    let Some(ri) = ours.first() else {
        return Err(no_recipient(env, cred));
    };
    let key_transport = key_transport_of(ri)?;
    let bits = cred.key().bits();
    if let Some(w) = profile
        .check_rsa_bits(bits, "our decryption key")
        .map_err(DecryptError::Policy)?
    {
        warnings.push(w);
    }
    let cek = unwrap_key(ri, key_transport, cred, cipher.key_len());
    let range = decrypt_content(buf, env, cipher, &cek)?;
    Ok(Decrypted {
        range,
        cipher,
        key_transport,
        warnings,
    })
}

fn cipher_name(o: &[u8]) -> String {
    match o {
        o if o == oid::RC2_CBC => "rc2-cbc (1.2.840.113549.3.2)".into(),
        o => oid::dotted(o),
    }
}

fn no_recipient(env: &Envelope, cred: &Credential) -> DecryptError {
    let listed: Vec<String> = env
        .recipients
        .iter()
        .map(|r| match &r.rid {
            RecipientId::IssuerSerial { issuer, serial } => {
                let name = openssl::x509::X509Name::from_der(issuer)
                    .map(|n| name_string(&n))
                    .unwrap_or_else(|_| "?".into());
                format!("[{name}] serial {}", hex::encode_upper(serial))
            }
            RecipientId::Ski(s) => format!("key id {}", hex::encode(s)),
        })
        .collect();
    let serial = cred
        .cert()
        .serial_number()
        .to_bn()
        .map(|b| b.to_hex_str().map(|s| s.to_string()));
    DecryptError::NoRecipient {
        issuer: name_string(cred.cert().issuer_name()),
        serial: serial.ok().and_then(Result::ok).unwrap_or_default(),
        recipients: if listed.is_empty() {
            "nobody we can read".into()
        } else {
            listed.join("; ")
        },
    }
}

fn key_transport_of(ri: &KeyTrans) -> Result<KeyTransport, DecryptError> {
    match ri.alg.as_slice() {
        o if o == oid::RSA_ENCRYPTION => Ok(KeyTransport::RsaPkcs1v15),
        o if o == oid::RSAES_OAEP => {
            let hash = oaep_hash(ri.params.as_deref())?;
            Ok(KeyTransport::RsaOaep(hash))
        }
        o => Err(DecryptError::UnsupportedKeyTransport(oid::dotted(o))),
    }
}

/// RSAES-OAEP-params (RFC 8017 App. A.2.1): hashFunc [0] (default SHA-1), maskGenFunc [1]
/// (default MGF1 with SHA-1). We require MGF1 with the same hash, as every producer uses.
fn oaep_hash(params: Option<&[u8]>) -> Result<Digest, DecryptError> {
    let Some(p) = params else {
        return Ok(Digest::Sha1);
    };
    let t = Tlv::parse(p)?;
    if t.tag.is(Class::Universal, tags::NULL) {
        return Ok(Digest::Sha1);
    }
    let mut hash = Digest::Sha1;
    let mut mgf_hash = Digest::Sha1;
    for f in t.sequence("RSAES-OAEP-params")? {
        let inner = f.child_vec()?;
        let Some(a) = inner.first() else { continue };
        match f.tag.number {
            0 => hash = digest_of(a)?,
            1 => {
                let (mgf, mp) = alg_id(a)?;
                if mgf != oid::MGF1 {
                    return Err(DecryptError::UnsupportedKeyTransport(
                        "OAEP with a mask generation other than MGF1".into(),
                    ));
                }
                mgf_hash = match mp {
                    Some(m) => digest_of(&m)?,
                    None => Digest::Sha1,
                };
            }
            _ => {
                // pSourceFunc: only the default, an empty pSpecified label, is in use.
                let (src, label) = alg_id(a)?;
                let empty = label.map_or(Ok(true), |l| l.octets().map(|o| o.is_empty()))?;
                if src != oid::P_SPECIFIED || !empty {
                    return Err(DecryptError::UnsupportedKeyTransport(
                        "OAEP with a label".into(),
                    ));
                }
            }
        }
    }
    if hash != mgf_hash {
        return Err(DecryptError::UnsupportedKeyTransport(format!(
            "OAEP with hash {} but MGF1-{}",
            hash.name(),
            mgf_hash.name()
        )));
    }
    Ok(hash)
}

fn digest_of(alg: &Tlv<'_>) -> Result<Digest, DecryptError> {
    let (o, _) = alg_id(alg)?;
    Digest::from_oid(o).ok_or_else(|| {
        DecryptError::UnsupportedKeyTransport(format!("OAEP hash {}", oid::dotted(o)))
    })
}

/// RSA-decrypt the content-encryption key. A failure yields a random key instead of an
/// error (implicit rejection), so a padding failure looks exactly like a content failure
/// and the MDN/DSN behaviour gives a Bleichenbacher attacker nothing to measure.
fn unwrap_key(ri: &KeyTrans, kt: KeyTransport, cred: &Credential, key_len: usize) -> Vec<u8> {
    let attempt = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        if kt == KeyTransport::RsaPkcs1v15 {
            // The RSA method directly: the EVP layer adds a provider fetch per message.
            let rsa = cred.key().rsa()?;
            let mut out = vec![0u8; rsa.size() as usize];
            let n = rsa.private_decrypt(&ri.encrypted_key, &mut out, Padding::PKCS1)?;
            out.truncate(n);
            return Ok(out);
        }
        let mut ctx = PkeyCtx::new(cred.key())?;
        ctx.decrypt_init()?;
        match kt {
            KeyTransport::RsaPkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1)?,
            KeyTransport::RsaOaep(d) => {
                ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
                let md = openssl::md::Md::fetch(None, d.name(), None)?;
                ctx.set_rsa_oaep_md(&md)?;
                ctx.set_rsa_mgf1_md(&md)?;
            }
        }
        let mut out = Vec::new();
        ctx.decrypt_to_vec(&ri.encrypted_key, &mut out)?;
        Ok(out)
    };
    match attempt() {
        Ok(k) if k.len() == key_len => k,
        _ => {
            let mut k = vec![0u8; key_len];
            // If even the RNG fails, an all-zero key still fails closed at the padding check.
            let _ = openssl::rand::rand_bytes(&mut k);
            k
        }
    }
}

/// Bytes decrypted per step; any size works, this one keeps the scratch buffers in L2.
const STEP: usize = 64 * 1024;

/// Decrypt the first `len` bytes of `room` in place (OpenSSL wants room past them), all
/// of them or fail.
fn update_in_place(c: &mut CipherCtx, room: &mut [u8], len: usize) -> Result<(), DecryptError> {
    match c.cipher_update_inplace(room, len) {
        Ok(k) if k == len => Ok(()),
        _ => Err(DecryptError::Content),
    }
}

/// Decrypt the pieces in place; returns where the plaintext is. Padding is removed here,
/// not by OpenSSL, so that contiguous ciphertext (DER, the common case) decrypts exactly
/// in place with no copy; chunked BER pieces are moved down first.
fn decrypt_content(
    buf: &mut [u8],
    env: &Envelope,
    cipher: ContentCipher,
    key: &[u8],
) -> Result<Range<usize>, DecryptError> {
    let start = env.pieces.first().map(|r| r.start).unwrap_or(0);
    let ossl = cipher.openssl();
    let block = if cipher.is_aead() {
        1
    } else {
        ossl.block_size()
    };
    if env.iv.len() != ossl.iv_len().unwrap_or(0) && !cipher.is_aead() {
        return Err(DecryptError::Content);
    }
    let mut c = CipherCtx::new().map_err(|_| DecryptError::Content)?;
    if cipher.is_aead() {
        // The IV length must be set between choosing the cipher and giving the IV.
        c.decrypt_init(Some(cipher.fetched()), None, None)
            .map_err(|_| DecryptError::Content)?;
        c.set_iv_length(env.iv.len())
            .map_err(|_| DecryptError::Content)?;
        c.decrypt_init(None, Some(key), Some(&env.iv))
    } else {
        c.decrypt_init(Some(cipher.fetched()), Some(key), Some(&env.iv))
    }
    .map_err(|_| DecryptError::Content)?;
    c.set_padding(false);
    if let (true, Some(aad)) = (cipher.is_aead(), &env.aad) {
        c.cipher_update(aad, None)
            .map_err(|_| DecryptError::Content)?;
    }
    // Join BER pieces into one run (a no-op for DER's single piece), then decrypt the run
    // in place in whole-block steps.
    let mut w = start;
    for r in &env.pieces {
        if r.start != w {
            buf.copy_within(r.clone(), w);
        }
        w += r.len();
    }
    if !cipher.is_aead() && !(w - start).is_multiple_of(block) {
        return Err(DecryptError::Content);
    }
    let mut p = start;
    while p < w {
        let n = STEP.min(w - p);
        // OpenSSL wants a block of room past the input even when it will not use it; where
        // the run ends the buffer, its last block goes through a scratch copy.
        let direct = if p + n + block <= buf.len() {
            n
        } else {
            n.saturating_sub(block)
        };
        if direct > 0 {
            update_in_place(&mut c, &mut buf[p..p + direct + block], direct)?;
        }
        let rest = &mut buf[p + direct..p + n];
        if !rest.is_empty() {
            let mut tmp = [0u8; 64];
            let room = tmp
                .get_mut(..rest.len() + block)
                .ok_or(DecryptError::Content)?;
            room[..rest.len()].copy_from_slice(rest);
            update_in_place(&mut c, room, rest.len())?;
            rest.copy_from_slice(&room[..rest.len()]);
        }
        p += n;
    }
    if cipher.is_aead() {
        let tag = env.mac.as_deref().ok_or(DecryptError::Content)?;
        if tag.len() != env.icv_len || tag.len() < 12 {
            return Err(DecryptError::Content);
        }
        c.set_tag(tag).map_err(|_| DecryptError::Content)?;
    }
    let mut tail = [0u8; 32];
    if c.cipher_final(&mut tail)
        .map_err(|_| DecryptError::Content)?
        != 0
    {
        return Err(DecryptError::Content);
    }
    let unpadded = if cipher.is_aead() {
        w
    } else {
        strip_padding(&buf[start..w], block)? + start
    };
    Ok(start..unpadded)
}

/// Length without the PKCS#7 padding (RFC 5652 §6.3), checked without branching on the pad
/// bytes so the check takes the same time whatever they hold.
fn strip_padding(plain: &[u8], block: usize) -> Result<usize, DecryptError> {
    if plain.is_empty() || !plain.len().is_multiple_of(block) {
        return Err(DecryptError::Content);
    }
    let pad = usize::from(plain[plain.len() - 1]);
    let last = &plain[plain.len() - block..];
    let mut bad = u8::from(pad == 0 || pad > block);
    for (i, b) in last.iter().rev().enumerate() {
        let in_pad = u8::from(i < pad);
        bad |= in_pad & u8::from(usize::from(*b) != pad);
    }
    if bad != 0 {
        return Err(DecryptError::Content);
    }
    Ok(plain.len() - pad)
}
