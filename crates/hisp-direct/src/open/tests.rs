//! Open-path rules that the vectors do not reach: several credentials, a missing
//! Content-Transfer-Encoding, unwrapped messages, binding of the outer From, and profiles.

use super::*;
use crate::error::BindingError;
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
