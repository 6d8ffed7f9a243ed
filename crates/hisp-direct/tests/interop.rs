//! Conformance: every vector in the Direct interop MANIFEST.toml (reference implementation
//! output), with its keys, anchors and `verify_at`, must reach the stated verdict, and every
//! `[[vector.negative]]` must fail the way it says. The vectors are read byte-exact.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use hisp_direct::alg::Profile;
use hisp_direct::binding::{bindings, check_binding};
use hisp_direct::error::{DecryptError, OpenError};
use hisp_direct::keys;
use hisp_direct::open::{open, OpenOptions};
use hisp_direct::trust::{evaluate, TrustAnchors, TrustInput, Usage};
use toml::Value;

fn profile_for(v: &Value) -> Profile {
    let legacy = str_of(v, "digest") == Some("sha1")
        || str_of(v, "content_encryption") == Some("des-ede3-cbc")
        || v.get("recipient_key_bits").and_then(Value::as_integer) == Some(1024);
    if legacy {
        Profile::legacy()
    } else {
        Profile::strict()
    }
}

fn credential(v: &Value, base: &Value) -> keys::Credential {
    let key_file = str_of(v, "recipient_key")
        .or(str_of(base, "recipient_key"))
        .unwrap();
    let cert_file = str_of(v, "recipient_cert").or_else(|| {
        // A negative that overrides only the key keeps the base certificate; one that names
        // both gets both.
        if v.get("recipient_key").is_some() {
            None
        } else {
            str_of(base, "recipient_cert")
        }
    });
    let pw = str_of(base, "key_password");
    keys::load_credential(cert_file.map(read).as_deref(), &read(key_file), pw).unwrap()
}

struct Outcome {
    verdict: hisp_direct::open::Verdict,
    decrypted_sha: Option<String>,
    inner_sha: Option<String>,
}

fn run_open(v: &Value, over: &Value) -> Outcome {
    let cred = credential(over, v);
    let anchors = TrustAnchors::new(anchors_of(over.get("anchors").or(v.get("anchors"))));
    let at = at_of(over.get("verify_at").or(v.get("verify_at")));
    let profile = profile_for(v);
    let opts = OpenOptions::new(std::slice::from_ref(&cred), &anchors, at, &profile);
    let o = open(read(str_of(v, "file").unwrap()), &opts);
    Outcome {
        decrypted_sha: o.decrypted().map(sha256),
        inner_sha: o.signed().map(sha256),
        verdict: o.verdict,
    }
}

#[test]
fn manifest_enveloped_signed_vectors() {
    let m = manifest();
    let mut n = 0;
    for v in vectors(&m, "enveloped+signed") {
        let id = str_of(v, "id").unwrap();
        let out = run_open(v, &Value::Table(Default::default()));
        let vd = &out.verdict;
        assert_eq!(
            vd.decrypted,
            bool_of(v, "expect_decrypt"),
            "{id}: {:?}",
            vd.errors
        );
        assert_eq!(
            vd.signature_valid,
            bool_of(v, "expect_signature_valid"),
            "{id}: {:?}",
            vd.errors
        );
        assert_eq!(
            vd.trusted,
            bool_of(v, "expect_trusted"),
            "{id}: {:?}",
            vd.errors
        );
        let bound = v
            .get("expect_sender_matches_signer")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        assert_eq!(vd.bound, bound, "{id}: {:?}", vd.errors);
        assert_eq!(
            out.decrypted_sha.as_deref(),
            str_of(v, "decrypted_sha256"),
            "{id} decrypted bytes"
        );
        assert_eq!(
            out.inner_sha.as_deref(),
            str_of(v, "inner_sha256"),
            "{id} signed bytes"
        );
        let signer = vd.signer.as_ref().unwrap();
        assert_eq!(
            signer.sha256,
            sha256(&read(str_of(v, "signer_cert").unwrap())),
            "{id} signer"
        );
        assert!(
            signer
                .addresses
                .iter()
                .any(|a| a == str_of(v, "signer_address").unwrap()),
            "{id}"
        );
        assert_eq!(
            vd.algorithms.content_encryption.as_deref(),
            str_of(v, "content_encryption"),
            "{id}"
        );
        assert_eq!(
            vd.algorithms.key_transport.as_deref(),
            str_of(v, "key_transport"),
            "{id}"
        );
        assert_eq!(vd.algorithms.digest.as_deref(), str_of(v, "digest"), "{id}");
        assert_eq!(
            vd.signed_content_type.as_deref(),
            str_of(v, "inner_content_type"),
            "{id}"
        );
        if let Some(from) = str_of(v, "inner_from") {
            assert_eq!(vd.from.as_deref(), Some(from), "{id}");
        }
        assert_eq!(vd.exit_code(), 0, "{id}");
        for neg in negatives(v) {
            check_negative(v, neg);
        }
        n += 1;
    }
    assert!(n >= 5, "expected the five message vectors, found {n}");
}

fn check_negative(v: &Value, neg: &Value) {
    let id = str_of(v, "id").unwrap();
    let what = str_of(neg, "what").unwrap();
    let expect = str_of(neg, "expect").unwrap();
    let out = run_open(v, neg);
    let vd = &out.verdict;
    if expect.contains("RecipientInfo") || expect.contains("decrypt fails") {
        assert!(!vd.decrypted, "{id} / {what}");
        assert!(
            matches!(
                vd.errors.first(),
                Some(OpenError::Decrypt(DecryptError::NoRecipient { .. }))
            ),
            "{id}: {:?}",
            vd.errors
        );
        assert_eq!(vd.exit_code(), 4);
    } else if expect.starts_with("untrusted") {
        assert!(
            vd.decrypted && vd.signature_valid,
            "{id} / {what}: {:?}",
            vd.errors
        );
        assert!(!vd.trusted, "{id} / {what}");
        assert!(
            matches!(vd.errors.first(), Some(OpenError::Trust(_))),
            "{id}: {:?}",
            vd.errors
        );
        assert_eq!(vd.exit_code(), 6);
    } else {
        panic!("{id}: unhandled negative expectation {expect:?}");
    }
}

/// A strict open of a 2010-era vector names the weak algorithm (Applicability Statement
/// profiles; the legacy profile is what accepts them).
#[test]
fn strict_profile_names_the_weak_algorithm() {
    let m = manifest();
    for v in vectors(&m, "enveloped+signed") {
        if profile_for(v) == Profile::strict() {
            continue;
        }
        let cred = credential(&Value::Table(Default::default()), v);
        let anchors = TrustAnchors::new(anchors_of(v.get("anchors")));
        let strict = Profile::strict();
        let opts = OpenOptions {
            intermediates: &[],
            crls: &[],
            envelope_sender: None,
            ..OpenOptions::new(
                std::slice::from_ref(&cred),
                &anchors,
                at_of(v.get("verify_at")),
                &strict,
            )
        };
        let o = open(read(str_of(v, "file").unwrap()), &opts);
        let msg = o
            .verdict
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("strict profile"),
            "{}: {msg}",
            str_of(v, "id").unwrap()
        );
        assert!(
            msg.contains("3DES") || msg.contains("SHA-1") || msg.contains("1024-bit"),
            "{msg}"
        );
    }
}

#[test]
fn manifest_certificate_vectors() {
    let m = manifest();
    for v in vectors(&m, "cert") {
        let id = str_of(v, "id").unwrap();
        let cert = keys::load_cert(&read(str_of(v, "file").unwrap())).unwrap();
        let trusted = trust_of(&cert, v, &Value::Table(Default::default()));
        assert_eq!(
            trusted.is_ok(),
            bool_of(v, "expect_trusted"),
            "{id}: {trusted:?}"
        );
        match str_of(v, "binding") {
            Some("address") => {
                let a = str_of(v, "bound_address").unwrap();
                assert_eq!(check_binding(&cert, a).unwrap().value(), a, "{id}");
            }
            Some("domain") => {
                let d = str_of(v, "bound_domain").unwrap();
                assert!(check_binding(&cert, &format!("anyone@{d}")).is_ok(), "{id}");
                assert!(
                    check_binding(&cert, "anyone@elsewhere.example").is_err(),
                    "{id}"
                );
            }
            Some("none") => assert!(bindings(&cert).is_empty(), "{id}"),
            _ => {}
        }
        for neg in negatives(v) {
            assert!(
                trust_of(&cert, v, neg).is_err(),
                "{id} / {}",
                str_of(neg, "what").unwrap()
            );
        }
    }
}

fn trust_of(
    cert: &openssl::x509::X509,
    v: &Value,
    over: &Value,
) -> Result<(), hisp_direct::error::TrustError> {
    let anchors = TrustAnchors::new(anchors_of(over.get("anchors").or(v.get("anchors"))));
    let inter = anchors_of(over.get("intermediates").or(v.get("intermediates")));
    let at = at_of(over.get("verify_at").or(v.get("verify_at")));
    let profile = Profile::legacy();
    let input = TrustInput {
        anchors: &anchors,
        intermediates: &inter,
        crls: &[],
        at,
        profile: &profile,
    };
    evaluate(cert, Usage::Signing, &input).map(|_| ())
}

#[test]
fn manifest_pkcs12_vectors() {
    let m = manifest();
    for v in vectors(&m, "pkcs12") {
        let bytes = read(str_of(v, "file").unwrap());
        let c = keys::load_pkcs12(&bytes, str_of(v, "password").unwrap()).unwrap();
        let serial = c
            .cert()
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string();
        assert_eq!(serial, str_of(v, "contains_cert_serial").unwrap());
        assert_eq!(
            i64::from(c.key().bits()),
            v.get("key_bits").unwrap().as_integer().unwrap()
        );
        let email = str_of(v, "contains_cert_subject_email").unwrap();
        assert!(bindings(c.cert()).iter().any(|b| b.value() == email));
        for neg in negatives(v) {
            let e = keys::load_pkcs12(&bytes, str_of(neg, "password").unwrap()).unwrap_err();
            assert!(matches!(e, keys::KeyError::WrongPassword), "{e}");
        }
    }
}

#[test]
fn manifest_crl_vectors() {
    let m = manifest();
    for v in vectors(&m, "crl") {
        let crl = keys::load_crl(&read(str_of(v, "file").unwrap())).unwrap();
        let issuer = keys::load_cert(&read(str_of(v, "issuer_cert").unwrap())).unwrap();
        assert_eq!(
            crl.verify(&issuer.public_key().unwrap()).unwrap(),
            bool_of(v, "expect_crl_signature_valid")
        );
        let at = at_of(v.get("verify_at"));
        let crls = [crl];
        let status = |cert: &str, at| {
            let c = keys::load_cert(&read(cert)).unwrap();
            hisp_direct::trust::check_revocation(&[c, issuer.clone()], &crls, at)
        };
        for check in v.get("check").and_then(Value::as_array).unwrap() {
            let r = status(str_of(check, "cert").unwrap(), at);
            if bool_of(check, "expect_revoked") {
                let e = r.unwrap_err().to_string();
                assert!(e.contains("revoked"), "{e}");
                let date = str_of(check, "revocation_date").unwrap();
                assert!(e.contains(date), "{e} lacks {date}");
            } else {
                r.unwrap();
            }
        }
        for neg in negatives(v) {
            let e = status(str_of(neg, "cert").unwrap(), at_of(neg.get("verify_at"))).unwrap_err();
            assert!(e.to_string().contains("not current"), "{e}");
        }
    }
}

#[test]
fn manifest_bundle_vectors() {
    let m = manifest();
    for v in vectors(&m, "bundle") {
        let id = str_of(v, "id").unwrap();
        let bytes = read(str_of(v, "file").unwrap());
        let count = v
            .get("anchors_in_bundle")
            .and_then(Value::as_integer)
            .unwrap() as usize;
        let Some(signer) = str_of(v, "signer_cert") else {
            let certs = hisp_direct::bundle::parse_certs_only(&bytes).unwrap();
            assert_eq!(certs.len(), count, "{id}");
            for subject in v.get("anchor_subjects").and_then(Value::as_array).unwrap() {
                let cn = subject.as_str().unwrap().trim_start_matches("CN=");
                assert!(
                    certs
                        .iter()
                        .any(|c| hisp_direct::cert::subject_string(c).contains(cn)),
                    "{id}: {cn}"
                );
            }
            continue;
        };
        let signers = TrustAnchors::new(anchors_of(Some(&Value::Array(vec![Value::String(
            signer.into(),
        )]))));
        let at = at_of(v.get("verify_at"));
        let b = hisp_direct::bundle::open_signed_bundle(&bytes, &signers, at, &Profile::legacy())
            .unwrap();
        assert_eq!(b.anchors.len(), count, "{id}");
        let serial = b.anchors[0]
            .serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string();
        assert!(str_of(v, "anchor_subjects").is_none());
        assert!(v.get("anchor_subjects").unwrap().as_array().unwrap()[0]
            .as_str()
            .unwrap()
            .contains(&serial));
        for neg in negatives(v) {
            let anchors = neg
                .get("anchors")
                .map(|a| TrustAnchors::new(anchors_of(Some(a))));
            let at = at_of(neg.get("verify_at").or(v.get("verify_at")));
            let r = hisp_direct::bundle::open_signed_bundle(
                &bytes,
                anchors.as_ref().unwrap_or(&signers),
                at,
                &Profile::legacy(),
            );
            assert!(r.is_err(), "{id} / {}", str_of(neg, "what").unwrap());
        }
    }
}

/// RFC 8098 / Direct IG: every MDN vector parses to the fields the manifest states.
#[test]
fn manifest_mdn_vectors() {
    let m = manifest();
    let mut n = 0;
    for v in vectors(&m, "mdn") {
        let id = str_of(v, "id").unwrap();
        let mdn = hisp_direct::mdn::parse_mdn(&read(str_of(v, "file").unwrap())).unwrap();
        assert_eq!(
            mdn.disposition.disposition_type.as_str(),
            str_of(v, "disposition_type").unwrap(),
            "{id}"
        );
        if let Some(mode) = str_of(v, "disposition_mode") {
            assert_eq!(mdn.disposition.mode(), mode, "{id}");
        }
        if let Some(ua) = str_of(v, "reporting_ua") {
            assert_eq!(mdn.reporting_ua.as_deref(), Some(ua), "{id}");
        }
        if let Some(fr) = str_of(v, "final_recipient") {
            assert_eq!(mdn.final_recipient.to_string(), fr, "{id}");
        }
        match str_of(v, "original_message_id") {
            Some("") => {
                assert_eq!(mdn.original_message_id, None, "{id}");
                assert_eq!(mdn.in_reply_to.as_deref(), str_of(v, "in_reply_to"), "{id}");
                assert_eq!(mdn.correlation_id(), str_of(v, "in_reply_to"), "{id}");
            }
            Some(o) => assert_eq!(mdn.original_message_id.as_deref(), Some(o), "{id}"),
            None => {}
        }
        if let Some(from) = str_of(v, "from") {
            assert_eq!(mdn.from.as_deref(), Some(from), "{id}");
        }
        if let Some(to) = v.get("to").and_then(Value::as_array) {
            let to: Vec<&str> = to.iter().filter_map(Value::as_str).collect();
            assert_eq!(mdn.to, to, "{id}");
        }
        if v.get("x_direct_final_destination_delivery")
            .and_then(Value::as_bool)
            == Some(true)
        {
            assert!(mdn.final_destination_delivery, "{id}");
        }
        assert!(
            hisp_direct::notification::is_notification(&read(str_of(v, "file").unwrap())),
            "{id}"
        );
        n += 1;
    }
    assert_eq!(n, 4);
}

/// RFC 3464: every DSN vector parses to the fields the manifest states.
#[test]
fn manifest_dsn_vectors() {
    let m = manifest();
    let mut n = 0;
    for v in vectors(&m, "dsn") {
        let id = str_of(v, "id").unwrap();
        let dsn = hisp_direct::dsn::parse_dsn(&read(str_of(v, "file").unwrap())).unwrap();
        let r = dsn.recipients.first().unwrap();
        assert_eq!(r.action.as_str(), str_of(v, "action").unwrap(), "{id}");
        assert_eq!(r.status.to_string(), str_of(v, "status").unwrap(), "{id}");
        assert_eq!(
            r.final_recipient.to_string(),
            str_of(v, "final_recipient").unwrap(),
            "{id}"
        );
        if let Some(o) = str_of(v, "original_recipient") {
            assert_eq!(
                r.original_recipient
                    .as_ref()
                    .map(|a| a.to_string())
                    .as_deref(),
                Some(o),
                "{id}"
            );
        }
        if let Some(mta) = str_of(v, "reporting_mta") {
            assert_eq!(dsn.reporting_mta.as_deref(), Some(mta), "{id}");
        }
        if let Some(env) = str_of(v, "original_envelope_id") {
            assert_eq!(dsn.original_envelope_id.as_deref(), Some(env), "{id}");
        }
        assert_eq!(
            dsn.original_message_id.as_deref(),
            str_of(v, "original_message_id"),
            "{id}"
        );
        let field = dsn.original_message_id_field.as_deref().unwrap_or_default();
        assert!(
            field.eq_ignore_ascii_case(str_of(v, "original_message_id_header").unwrap()),
            "{id}: {field}"
        );
        n += 1;
    }
    assert_eq!(n, 2);
}
