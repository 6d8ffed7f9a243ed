//! Opening a Direct message (Applicability Statement §3–4; RFC 8551 §3): decrypt, verify
//! the signature, evaluate trust, check the signer is bound to the sender, unwrap. Every
//! check is recorded separately in a [`Verdict`] with a precise reason, whatever fails.
//!
//! The message buffer is owned and reused: base64 is decoded and the content decrypted in
//! place, so opening a 100 MiB message holds about one copy of it.

mod signed;
mod verdict;

pub use verdict::{Algorithms, SignerSummary, Verdict};

use crate::alg::Profile;
use crate::cert::CertCache;
use crate::cms::decrypt::{decrypt_in_place, parse_envelope};
use crate::error::{DecryptError, InputError, OpenError};
use crate::keys::Credential;
use crate::mime::{self, Entity};
use crate::time::UnixTime;
use crate::trust::TrustAnchors;
use openssl::x509::{X509Crl, X509};
use std::ops::Range;

/// What opening needs besides the message.
#[derive(Clone, Copy)]
pub struct OpenOptions<'a> {
    /// Our decryption credentials; the one the message is addressed to is used.
    pub credentials: &'a [Credential],
    /// Anchors the signer must chain to.
    pub anchors: &'a TrustAnchors,
    /// Extra intermediates (beyond those in the message).
    pub intermediates: &'a [X509],
    /// CRLs to check revocation against.
    pub crls: &'a [X509Crl],
    /// The time to evaluate validity at.
    pub at: UnixTime,
    /// The crypto profile.
    pub profile: &'a Profile,
    /// The SMTP envelope sender, which must be bound to the signer as well, if given.
    pub envelope_sender: Option<&'a str>,
    /// A cache of parsed certificates shared across messages (a daemon keeps one).
    pub cert_cache: Option<&'a CertCache>,
}

impl<'a> OpenOptions<'a> {
    /// Options with no extra intermediates, CRLs, envelope sender or cache.
    pub fn new(
        credentials: &'a [Credential],
        anchors: &'a TrustAnchors,
        at: UnixTime,
        profile: &'a Profile,
    ) -> OpenOptions<'a> {
        OpenOptions {
            credentials,
            anchors,
            intermediates: &[],
            crls: &[],
            at,
            profile,
            envelope_sender: None,
            cert_cache: None,
        }
    }
}

/// Bytes that live either in the message buffer or on their own.
#[derive(Debug, Clone)]
enum Bytes {
    InBuf(Range<usize>),
    Owned(Vec<u8>),
}

/// The result of opening: the verdict and the bytes each stage produced.
#[derive(Debug)]
pub struct Opened {
    /// Every check's outcome.
    pub verdict: Verdict,
    buf: Vec<u8>,
    decrypted: Option<Range<usize>>,
    signed: Option<Bytes>,
    inner: Option<Bytes>,
    /// Every From mailbox of the unwrapped message (all must be bound to the signer).
    senders: Vec<String>,
}

impl Opened {
    fn get<'a>(&'a self, b: &'a Option<Bytes>) -> Option<&'a [u8]> {
        match b.as_ref()? {
            Bytes::InBuf(r) => self.buf.get(r.clone()),
            Bytes::Owned(v) => Some(v),
        }
    }

    /// The decrypted CMS content (the MIME entity that was encrypted).
    pub fn decrypted(&self) -> Option<&[u8]> {
        self.buf.get(self.decrypted.clone()?)
    }

    /// The signed MIME entity (the bytes the signature covers).
    pub fn signed(&self) -> Option<&[u8]> {
        self.get(&self.signed)
    }

    /// The unwrapped message as it would be delivered (RFC 5322), whatever the verdict.
    /// Callers must check [`Verdict::ok`] before trusting it.
    pub fn inner(&self) -> Option<&[u8]> {
        self.get(&self.inner)
    }

    /// The unwrapped message, only when every check passed.
    pub fn trusted_inner(&self) -> Option<&[u8]> {
        if self.verdict.ok() {
            self.inner()
        } else {
            None
        }
    }

    /// The verdict and, when every check passed, the unwrapped message as an owned buffer.
    /// The message buffer is reused (the inner bytes moved to its front), so a 100 MiB
    /// message is not copied again on its way to the mailbox.
    pub fn into_trusted_inner(self) -> (Verdict, Option<Vec<u8>>) {
        if !self.verdict.ok() {
            return (self.verdict, None);
        }
        let inner = match self.inner {
            Some(Bytes::InBuf(r)) => {
                let mut buf = self.buf;
                let len = r.len();
                buf.copy_within(r, 0);
                buf.truncate(len);
                buf.shrink_to_fit();
                Some(buf)
            }
            Some(Bytes::Owned(v)) => Some(v),
            None => None,
        };
        (self.verdict, inner)
    }
}

/// Open `message`. Never fails as a function: every problem is a verdict error.
pub fn open(message: Vec<u8>, opts: &OpenOptions<'_>) -> Opened {
    let mut o = Opened {
        verdict: Verdict::new(opts.profile.name),
        buf: message,
        decrypted: None,
        signed: None,
        inner: None,
        senders: Vec::new(),
    };
    if let Err(e) = run(&mut o, opts) {
        o.verdict.errors.push(e);
    }
    o
}

fn run(o: &mut Opened, opts: &OpenOptions<'_>) -> Result<(), OpenError> {
    if o.buf.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::Empty.into());
    }
    let outer_end = decrypt(o, opts)?;
    signed::verify_and_unwrap(o, opts, outer_end)
}

/// Decrypt in place; returns the end of the outer header block (kept for unwrapping).
fn decrypt(o: &mut Opened, opts: &OpenOptions<'_>) -> Result<usize, OpenError> {
    let (body, header_end, base64, from) = {
        let e = Entity::parse(&o.buf);
        let ct = e.content_type();
        let smime_type = ct.param("smime-type").map(str::to_ascii_lowercase);
        let encrypted = matches!(
            ct.mime.as_str(),
            "application/pkcs7-mime" | "application/x-pkcs7-mime"
        );
        if !encrypted || smime_type.as_deref().is_some_and(|t| t.contains("signed")) {
            return Err(if ct.is("multipart/signed") || encrypted {
                DecryptError::NotEncrypted
            } else {
                DecryptError::NotSmime(ct.mime.clone())
            }
            .into());
        }
        let from = e.headers.get("From");
        (
            e.body_range(),
            e.header_end(),
            // Some producers leave out Content-Transfer-Encoding on a base64 body: anything
            // that does not start as DER (a SEQUENCE) is read as base64.
            e.transfer_encoding() == "base64"
                || e.body().iter().find(|b| !b.is_ascii_whitespace()) != Some(&0x30),
            from,
        )
    };
    o.verdict.outer_from = from.as_deref().and_then(first_address);
    let der = if base64 {
        mime::base64::decode_in_place(&mut o.buf, body).map_err(DecryptError::Mime)?
    } else {
        body
    };
    let env = parse_envelope(&o.buf[der.clone()])?;
    let mut result = Err(DecryptError::NoRecipient {
        issuer: String::new(),
        serial: String::new(),
        recipients: "no decryption credential configured".into(),
    });
    for cred in opts.credentials {
        // A wrong credential fails before touching the buffer (no RecipientInfo for it),
        // so the next one can still try.
        result = decrypt_in_place(&mut o.buf[der.clone()], &env, cred, opts.profile);
        if !matches!(result, Err(DecryptError::NoRecipient { .. })) {
            break;
        }
    }
    let d = result?;
    let v = &mut o.verdict;
    v.decrypted = true;
    v.algorithms.content_encryption = Some(d.cipher.name().into());
    v.algorithms.key_transport = Some(d.key_transport.name());
    v.warnings.extend(d.warnings);
    o.decrypted = Some(der.start + d.range.start..der.start + d.range.end);
    Ok(header_end)
}

fn first_address(v: &str) -> Option<String> {
    mime::parse_address_list(v)
        .into_iter()
        .next()
        .map(|m| m.address)
}

#[cfg(test)]
mod tests;
