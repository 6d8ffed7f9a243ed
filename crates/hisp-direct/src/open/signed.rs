//! The steps after decryption: find the signed entity (RFC 1847 multipart/signed, or
//! opaque signed-data), unwrap it (Applicability Statement §3.3: the whole message rides
//! as message/rfc822), verify the signature, then trust and binding.

use super::{Bytes, OpenOptions, Opened, SignerSummary};
use crate::alg::Digest;
use crate::binding::check_binding_in;
use crate::cms::verify::{
    parse_signed_data, verify, verify_digested, SignatureOutcome, SignedData,
};
use crate::error::{BindingError, OpenError, SignatureError};
use crate::mime::{self, multipart, Entity};
use crate::time::format_rfc3339;
use crate::trust::{evaluate_known, TrustInput, Usage};

/// Where the signature is and what it covers.
struct Located {
    signed: Bytes,
    der: Vec<u8>,
    micalg: Option<String>,
    /// The digest of `signed`, taken while it was located, by the micalg's algorithm.
    digest: Option<(Digest, Vec<u8>)>,
}

pub(super) fn verify_and_unwrap(
    o: &mut Opened,
    opts: &OpenOptions<'_>,
    outer_end: usize,
) -> Result<(), OpenError> {
    let dec = o.decrypted.clone().unwrap_or_default();
    let located = locate(&o.buf[dec.clone()], dec.start)?;
    let sd = parse_signed_data(&located.der, opts.cert_cache)?;
    let signed = match (&located.signed, &sd.econtent) {
        (Bytes::Owned(v), Some(c)) if v.is_empty() => Bytes::Owned(c.clone()),
        (s, _) => s.clone(),
    };
    o.signed = Some(signed.clone());
    unwrap(o, &signed, outer_end);
    // Only a multipart/signed body is digested while located, and its signed bytes are the
    // located part itself (never the SignedData's own content).
    let known = located.digest.as_ref().map(|(d, v)| (*d, v.as_slice()));
    let outcome = verify_signature(o, &sd, &signed, known, opts)?;
    if let Some(m) = &located.micalg {
        if Digest::from_name(m) != Some(outcome.digest) {
            let d = outcome.digest.name();
            o.verdict.warnings.push(format!(
                "micalg={m} does not match the signature digest {d}"
            ));
        }
    }
    record_signer(o, &outcome);
    check_trust(o, &sd, &outcome, opts);
    check_sender(o, &outcome, opts);
    Ok(())
}

/// Find the signed entity and the SignedData DER in the decrypted entity at `base`.
fn locate(plain: &[u8], base: usize) -> Result<Located, SignatureError> {
    let e = Entity::parse(plain);
    let ct = e.content_type();
    if ct.is("multipart/signed") {
        let boundary = ct.param("boundary").ok_or(mime::MimeError::BadBoundary)?;
        let body_start = e.body_range().start;
        let micalg = ct.param("micalg").map(str::to_string);
        // The signer's algorithm is known only once the signature part is read; the one
        // micalg names (RFC 8551 §3.5.3.2) is taken on the way, and checked against it.
        let (parts, digest) = match micalg.as_deref().and_then(Digest::from_name) {
            Some(d) => {
                let (parts, value) = multipart::split_digesting(e.body(), boundary, body_start, d)?;
                (parts, value.map(|v| (d, v)))
            }
            None => (multipart::split(e.body(), boundary, body_start)?, None),
        };
        let [content, sig] = parts.parts.as_slice() else {
            return Err(SignatureError::PartCount(parts.parts.len()));
        };
        let sig_entity = Entity::parse(&plain[sig.clone()]);
        let der = sig_entity.decoded_body()?;
        let signed = Bytes::InBuf(base + content.start..base + content.end);
        return Ok(Located {
            signed,
            der,
            micalg,
            digest,
        });
    }
    let opaque = matches!(
        ct.mime.as_str(),
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    ) && ct
        .param("smime-type")
        .is_none_or(|t| t.eq_ignore_ascii_case("signed-data"));
    if opaque {
        // Opaque signing (RFC 8551 §3.5.2): the content travels inside the SignedData.
        return Ok(Located {
            signed: Bytes::Owned(Vec::new()),
            der: e.decoded_body()?,
            micalg: None,
            digest: None,
        });
    }
    Err(SignatureError::NotSigned(ct.mime))
}

fn bytes<'a>(buf: &'a [u8], b: &'a Bytes) -> &'a [u8] {
    match b {
        Bytes::InBuf(r) => buf.get(r.clone()).unwrap_or_default(),
        Bytes::Owned(v) => v,
    }
}

/// Verify; when the signed bytes arrived with bare LF line endings (a relay rewrote them),
/// verify the canonical CRLF form as RFC 8551 §3.1.1 prescribes.
fn verify_signature(
    o: &mut Opened,
    sd: &SignedData,
    signed: &Bytes,
    known: Option<(Digest, &[u8])>,
    opts: &OpenOptions<'_>,
) -> Result<SignatureOutcome, SignatureError> {
    let content = bytes(&o.buf, signed);
    let first = verify_digested(sd, content, known, opts.profile);
    let outcome = match first {
        Err(SignatureError::DigestMismatch | SignatureError::BadSignature) => {
            match mime::to_crlf(content) {
                Some(canonical) => {
                    let second = verify(sd, &canonical, opts.profile);
                    if second.is_ok() {
                        o.signed = Some(Bytes::Owned(canonical));
                        o.verdict.warnings.push("signed content arrived with LF line endings; verified in canonical CRLF form".into());
                    }
                    second.or(first)
                }
                None => first,
            }
        }
        other => other,
    }?;
    let v = &mut o.verdict;
    v.signature_valid = true;
    v.algorithms.digest = Some(outcome.digest.name().into());
    v.algorithms.signature = Some(outcome.signature_alg.clone());
    v.signing_time = outcome.signing_time;
    v.warnings.extend(outcome.warnings.iter().cloned());
    Ok(outcome)
}

/// Locate the message to deliver: the message/rfc822 body when wrapped; otherwise the outer
/// headers (minus MIME fields) joined with the signed entity.
fn unwrap(o: &mut Opened, signed: &Bytes, outer_end: usize) {
    let content = bytes(&o.buf, signed);
    let e = Entity::parse(content);
    let ct = e.content_type();
    o.verdict.signed_content_type = Some(ct.mime.clone());
    let inner = if ct.is("message/rfc822") {
        o.verdict.wrapped = true;
        match (e.transfer_encoding().as_str(), signed) {
            ("base64" | "quoted-printable", _) => {
                Bytes::Owned(e.decoded_body().unwrap_or_default())
            }
            (_, Bytes::InBuf(r)) => Bytes::InBuf(r.start + e.body_range().start..r.end),
            (_, Bytes::Owned(v)) => {
                Bytes::Owned(v.get(e.body_range()).unwrap_or_default().to_vec())
            }
        }
    } else {
        o.verdict.warnings.push(
            "the sender did not wrap the message: its headers outside the signature (Subject, To) are not authenticated".into(),
        );
        Bytes::Owned(merge_unwrapped(&o.buf[..outer_end], content, &e))
    };
    let inner_bytes = bytes(&o.buf, &inner);
    let ie = Entity::parse(inner_bytes);
    o.senders = ie
        .headers
        .get_all("From")
        .iter()
        .flat_map(|f| mime::parse_address_list(f))
        .map(|m| m.address)
        .collect();
    o.verdict.from = o.senders.first().cloned();
    o.verdict.content_type = Some(ie.content_type().mime);
    o.inner = Some(inner);
}

/// The message to deliver when the sender signed the entity itself rather than a wrapped
/// message: the signed entity's own header fields first (they are authenticated), then the
/// outer fields it lacks (From, To, Subject from transport), `MIME-Version` once, the body.
fn merge_unwrapped(outer: &[u8], signed: &[u8], e: &Entity<'_>) -> Vec<u8> {
    let mut merged = Vec::with_capacity(outer.len() + signed.len() + 32);
    let own = &e.headers;
    for f in own.fields() {
        merged.extend_from_slice(signed[f.range.clone()].trim_ascii_end());
        merged.extend_from_slice(b"\r\n");
    }
    for f in mime::Headers::parse(outer).fields() {
        let name = f.name.to_ascii_lowercase();
        let mime_field = name.starts_with("content-") || name == "mime-version";
        if !mime_field && own.field(f.name).is_none() {
            merged.extend_from_slice(outer[f.range.clone()].trim_ascii_end());
            merged.extend_from_slice(b"\r\n");
        }
    }
    if own.field("MIME-Version").is_none() {
        merged.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    merged.extend_from_slice(b"\r\n");
    merged.extend_from_slice(e.body());
    merged
}

fn record_signer(o: &mut Opened, outcome: &SignatureOutcome) {
    let c = &outcome.signer;
    o.verdict.signer = Some(SignerSummary {
        subject: c.subject.clone(),
        addresses: c.bindings.iter().map(|b| b.value().to_string()).collect(),
        sha256: c.sha256_hex(),
        not_before: c.not_before.map(format_rfc3339).unwrap_or_default(),
        not_after: c.not_after.map(format_rfc3339).unwrap_or_default(),
    });
}

fn check_trust(
    o: &mut Opened,
    sd: &SignedData,
    outcome: &SignatureOutcome,
    opts: &OpenOptions<'_>,
) {
    let mut intermediates: Vec<_> = sd
        .certs
        .iter()
        .filter(|c| c.sha256 != outcome.signer.sha256)
        .map(|c| c.x509.clone())
        .collect();
    intermediates.extend(opts.intermediates.iter().cloned());
    let input = TrustInput {
        anchors: opts.anchors,
        intermediates: &intermediates,
        crls: opts.crls,
        at: opts.at,
        profile: opts.profile,
    };
    match evaluate_known(&outcome.signer, Usage::Signing, &input) {
        Ok(path) => {
            o.verdict.trusted = true;
            o.verdict.chain = path.subjects;
            o.verdict.warnings.extend(path.notes);
        }
        Err(e) => o.verdict.errors.push(e.into()),
    }
}

/// Every sender identity must be bound to the signer: the unwrapped From mailboxes, the
/// outer From (it routes MDNs) and the SMTP envelope sender when known.
fn check_sender(o: &mut Opened, outcome: &SignatureOutcome, opts: &OpenOptions<'_>) {
    let mut senders = std::mem::take(&mut o.senders);
    senders.extend(o.verdict.outer_from.clone());
    senders.extend(opts.envelope_sender.map(str::to_string));
    senders.dedup_by(|a, b| mime::same_address(a, b));
    if senders.is_empty() {
        o.verdict.errors.push(BindingError::NoFrom.into());
        return;
    }
    let mut matched = None;
    for s in &senders {
        match check_binding_in(&outcome.signer.bindings, s) {
            Ok(b) => matched = matched.or(Some(b)),
            Err(e) => {
                o.verdict.errors.push(e.into());
                return;
            }
        }
    }
    o.verdict.bound = true;
    o.verdict.binding = matched;
}
