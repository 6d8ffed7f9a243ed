//! `smime_open`: opening a Direct message (Applicability Statement §3–4, RFC 8551) must never
//! panic, and a verdict that says ok must have decrypted and verified. The first input byte
//! picks how the rest reaches `open`, so the fuzzer gets past decryption too:
//!
//! The low two bits of the first byte:
//!
//! - `0` or `3`: the rest is the whole message, as received from a peer.
//! - `1`: the rest is the decrypted content (what a peer would sign and put in smime.p7m); it
//!   is enveloped for the fixed credential with the cipher that bits 2–3 of the first byte
//!   choose, then opened. This reaches multipart/signed, SignedData and unwrapping.
//! - `2`: the rest is an RFC 5322 message; it is sealed by the fixed credential to itself and
//!   opened, which must decrypt, verify, chain to the anchor, and give back the message in
//!   canonical CRLF form (RFC 5751 §3.1.1), byte for byte.
//!
//! The credential (a domain-bound certificate under its own root) is generated once per
//! process; fuzz/seed-corpora writes seeds for each mode.
#![no_main]

use hisp_direct::alg::{ContentCipher, KeyTransport, Profile};
use hisp_direct::cms::encrypt::encrypt_to;
use hisp_direct::keys::Credential;
use hisp_direct::mime::{self, base64::LineEncoder};
use hisp_direct::open::{open, OpenOptions, Opened};
use hisp_direct::pki::{issue_leaf, new_root_ca, LeafSpec};
use hisp_direct::seal::{seal, SealOptions};
use hisp_direct::trust::TrustAnchors;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const DOMAIN: &str = "fuzz.hisp.example";
const NOT_BEFORE: i64 = 1_600_000_000; // 2020-09-13
const NOT_AFTER: i64 = 2_500_000_000; // 2049-03-22
const AT: i64 = 1_750_000_000; // 2025-06-15, inside the validity window

struct Fixture {
    credentials: Vec<Credential>,
    anchors: TrustAnchors,
    profile: Profile,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ca = new_root_ca("Hisp Fuzz Root", NOT_BEFORE, NOT_AFTER, 2048).expect("root CA");
        let leaf = issue_leaf(&ca, &LeafSpec::domain(DOMAIN, NOT_BEFORE, NOT_AFTER)).expect("leaf");
        Fixture {
            credentials: vec![Credential::new(leaf.cert, leaf.key, vec![]).expect("credential")],
            anchors: TrustAnchors::new(vec![ca.cert]),
            profile: Profile::strict(),
        }
    })
}

fn open_checked(message: Vec<u8>, f: &Fixture) -> Opened {
    let opts = OpenOptions::new(&f.credentials, &f.anchors, AT, &f.profile);
    let opened = open(message, &opts);
    let v = &opened.verdict;
    if v.ok() {
        assert!(v.decrypted && v.signature_valid && v.trusted && v.bound);
        assert!(v.errors.is_empty());
        assert!(opened.trusted_inner().is_some());
    } else {
        assert!(opened.trusted_inner().is_none());
    }
    if v.signature_valid {
        assert!(
            v.decrypted,
            "a signature verified inside content that was not decrypted"
        );
    }
    let _ = v.exit_code();
    opened
}

/// Envelope `content` for the fixture's credential as a peer would: outer headers, then the
/// base64 of (Auth)EnvelopedData (RFC 8551 §3.2, RFC 5083).
fn envelope(content: &[u8], cipher: ContentCipher, f: &Fixture) -> Option<Vec<u8>> {
    let smime_type = if cipher.is_aead() {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    let mut out = format!(
        "From: sender@{DOMAIN}\r\nTo: receiver@{DOMAIN}\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let recipients = [&**f.credentials[0].cert()];
    let mut b64 = LineEncoder::new(&mut out);
    encrypt_to(
        &[content],
        &recipients,
        cipher,
        KeyTransport::RsaPkcs1v15,
        &mut |der| b64.write(der),
    )
    .ok()?;
    b64.finish();
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode & 3 {
        1 => {
            let cipher = [
                ContentCipher::Aes256Cbc,
                ContentCipher::Aes128Cbc,
                ContentCipher::Aes256Gcm,
                ContentCipher::Aes128Gcm,
            ][usize::from(mode >> 2) & 3];
            if let Some(message) = envelope(rest, cipher, f) {
                let opened = open_checked(message, f);
                assert!(
                    opened.verdict.decrypted,
                    "our own envelope did not decrypt: {:?}",
                    opened.verdict.errors
                );
                assert_eq!(opened.decrypted(), Some(rest));
            }
        }
        2 => {
            let recipients = [&**f.credentials[0].cert()];
            let Ok(sealed) = seal(rest, &f.credentials[0], &recipients, &SealOptions::new(AT))
            else {
                return;
            };
            let opened = open_checked(sealed, f);
            let v = &opened.verdict;
            assert!(
                v.decrypted && v.signature_valid && v.trusted,
                "sealed message did not open: {:?}",
                v.errors
            );
            let canonical = mime::to_crlf(rest).unwrap_or_else(|| rest.to_vec());
            assert_eq!(
                opened.inner(),
                Some(&canonical[..]),
                "unwrapped message differs"
            );
        }
        _ => {
            open_checked(rest.to_vec(), f);
        }
    }
});
