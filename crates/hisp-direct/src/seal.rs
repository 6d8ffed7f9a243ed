//! Sealing a Direct message (Applicability Statement §3; RFC 8551 §3.5.3, RFC 5751): the
//! whole RFC 5322 message is wrapped as message/rfc822, signed as multipart/signed with a
//! detached SHA-256 signature, and enveloped for every recipient as smime.p7m. The outer
//! headers carry only what transport needs.

use crate::alg::{ContentCipher, Digest, KeyTransport, Profile};
use crate::cms::{encrypt::encrypt_to, sign::sign_detached};
use crate::error::SealError;
use crate::keys::Credential;
use crate::mime::{self, Entity};
use crate::time::UnixTime;
use openssl::x509::{X509KeyUsage, X509Ref};

/// How to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Content encryption (default AES-256-CBC;
    /// AES-128-CBC, what the reference implementations send, is a choice).
    pub cipher: ContentCipher,
    /// Key transport (default RSA PKCS#1 v1.5, which every peer reads).
    pub key_transport: KeyTransport,
    /// Signature digest (default SHA-256).
    pub digest: Digest,
    /// The profile the choices and keys must satisfy.
    pub profile: Profile,
    /// signingTime attribute value.
    pub signing_time: UnixTime,
    /// Copy the Subject to the outer headers (off by default: it may carry PHI).
    pub outer_subject: bool,
}

impl SealOptions {
    /// The defaults, signing at `signing_time`.
    pub fn new(signing_time: UnixTime) -> SealOptions {
        SealOptions {
            cipher: ContentCipher::Aes256Cbc,
            key_transport: KeyTransport::RsaPkcs1v15,
            digest: Digest::Sha256,
            profile: Profile::strict(),
            signing_time,
            outer_subject: false,
        }
    }
}

/// Outer header fields copied from the original (transport needs them; nothing else).
const OUTER_FIELDS: [&str; 6] = ["From", "Sender", "To", "Cc", "Date", "Message-ID"];

/// Seal `message` from `signer` to every certificate in `recipients`.
pub fn seal(
    message: &[u8],
    signer: &Credential,
    recipients: &[&X509Ref],
    opts: &SealOptions,
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    seal_into(message, signer, recipients, opts, &mut out, None)?;
    Ok(out)
}

/// How much sealed output [`seal_to`] gathers before writing it out.
const SPILL: usize = 1 << 20;

/// Seal as [`seal`] does, writing the sealed message to `w` a megabyte at a time as it is
/// produced, so a large message and its sealed form are never both in memory. Returns the
/// number of bytes written.
pub fn seal_to(
    message: &[u8],
    signer: &Credential,
    recipients: &[&X509Ref],
    opts: &SealOptions,
    w: &mut dyn std::io::Write,
) -> Result<u64, SealError> {
    let mut out = Vec::with_capacity(SPILL + 4096);
    let mut written = 0u64;
    let mut spill = |buf: &mut Vec<u8>| -> std::io::Result<()> {
        w.write_all(buf)?;
        written += buf.len() as u64;
        buf.clear();
        Ok(())
    };
    seal_into(
        message,
        signer,
        recipients,
        opts,
        &mut out,
        Some(&mut spill),
    )?;
    spill(&mut out).map_err(SealError::Write)?;
    Ok(written)
}

type Spill<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<()>;

/// Seal into `out`; with `spill`, hand `out` over whenever it holds [`SPILL`] bytes.
fn seal_into(
    message: &[u8],
    signer: &Credential,
    recipients: &[&X509Ref],
    opts: &SealOptions,
    out: &mut Vec<u8>,
    mut spill: Option<Spill<'_>>,
) -> Result<(), SealError> {
    if message.iter().all(u8::is_ascii_whitespace) {
        return Err(SealError::Empty);
    }
    check_policy(signer, recipients, opts)?;
    let scan = Scan::of(message);
    let canonical = if scan.bare_lf {
        mime::to_crlf(message)
    } else {
        None
    };
    let message = canonical.as_deref().unwrap_or(message);
    let wrapper = scan.wrapper_header();
    let signature = sign_detached(&[&wrapper, message], signer, opts.digest, opts.signing_time)?;
    let boundary = boundary_for(message, &signature)?;
    let ms_header = format!(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={}; boundary=\"{boundary}\"\r\n\r\n",
        opts.digest.micalg()
    );
    let open = format!("--{boundary}\r\n");
    let middle = format!(
        "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
    );
    let mut sig_b64 = Vec::new();
    mime::base64::encode_lines(&signature, &mut sig_b64);
    let close = format!("--{boundary}--\r\n");
    let parts: [&[u8]; 7] = [
        ms_header.as_bytes(),
        open.as_bytes(),
        &wrapper,
        message,
        middle.as_bytes(),
        &sig_b64,
        close.as_bytes(),
    ];
    out.extend_from_slice(&outer_headers(message, opts));
    if spill.is_none() {
        out.reserve(parts.iter().map(|p| p.len()).sum::<usize>() * 139 / 100 + 4096);
    }
    let mut b64 = mime::base64::LineEncoder::new(out);
    let mut failed = None;
    encrypt_to(
        &parts,
        recipients,
        opts.cipher,
        opts.key_transport,
        &mut |der| {
            b64.write(der);
            if let Some(spill) = spill.as_mut() {
                if b64.buffered() >= SPILL && failed.is_none() {
                    failed = spill(b64.output()).err();
                }
            }
        },
    )?;
    b64.finish();
    match failed {
        Some(e) => Err(SealError::Write(e)),
        None => Ok(()),
    }
}

fn check_policy(
    signer: &Credential,
    recipients: &[&X509Ref],
    opts: &SealOptions,
) -> Result<(), SealError> {
    let p = &opts.profile;
    p.check_digest(opts.digest).map_err(SealError::Policy)?;
    p.check_cipher(opts.cipher).map_err(SealError::Policy)?;
    // Sending never uses the legacy allowances: they exist for receipt only.
    if opts.digest == Digest::Sha1 || opts.cipher == ContentCipher::DesEde3Cbc {
        let algorithm = if opts.digest == Digest::Sha1 {
            "digest SHA-1"
        } else {
            "3DES"
        };
        return Err(SealError::Policy(crate::alg::PolicyViolation {
            algorithm: format!("sending with {algorithm}"),
            profile: p.name,
            hint: "",
        }));
    }
    let bits = signer.key().bits();
    p.check_rsa_bits(bits, "the signing key")
        .map_err(SealError::Policy)?;
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    for r in recipients {
        // Names are formatted only for errors: this loop runs for every message.
        let subject = || crate::cert::subject_string(r);
        let bits = crate::cert::rsa_bits(r).ok_or_else(|| SealError::RecipientKey(subject()))?;
        if bits < 2048 {
            p.check_rsa_bits(bits, &format!("recipient {}", subject()))
                .map_err(SealError::Policy)?;
        }
        if let Some(ku) = r.key_usage() {
            if !ku.contains(X509KeyUsage::KEY_ENCIPHERMENT) {
                return Err(SealError::RecipientUsage {
                    subject: subject(),
                    detail: format!("keyUsage is {ku:?}"),
                });
            }
        }
    }
    Ok(())
}

/// What one pass over the message tells the wrapper: line endings, line lengths, 8-bit data.
struct Scan {
    bare_lf: bool,
    long_line: bool,
    eight_bit: bool,
    nul: bool,
}

impl Scan {
    fn of(message: &[u8]) -> Scan {
        let (mut bare_lf, mut long_line, mut last) = (false, false, 0usize);
        for i in memchr::memchr_iter(b'\n', message) {
            bare_lf |= i == 0 || message[i - 1] != b'\r';
            long_line |= i - last > 1000;
            last = i;
        }
        long_line |= message.len() - last > 1000;
        Scan {
            bare_lf,
            long_line,
            eight_bit: !message.is_ascii(),
            nul: memchr::memchr(0, message).is_some(),
        }
    }

    /// The message/rfc822 part header; the transfer encoding says what the inner bytes need.
    fn wrapper_header(&self) -> Vec<u8> {
        let cte = if self.long_line || self.nul {
            "binary"
        } else if self.eight_bit {
            "8bit"
        } else {
            "7bit"
        };
        format!("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
            .into_bytes()
    }
}

/// A boundary that occurs nowhere in the content (RFC 2046 §5.1.1). The first candidate
/// is made of the signature's last bytes, which nobody can predict without the signing
/// key and which are already paid for (a draw from the DRBG costs a lock and a getpid
/// system call); a content that holds it anyway gets fresh random candidates.
fn boundary_for(message: &[u8], signature: &[u8]) -> Result<String, SealError> {
    let draw = |seed: &mut [u8; 16]| {
        openssl::rand::rand_bytes(seed).map_err(SealError::crypto("generate a MIME boundary"))
    };
    let mut seed = [0u8; 16];
    match signature.len().checked_sub(16) {
        Some(at) => seed.copy_from_slice(&signature[at..]),
        None => draw(&mut seed)?,
    }
    loop {
        let b = format!("----=_Hisp_{}", hex::encode(seed));
        if memchr::memmem::find(message, b.as_bytes()).is_none() {
            return Ok(b);
        }
        draw(&mut seed)?;
    }
}

/// The outer header block: the transport fields copied from the message, then the S/MIME
/// entity headers (RFC 8551 §3.2.2).
fn outer_headers(message: &[u8], opts: &SealOptions) -> Vec<u8> {
    let inner = Entity::parse(message);
    let mut out = Vec::with_capacity(1024);
    let mut wanted: Vec<&str> = OUTER_FIELDS.to_vec();
    if opts.outer_subject {
        wanted.push("Subject");
    }
    for f in inner.headers.fields() {
        if wanted.iter().any(|w| f.name.eq_ignore_ascii_case(w)) {
            out.extend_from_slice(message[f.range.clone()].trim_ascii_end());
            out.extend_from_slice(b"\r\n");
        }
    }
    let smime_type = if opts.cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::boundary_for;

    /// RFC 2046 §5.1.1: the boundary must not occur in the encapsulated text. The first
    /// candidate comes from the signature; a content that already holds it gets another.
    #[test]
    fn rfc2046_5_1_1_boundary_avoids_the_content() {
        let sig: Vec<u8> = (0u8..=255).collect();
        let first = boundary_for(b"plain text", &sig).unwrap();
        assert_eq!(first, format!("----=_Hisp_{}", hex::encode(&sig[240..])));
        let hostile = format!("a line\r\n--{first}\r\nmore\r\n");
        let other = boundary_for(hostile.as_bytes(), &sig).unwrap();
        assert_ne!(other, first);
        assert!(!hostile.contains(&other));
        let short = boundary_for(b"x", b"tiny").unwrap();
        assert_eq!(short.len(), "----=_Hisp_".len() + 32);
    }
}
