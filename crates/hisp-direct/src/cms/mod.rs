//! Cryptographic Message Syntax (RFC 5652) for S/MIME: EnvelopedData and AuthEnvelopedData
//! (encrypt, decrypt) and detached SignedData (sign, verify). OpenSSL supplies the
//! primitives (RSA, AES, digests, X.509); the containers are read and written here so that
//! BER input, in-place decryption and precise per-check reasons are possible.

pub mod decrypt;
pub mod encrypt;
pub mod sign;
pub mod verify;

use crate::asn1::{reader::tags, Asn1Error, Class, Tlv};
use decrypt::RecipientId;

/// Split a ContentInfo (RFC 5652 §3) into its contentType OID and the content inside the
/// explicit `[0]`.
pub(crate) fn content_info(der: &[u8]) -> Result<(Tlv<'_>, Tlv<'_>), Asn1Error> {
    let ci = Tlv::parse(der)?;
    let f = ci.sequence("ContentInfo")?;
    let [ctype, content, ..] = f.as_slice() else {
        return Err(Asn1Error::Unexpected {
            what: "ContentInfo content",
            offset: ci.start,
        });
    };
    let ctype = ctype.expect(Class::Universal, tags::OID, "contentType OID")?;
    let content = content.expect(Class::Context, 0, "[0] content")?;
    let inner = content.children().next().ok_or(Asn1Error::Unexpected {
        what: "content",
        offset: content.start,
    })??;
    Ok((ctype, inner))
}

/// An AlgorithmIdentifier's OID content and parameters (absent or NULL both give `None`).
pub(crate) fn alg_id<'a>(t: &Tlv<'a>) -> Result<(&'a [u8], Option<Tlv<'a>>), Asn1Error> {
    let f = t.sequence("AlgorithmIdentifier")?;
    let o = f.first().ok_or(Asn1Error::Unexpected {
        what: "algorithm OID",
        offset: t.start,
    })?;
    let o = o.expect(Class::Universal, tags::OID, "algorithm OID")?;
    let params = f
        .get(1)
        .copied()
        .filter(|p| !p.tag.is(Class::Universal, tags::NULL));
    Ok((o.content(), params))
}

/// A RecipientIdentifier / SignerIdentifier: IssuerAndSerialNumber or `[0]` key identifier.
pub(crate) fn rid_from(t: &Tlv<'_>) -> Result<RecipientId, Asn1Error> {
    if t.tag.is(Class::Context, 0) {
        return Ok(RecipientId::Ski(if t.tag.constructed {
            t.octets()?
        } else {
            t.content().to_vec()
        }));
    }
    let f = t.sequence("IssuerAndSerialNumber")?;
    let [issuer, serial, ..] = f.as_slice() else {
        return Err(Asn1Error::Unexpected {
            what: "IssuerAndSerialNumber",
            offset: t.start,
        });
    };
    let mut issuer_der = Vec::new();
    crate::asn1::reader::to_definite(issuer, &mut issuer_der)?;
    Ok(RecipientId::IssuerSerial {
        issuer: issuer_der,
        serial: serial.content().to_vec(),
    })
}
