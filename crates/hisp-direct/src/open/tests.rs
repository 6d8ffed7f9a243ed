//! Open-path rules that the vectors do not reach: several credentials, a missing
//! Content-Transfer-Encoding, unwrapped messages, binding of the outer From, and profiles.

use super::*;
use crate::error::{BindingError, SignatureError};
use crate::pki::{self, LeafSpec};
use crate::seal::{seal, SealOptions};

const NOW: i64 = 1_800_000_000;

struct Pki {
    ca: X509,
    alice: Credential,
    bob: Credential,
    carol: Credential,
}

fn pki() -> &'static Pki {
    static P: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let ca = pki::new_root_ca("Open Test CA", NOW - 10, NOW + 86_400, 2048).unwrap();
        let leaf = |spec: LeafSpec| {
            let l = pki::issue_leaf(&ca, &spec).unwrap();
            Credential::new(l.cert, l.key, vec![]).unwrap()
        };
        Pki {
            alice: leaf(LeafSpec::address("alice@a.example", NOW - 10, NOW + 86_400)),
            bob: leaf(LeafSpec::domain("b.example", NOW - 10, NOW + 86_400)),
            carol: leaf(LeafSpec::domain("c.example", NOW - 10, NOW + 86_400)),
            ca: ca.cert,
        }
    })
}

const MSG: &[u8] =
    b"From: alice@a.example\r\nTo: x@b.example\r\nSubject: s\r\nMessage-ID: <1@a>\r\n\r\nbody\r\n";

fn open_as(sealed: Vec<u8>, creds: &[Credential]) -> Opened {
    let anchors = TrustAnchors::new(vec![pki().ca.clone()]);
    let profile = Profile::strict();
    open(sealed, &OpenOptions::new(creds, &anchors, NOW, &profile))
}

fn sealed(msg: &[u8]) -> Vec<u8> {
    let p = pki();
    seal(
        msg,
        &p.alice,
        &[p.bob.cert(), p.carol.cert()],
        &SealOptions::new(NOW),
    )
    .unwrap()
}

#[test]
fn rfc5652_6_2_any_of_our_credentials_that_is_a_recipient() {
    let p = pki();
    let o = open_as(sealed(MSG), &[p.alice.clone(), p.carol.clone()]);
    assert!(o.verdict.ok(), "{:?}", o.verdict.errors);
    assert_eq!(o.trusted_inner(), Some(MSG));
    let (v, owned) = o.into_trusted_inner();
    assert!(v.ok());
    assert_eq!(owned.as_deref(), Some(MSG));
    let o = open_as(sealed(MSG), std::slice::from_ref(&p.alice));
    assert!(matches!(
        o.verdict.errors[0],
        OpenError::Decrypt(DecryptError::NoRecipient { .. })
    ));
    assert_eq!(o.verdict.exit_code(), 4);
}

#[test]
fn body_without_transfer_encoding_header_is_read_as_base64() {
    let s = sealed(MSG);
    let text = String::from_utf8(s)
        .unwrap()
        .replace("Content-Transfer-Encoding: base64\r\n", "");
    let o = open_as(text.into_bytes(), std::slice::from_ref(&pki().bob));
    assert!(o.verdict.ok(), "{:?}", o.verdict.errors);
}

#[test]
fn applicability_outer_from_must_be_bound_too() {
    let s = String::from_utf8(sealed(MSG)).unwrap();
    let forged = s.replacen("From: alice@a.example", "From: mallory@a.example", 1);
    let o = open_as(forged.into_bytes(), std::slice::from_ref(&pki().bob));
    assert!(o.verdict.decrypted && o.verdict.signature_valid && o.verdict.trusted);
    assert!(!o.verdict.bound);
    assert!(matches!(
        o.verdict.errors[0],
        OpenError::Binding(BindingError::AddressMismatch { .. })
    ));
    assert_eq!(o.verdict.exit_code(), 6);
}

#[test]
fn inner_from_must_be_bound() {
    let msg = b"From: bob@a.example\r\nTo: x@b.example\r\n\r\nbody\r\n";
    let o = open_as(sealed(msg), std::slice::from_ref(&pki().bob));
    assert!(!o.verdict.bound);
    assert_eq!(o.trusted_inner(), None);
    assert!(o.verdict.errors[0].to_string().contains("bob@a.example"));
}

#[test]
fn not_smime_and_empty_inputs() {
    let o = open_as(MSG.to_vec(), std::slice::from_ref(&pki().bob));
    assert!(o.verdict.errors[0].to_string().starts_with("not S/MIME"));
    assert_eq!(o.verdict.exit_code(), 4);
    let o = open_as(b" \r\n".to_vec(), std::slice::from_ref(&pki().bob));
    assert_eq!(o.verdict.exit_code(), 2);
    let s = sealed(MSG);
    let o = open_as(s[..s.len() / 2].to_vec(), std::slice::from_ref(&pki().bob));
    assert_eq!(o.verdict.exit_code(), 4, "{:?}", o.verdict.errors);
}

#[test]
fn anchors_at_another_time() {
    let anchors = TrustAnchors::new(vec![pki().ca.clone()]);
    let profile = Profile::strict();
    let creds = [pki().bob.clone()];
    let later = OpenOptions::new(&creds, &anchors, NOW + 2 * 86_400, &profile);
    let o = open(sealed(MSG), &later);
    assert!(o.verdict.decrypted && o.verdict.signature_valid && !o.verdict.trusted);
    assert!(
        o.verdict.errors[0].to_string().contains("expired"),
        "{:?}",
        o.verdict.errors
    );
    // The same anchors still trust at the original time (the path cache honours time).
    let o = open(
        sealed(MSG),
        &OpenOptions::new(&creds, &anchors, NOW, &profile),
    );
    assert!(o.verdict.ok());
    let o = open(sealed(MSG), &later);
    assert!(
        !o.verdict.trusted,
        "a cached path must not outlive its certificates"
    );
}

/// An EnvelopedData for bob around a multipart/signed whose header names `micalg`, with
/// alice's SHA-256 signature over `signed` and `sent` as the first part's bytes.
fn signed_with_micalg(micalg: &str, signed: &[u8], sent: &[u8]) -> Vec<u8> {
    use crate::alg::{ContentCipher, Digest, KeyTransport};
    let p = pki();
    let sig = crate::cms::sign::sign_detached(&[signed], &p.alice, Digest::Sha256, NOW).unwrap();
    let mut b64 = Vec::new();
    mime::base64::encode_lines(&sig, &mut b64);
    let inner = [
        format!("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg={micalg}; boundary=\"zz\"\r\n\r\n--zz\r\n").as_bytes(),
        sent,
        b"\r\n--zz\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        &b64,
        b"--zz--\r\n",
    ]
    .concat();
    let der = crate::cms::encrypt::encrypt(
        &[&inner],
        &[p.bob.cert()],
        ContentCipher::Aes256Cbc,
        KeyTransport::RsaPkcs1v15,
    )
    .unwrap();
    let mut out = b"From: alice@a.example\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    mime::base64::encode_lines(&der, &mut out);
    out
}

/// RFC 8551 §3.5.3.2: micalg names the digest, and the first part is hashed by it while
/// it is located; a signature by another digest is checked by hashing again (with a
/// warning), and a first part that differs from what was signed fails either way.
#[test]
fn rfc8551_3_5_3_2_digest_taken_by_micalg_while_locating() {
    let bob = std::slice::from_ref(&pki().bob);
    let msg = &[&b"Content-Type: message/rfc822\r\n\r\n"[..], MSG].concat();
    let o = open_as(signed_with_micalg("sha-256", msg, msg), bob);
    assert!(o.verdict.ok(), "{:?}", o.verdict.errors);
    assert!(o.verdict.warnings.is_empty(), "{:?}", o.verdict.warnings);
    let o = open_as(signed_with_micalg("SHA-1", msg, msg), bob);
    assert!(o.verdict.signature_valid, "{:?}", o.verdict.errors);
    assert!(o
        .verdict
        .warnings
        .iter()
        .any(|w| w.contains("micalg=SHA-1")));
    let tampered: Vec<u8> = msg
        .iter()
        .map(|b| if *b == b'y' { b'Y' } else { *b })
        .collect();
    for micalg in ["sha-256", "sha-512", "unknown"] {
        let o = open_as(signed_with_micalg(micalg, msg, &tampered), bob);
        assert!(!o.verdict.signature_valid, "micalg {micalg}");
        assert!(
            matches!(
                o.verdict.errors[0],
                OpenError::Signature(SignatureError::DigestMismatch)
            ),
            "micalg {micalg}: {:?}",
            o.verdict.errors
        );
    }
}
