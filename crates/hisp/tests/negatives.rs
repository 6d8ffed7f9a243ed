//! Proves `hisp open` rejects every bad message with the DESIGN §3 exit status (2 unreadable,
//! 4 cannot decrypt, 5 bad signature, 6 untrusted or unbound), one `hisp open: <reason>`
//! stderr line per error naming the cause, a JSON verdict with the errors, no panic, and fast.
//! Certificates come from an openssl-made PKI (tests/common); messages from `hisp seal`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A message from Alice to Bob sealed by hisp with `signer`'s certificate and chain.
fn sealed_by(dir: &Path, signer: &str, msg: &[u8]) -> PathBuf {
    hisp_seal(dir, signer, &[BOB], "aes-256-cbc", "rsa-pkcs1-v1_5", msg)
}

fn open_as_bob(input: &Path, extra: &[&str]) -> Run {
    hisp_open(BOB, &pki().cert(ROOT), input, extra)
}

/// Flip one base64 character in the middle of the body of a sealed message.
fn flip_middle_of_body(sealed: &[u8]) -> Vec<u8> {
    let (headers, body) = split_entity(sealed);
    let mut body = body.to_vec();
    let mut i = body.len() / 2;
    while !body[i].is_ascii_alphanumeric() {
        i += 1;
    }
    body[i] = if body[i] == b'A' { b'B' } else { b'A' };
    let mut v = headers.to_vec();
    v.extend_from_slice(b"\r\n\r\n");
    v.extend_from_slice(&body);
    v
}

/// The control: the unaltered message opens, so each rejection below is the alteration's.
#[test]
fn control_unaltered_message_opens() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("control"));
    assert_opened(&open_as_bob(&sealed, &[]));
}

/// RFC 5084 §1 / RFC 5083: AES-GCM authenticates the ciphertext, so one flipped byte fails
/// the tag check at decryption: exit 4.
#[test]
fn rfc5084_tampered_gcm_ciphertext_cannot_decrypt() {
    let dir = workdir();
    let msg = alice_to_bob("gcm tamper");
    let sealed = hisp_seal(
        dir.path(),
        ALICE,
        &[BOB],
        "aes-256-gcm",
        "rsa-pkcs1-v1_5",
        &msg,
    );
    let bad = write(
        dir.path(),
        "tampered.eml",
        &flip_middle_of_body(&std::fs::read(&sealed).unwrap()),
    );
    let v = assert_rejected(
        &open_as_bob(&bad, &[]),
        4,
        &["decryption failed", "altered", "malformed"],
    );
    assert_eq!(v["decrypted"], false, "{v:#}");
}

/// RFC 5652 §6.3: one flipped byte in the middle of an AES-CBC EnvelopedData. CBC carries no
/// integrity check (the padding at the end is intact), so decryption itself "succeeds" with
/// two garbled blocks; the alteration must still be caught, at the latest by the signature
/// (exit 5), and nothing is delivered.
#[test]
fn rfc5652_6_3_tampered_cbc_ciphertext_is_rejected() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("cbc tamper"));
    let bad = write(
        dir.path(),
        "tampered.eml",
        &flip_middle_of_body(&std::fs::read(&sealed).unwrap()),
    );
    let r = open_as_bob(&bad, &[]);
    let code = r.code;
    assert!(
        code == 4 || code == 5,
        "tampered CBC ciphertext: exit {code}, expected 4 (cannot decrypt) or 5 (altered)\n{}",
        r.stderr
    );
    let v = assert_rejected(
        &r,
        code,
        &[
            "decryption failed",
            "altered",
            "malformed",
            "digest",
            "signature",
        ],
    );
    assert_eq!(v["signature_valid"], false, "{v:#}");
    // Without --json nothing may be delivered.
    let out = dir.path().join("out.eml");
    let r = run(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki().cert(BOB))
            .arg("--key")
            .arg(pki().key(BOB))
            .arg("--anchor")
            .arg(pki().cert(ROOT))
            .arg("--in")
            .arg(&bad)
            .arg("--out")
            .arg(&out),
        None,
    );
    assert_eq!(r.code, code);
    assert!(!out.exists(), "a rejected message must not be written");
}

/// RFC 5652 §5.4 / RFC 5751 §3.5.3: one byte of the signed text changed (the envelope redone
/// by openssl for the same recipient, so decryption succeeds): the messageDigest attribute no
/// longer matches: exit 5, "digest mismatch" / "altered".
#[test]
fn rfc5652_5_4_tampered_signed_content_is_digest_mismatch() {
    let dir = workdir();
    let pki = pki();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("signed tamper"));
    let decrypted = dir.path().join("decrypted.eml");
    check(
        openssl()
            .args(["cms", "-decrypt", "-in"])
            .arg(&sealed)
            .arg("-recip")
            .arg(pki.cert(BOB))
            .arg("-inkey")
            .arg(pki.key(BOB))
            .arg("-out")
            .arg(&decrypted),
    );
    let altered = replace_once(
        &std::fs::read(&decrypted).unwrap(),
        b"Jane Doe",
        b"Jane Dow",
    );
    let altered = write(dir.path(), "altered.eml", &altered);
    let reenc = dir.path().join("reencrypted.eml");
    check(
        openssl()
            .args(["cms", "-encrypt", "-binary", "-aes256", "-in"])
            .arg(&altered)
            .arg("-out")
            .arg(&reenc)
            .arg(pki.cert(BOB)),
    );
    let v = assert_rejected(
        &open_as_bob(&reenc, &[]),
        5,
        &["digest mismatch", "altered"],
    );
    assert_eq!(v["decrypted"], true, "{v:#}");
    assert_eq!(v["signature_valid"], false, "{v:#}");
}

/// RFC 5652 §6.2.1: the message names only Bob's certificate; Carol's key finds no
/// RecipientInfo: exit 4, "not a recipient".
#[test]
fn rfc5652_6_2_1_wrong_recipient_key_is_not_a_recipient() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("wrong recipient"));
    let r = hisp_open(CAROL, &pki().cert(ROOT), &sealed, &[]);
    let v = assert_rejected(&r, 4, &["not a recipient"]);
    assert_eq!(v["decrypted"], false, "{v:#}");
}

/// Applicability Statement §4 (trust anchors): a path to an unrelated root is no path.
#[test]
fn applicability_untrusted_anchor_is_rejected() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("untrusted"));
    let r = hisp_open(BOB, &pki().cert(OTHER_ROOT), &sealed, &[]);
    let v = assert_rejected(&r, 6, &["not trusted", "issuer"]);
    assert_eq!(v["signature_valid"], true, "{v:#}");
    assert_eq!(v["trusted"], false, "{v:#}");
    assert_eq!(v["chain_trusted"], false, "{v:#}");
}

/// RFC 5280 §6.1.3 (a)(2): the signer's certificate expired (2021) before the check time.
#[test]
fn rfc5280_6_1_3_expired_signer_is_untrusted() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE_EXPIRED, &alice_to_bob("expired"));
    let v = assert_rejected(&open_as_bob(&sealed, &[]), 6, &["expired"]);
    assert_eq!(v["chain_trusted"], false, "{v:#}");
}

/// RFC 5280 §6.1.3 (a)(2): the signer's certificate is valid only from 2099.
#[test]
fn rfc5280_6_1_3_not_yet_valid_signer_is_untrusted() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE_FUTURE, &alice_to_bob("future"));
    assert_rejected(&open_as_bob(&sealed, &[]), 6, &["not yet valid"]);
}

/// RFC 5280 §6.1.3 (a)(3): the intermediate's CRL lists the signer: exit 6, "revoked".
/// Without the CRL the same message opens, so the CRL is what rejects it.
#[test]
fn rfc5280_6_1_3_revoked_signer_with_crl_is_untrusted() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE_REVOKED, &alice_to_bob("revoked"));
    let crl = pki().crl();
    let v = assert_rejected(
        &open_as_bob(&sealed, &["--crl", crl.to_str().unwrap()]),
        6,
        &["revoked"],
    );
    assert_eq!(v["chain_trusted"], false, "{v:#}");
    assert_opened(&open_as_bob(&sealed, &[]));
    // The same CRL does not reject a certificate it does not list.
    let good = sealed_by(dir.path(), ALICE, &alice_to_bob("not revoked"));
    assert_opened(&open_as_bob(&good, &["--crl", crl.to_str().unwrap()]));
}

/// Applicability Statement §4 (binding): From bob@a.example, signed with Alice's
/// address-bound certificate: the path is trusted, the binding is not: exit 6.
#[test]
fn applicability_from_not_bound_to_address_bound_signer() {
    let dir = workdir();
    let msg = message("bob@a.example", BOB_ADDR, "spoofed", "not from Alice\n");
    let sealed = sealed_by(dir.path(), ALICE, &msg);
    let v = assert_rejected(&open_as_bob(&sealed, &[]), 6, &["not bound"]);
    assert_eq!(v["chain_trusted"], true, "{v:#}");
    assert_eq!(v["bound"], false, "{v:#}");
    assert_eq!(
        v["trusted"], false,
        "trusted = chain trusted AND bound: {v:#}"
    );
}

/// Applicability Statement §4: an address-bound certificate binds that address only, not
/// its domain: Carol's certificate (carol@a.example) cannot sign for alice@a.example.
#[test]
fn applicability_other_address_in_same_domain_not_bound() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), CAROL, &alice_to_bob("carol signs for alice"));
    let v = assert_rejected(&open_as_bob(&sealed, &[]), 6, &["not bound"]);
    assert_eq!(v["bound"], false, "{v:#}");
}

/// Applicability Statement §4: a domain-bound certificate (c.example) used for a message
/// from a.example: exit 6.
#[test]
fn applicability_domain_bound_cert_for_another_domain_not_bound() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), C_DOMAIN, &alice_to_bob("wrong domain"));
    let v = assert_rejected(&open_as_bob(&sealed, &[]), 6, &["not bound", "domain"]);
    assert_eq!(v["bound"], false, "{v:#}");
    assert_eq!(v["chain_trusted"], true, "{v:#}");
}

/// A domain-bound certificate for the sender's own domain does bind (the positive twin of
/// the test above): Bob's b.example certificate signs for bob@b.example.
#[test]
fn applicability_domain_bound_cert_binds_its_domain() {
    let dir = workdir();
    let msg = message(
        BOB_ADDR,
        ALICE_ADDR,
        "domain bound",
        "hello from b.example\n",
    );
    let sealed = hisp_seal(dir.path(), BOB, &[ALICE], "aes-128-cbc", "rsa-oaep", &msg);
    let v = assert_opened(&hisp_open(ALICE, &pki().cert(ROOT), &sealed, &[]));
    assert_eq!(v["binding"]["kind"], "domain", "{v:#}");
    assert_eq!(v["binding"]["value"], "b.example", "{v:#}");
}

/// A sealed message cut in half: the CMS structure is truncated: exit 4.
#[test]
fn rfc5652_truncated_input_cannot_decrypt() {
    let dir = workdir();
    let sealed = std::fs::read(sealed_by(dir.path(), ALICE, &alice_to_bob("cut"))).unwrap();
    let half = write(dir.path(), "half.eml", &sealed[..sealed.len() / 2]);
    let v = assert_rejected(
        &open_as_bob(&half, &[]),
        4,
        &["malformed", "truncated", "base64", "cannot decode"],
    );
    assert_eq!(v["decrypted"], false, "{v:#}");
}

/// DESIGN §3: empty input is unreadable input: exit 2, from a file and from stdin.
#[test]
fn design_3_empty_input_is_usage_error() {
    let dir = workdir();
    let empty = write(dir.path(), "empty.eml", b"");
    assert_rejected(&open_as_bob(&empty, &[]), 2, &["empty"]);
    let pki = pki();
    let r = run(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki.cert(BOB))
            .arg("--key")
            .arg(pki.key(BOB))
            .arg("--anchor")
            .arg(pki.cert(ROOT))
            .arg("--json"),
        Some(b""),
    );
    assert_rejected(&r, 2, &["empty"]);
}

/// RFC 5751 §3.3: a plain RFC 5322 message is not S/MIME at all: exit 4, "not S/MIME".
#[test]
fn rfc5751_3_3_plain_message_is_not_smime() {
    let dir = workdir();
    let plain = write(dir.path(), "plain.eml", &alice_to_bob("plain"));
    assert_rejected(&open_as_bob(&plain, &[]), 4, &["not S/MIME"]);
}

/// Applicability Statement §3.3: signed but not encrypted (openssl multipart/signed) is not
/// a Direct message: exit 4.
#[test]
fn applicability_signed_only_message_is_not_encrypted() {
    let dir = workdir();
    let pki = pki();
    let input = write(
        dir.path(),
        "wrapped.eml",
        &wrap_rfc822(&alice_to_bob("clear")),
    );
    let signed = dir.path().join("signed.eml");
    check(
        openssl()
            .args(["cms", "-sign", "-md", "sha256", "-signer"])
            .arg(pki.cert(ALICE))
            .arg("-inkey")
            .arg(pki.key(ALICE))
            .arg("-in")
            .arg(&input)
            .arg("-out")
            .arg(&signed),
    );
    assert_rejected(
        &open_as_bob(&signed, &[]),
        4,
        &["not encrypted", "not S/MIME"],
    );
}

/// DESIGN §3: a missing --in file is unreadable input: exit 2, one stderr line naming the
/// file, no panic.
#[test]
fn design_3_missing_input_file_is_usage_error() {
    let dir = workdir();
    let missing = dir.path().join("does-not-exist.eml");
    let r = open_as_bob(&missing, &[]);
    assert_no_panic(&r);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line per error: {lines:?}");
    assert!(
        lines[0].contains("does-not-exist.eml") && lines[0].contains("cannot read"),
        "{}",
        lines[0]
    );
    assert!(r.elapsed < QUICK);
}

/// DESIGN §3 (PKCS#12 with --key-password): a wrong password is unreadable input: exit 2,
/// one stderr line saying the password is wrong, no panic.
#[test]
fn design_3_wrong_pkcs12_password_is_usage_error() {
    let dir = workdir();
    let pki = pki();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("p12"));
    let r = run(
        hisp()
            .arg("open")
            .arg("--key")
            .arg(pki.p12(BOB))
            .arg("--key-password")
            .arg("not-the-password")
            .arg("--anchor")
            .arg(pki.cert(ROOT))
            .arg("--in")
            .arg(&sealed)
            .arg("--json"),
        None,
    );
    assert_no_panic(&r);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line per error: {lines:?}");
    let line = lines[0].to_ascii_lowercase();
    assert!(
        line.contains("wrong") && line.contains("password"),
        "{}",
        lines[0]
    );
    // The right password opens the same message with the PKCS#12 alone (no --cert).
    let r = run(
        hisp()
            .arg("open")
            .arg("--key")
            .arg(pki.p12(BOB))
            .arg("--key-password")
            .arg(P12_PASSWORD)
            .arg("--anchor")
            .arg(pki.cert(ROOT))
            .arg("--in")
            .arg(&sealed)
            .arg("--json"),
        None,
    );
    assert_opened(&r);
}

/// DESIGN §3: "With --json, prints one JSON object on stdout ... whatever the outcome", and
/// errors go to stderr as `hisp open: <reason>`. That holds for unreadable input (exit 2)
/// too: a missing --in file and a wrong PKCS#12 password.
#[test]
fn design_3_json_verdict_printed_for_unreadable_input() {
    let dir = workdir();
    let pki = pki();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("json on exit 2"));
    let missing = dir.path().join("does-not-exist.eml");
    let r = open_as_bob(&missing, &[]);
    assert_rejected(&r, 2, &["does-not-exist.eml"]);
    let r = run(
        hisp()
            .arg("open")
            .arg("--key")
            .arg(pki.p12(BOB))
            .arg("--key-password")
            .arg("not-the-password")
            .arg("--anchor")
            .arg(pki.cert(ROOT))
            .arg("--in")
            .arg(&sealed)
            .arg("--json"),
        None,
    );
    assert_rejected(&r, 2, &["password"]);
}

/// DESIGN §3 `--at`: validity is judged at the given time; in 2020 Alice's certificate
/// (issued now) is not yet valid: exit 6. The same message opens at the current time.
#[test]
fn design_3_at_in_the_past_makes_valid_cert_not_yet_valid() {
    let dir = workdir();
    let sealed = sealed_by(dir.path(), ALICE, &alice_to_bob("at"));
    assert_rejected(
        &open_as_bob(&sealed, &["--at", "2020-01-01T00:00:00Z"]),
        6,
        &["not yet valid"],
    );
    assert_opened(&open_as_bob(&sealed, &[]));
}
