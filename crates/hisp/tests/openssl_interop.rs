//! Proves `hisp seal`/`hisp open` interoperate with OpenSSL's `cms` (an independent S/MIME
//! implementation) in both directions: every Direct receive cipher (AES-128/256 CBC and GCM,
//! RFC 5751 §2.7, RFC 5084) with RSA PKCS#1 v1.5 and RSA-OAEP key transport (RFC 3560), detached
//! multipart/signed (RFC 5751 §3.5.3), wrapped or not (Applicability Statement §3.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// `openssl cms -sign` (detached multipart/signed, SHA-256) of `content` by `signer`, with
/// the intermediate included when `with_intermediate`.
fn openssl_sign(dir: &Path, content: &[u8], signer: &str, with_intermediate: bool) -> PathBuf {
    let pki = pki();
    let input = write(dir, "to-sign.eml", content);
    let out = dir.join("signed.eml");
    let mut cmd = openssl();
    cmd.args(["cms", "-sign", "-md", "sha256", "-signer"])
        .arg(pki.cert(signer))
        .arg("-inkey")
        .arg(pki.key(signer))
        .arg("-in")
        .arg(&input)
        .arg("-out")
        .arg(&out);
    if with_intermediate {
        cmd.arg("-certfile").arg(pki.cert(INTER));
    }
    check(&mut cmd);
    out
}

/// `openssl cms -encrypt` of the signed entity for `recipient` with `cipher_flag` and the
/// `-keyopt`s, with Direct-style outer headers when `outer_headers`.
fn openssl_encrypt(
    dir: &Path,
    signed: &Path,
    cipher_flag: &str,
    keyopts: &[&str],
    recipient: &str,
    outer_headers: bool,
) -> PathBuf {
    let out = dir.join("encrypted.eml");
    let mut cmd = openssl();
    cmd.args(["cms", "-encrypt", cipher_flag, "-in"])
        .arg(signed)
        .arg("-out")
        .arg(&out);
    if outer_headers {
        cmd.args(["-from", ALICE_ADDR, "-to", BOB_ADDR, "-subject", "Referral"]);
    }
    cmd.arg("-recip").arg(pki().cert(recipient));
    for k in keyopts {
        cmd.args(["-keyopt", k]);
    }
    check(&mut cmd);
    out
}

/// openssl signs the wrapped message and encrypts it; hisp opens it, reports the algorithms
/// and delivers exactly the original message.
fn openssl_to_hisp(cipher_flag: &str, keyopts: &[&str], cipher: &str, key_transport: &str) {
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob(&format!("openssl {cipher_flag} {keyopts:?}"));
    let signed = openssl_sign(dir.path(), &wrap_rfc822(&msg), ALICE, false);
    let enc = openssl_encrypt(dir.path(), &signed, cipher_flag, keyopts, BOB, true);
    // Without the intermediate in the message, the intermediate itself is the anchor.
    let r = hisp_open(BOB, &pki.cert(INTER), &enc, &[]);
    let v = assert_opened(&r);
    assert_eq!(v["algorithms"]["content_encryption"], cipher, "{v:#}");
    assert_eq!(v["algorithms"]["key_transport"], key_transport, "{v:#}");
    assert_eq!(v["algorithms"]["digest"], "sha256", "{v:#}");
    assert_eq!(v["wrapped"], true, "{v:#}");
    assert_eq!(v["signed_content_type"], "message/rfc822", "{v:#}");
    assert_eq!(v["content_type"], "text/plain", "{v:#}");
    assert_eq!(v["from"], ALICE_ADDR, "{v:#}");
    assert_eq!(v["signer"]["addresses"], serde_json::json!([ALICE_ADDR]));

    let out = dir.path().join("delivered.eml");
    let r = run(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki.cert(BOB))
            .arg("--key")
            .arg(pki.key(BOB))
            .arg("--anchor")
            .arg(pki.cert(INTER))
            .arg("--in")
            .arg(&enc)
            .arg("--out")
            .arg(&out),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&msg),
        "the unwrapped message must be the original, byte for byte"
    );
}

macro_rules! openssl_to_hisp_cases {
    ($($name:ident: $flag:literal, [$($opt:literal),*], $cipher:literal, $kt:literal;)*) => {$(
        #[test]
        fn $name() {
            openssl_to_hisp($flag, &[$($opt),*], $cipher, $kt);
        }
    )*};
}

openssl_to_hisp_cases! {
    applicability_receive_openssl_aes128_cbc_rsa_pkcs1: "-aes128", [], "aes-128-cbc", "rsa-pkcs1-v1_5";
    applicability_receive_openssl_aes128_cbc_rsa_oaep: "-aes128", ["rsa_padding_mode:oaep"], "aes-128-cbc", "rsa-oaep-sha1";
    applicability_receive_openssl_aes256_cbc_rsa_pkcs1: "-aes256", [], "aes-256-cbc", "rsa-pkcs1-v1_5";
    applicability_receive_openssl_aes256_cbc_rsa_oaep: "-aes256", ["rsa_padding_mode:oaep"], "aes-256-cbc", "rsa-oaep-sha1";
    rfc5084_receive_openssl_aes128_gcm_rsa_pkcs1: "-aes-128-gcm", [], "aes-128-gcm", "rsa-pkcs1-v1_5";
    rfc5084_receive_openssl_aes128_gcm_rsa_oaep: "-aes-128-gcm", ["rsa_padding_mode:oaep"], "aes-128-gcm", "rsa-oaep-sha1";
    rfc5084_receive_openssl_aes256_gcm_rsa_pkcs1: "-aes-256-gcm", [], "aes-256-gcm", "rsa-pkcs1-v1_5";
    rfc5084_receive_openssl_aes256_gcm_rsa_oaep: "-aes-256-gcm", ["rsa_padding_mode:oaep"], "aes-256-gcm", "rsa-oaep-sha1";
    rfc4055_receive_openssl_aes256_cbc_rsa_oaep_sha256: "-aes256", ["rsa_padding_mode:oaep", "rsa_oaep_md:sha256"], "aes-256-cbc", "rsa-oaep-sha256";
    rfc4055_receive_openssl_aes128_gcm_rsa_oaep_sha256: "-aes-128-gcm", ["rsa_padding_mode:oaep", "rsa_oaep_md:sha256"], "aes-128-gcm", "rsa-oaep-sha256";
}

/// RFC 5280 §6: the intermediate travels in the SignedData certificates (`-certfile`) and
/// the only anchor is the root.
#[test]
fn rfc5280_receive_openssl_intermediate_in_signature_anchor_root() {
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob("intermediate in the signature");
    let signed = openssl_sign(dir.path(), &wrap_rfc822(&msg), ALICE, true);
    let enc = openssl_encrypt(dir.path(), &signed, "-aes256", &[], BOB, true);
    let v = assert_opened(&hisp_open(BOB, &pki.cert(ROOT), &enc, &[]));
    let chain: Vec<&str> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        [
            "CN=alice@a.example",
            "CN=Hisp Interop Test Intermediate",
            "CN=Hisp Interop Test Root"
        ],
        "{v:#}"
    );
    // Without the intermediate in the message nor --intermediate, no path to the root.
    let signed = openssl_sign(dir.path(), &wrap_rfc822(&msg), ALICE, false);
    let enc = openssl_encrypt(dir.path(), &signed, "-aes256", &[], BOB, true);
    assert_rejected(
        &hisp_open(BOB, &pki.cert(ROOT), &enc, &[]),
        6,
        &["issuer", "not trusted"],
    );
    // ... but `--intermediate` supplies it.
    let inter = pki.cert(INTER);
    let r = hisp_open(
        BOB,
        &pki.cert(ROOT),
        &enc,
        &["--intermediate", inter.to_str().unwrap()],
    );
    assert_opened(&r);
}

/// The signed entity is the RFC 5322 message itself (not wrapped as message/rfc822), with
/// no outer headers: what hisp delivers must still be that message, each header once.
#[test]
fn applicability_receive_openssl_unwrapped_message_without_outer_headers() {
    openssl_unwrapped(false);
}

/// The signed entity is the RFC 5322 message itself, and the envelope carries Direct outer
/// headers (From/To/Subject, as `openssl cms -encrypt -from -to -subject` writes them):
/// hisp must not deliver From/To/Subject/MIME-Version twice (RFC 5322 §3.6 allows one each).
#[test]
fn rfc5322_3_6_receive_openssl_unwrapped_message_with_outer_headers_not_duplicated() {
    openssl_unwrapped(true);
}

fn openssl_unwrapped(outer_headers: bool) {
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob("not wrapped");
    let signed = openssl_sign(dir.path(), &msg, ALICE, true);
    let enc = openssl_encrypt(dir.path(), &signed, "-aes128", &[], BOB, outer_headers);
    let r = hisp_open(BOB, &pki.cert(ROOT), &enc, &[]);
    let v = assert_opened(&r);
    assert_eq!(v["wrapped"], false, "{v:#}");
    assert_eq!(v["from"], ALICE_ADDR, "{v:#}");
    let r = run(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki.cert(BOB))
            .arg("--key")
            .arg(pki.key(BOB))
            .arg("--anchor")
            .arg(pki.cert(ROOT))
            .arg("--in")
            .arg(&enc),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let delivered = String::from_utf8_lossy(&r.stdout).into_owned();
    let (headers, _) = split_entity(&r.stdout);
    let headers = String::from_utf8_lossy(headers).to_ascii_lowercase();
    for field in ["from:", "to:", "subject:", "mime-version:", "message-id:"] {
        let n = headers
            .split("\r\n")
            .filter(|l| l.starts_with(field))
            .count();
        assert_eq!(n, 1, "{field} appears {n} times in:\n{delivered}");
    }
    assert_eq!(
        delivered,
        String::from_utf8_lossy(&msg),
        "the delivered message must be the signed message"
    );
}

const OID_AES128_CBC: &str = "(2.16.840.1.101.3.4.1.2)";
const OID_AES256_CBC: &str = "(2.16.840.1.101.3.4.1.42)";
const OID_AES128_GCM: &str = "(2.16.840.1.101.3.4.1.6)";
const OID_AES256_GCM: &str = "(2.16.840.1.101.3.4.1.46)";
const OID_RSA_PKCS1: &str = "(1.2.840.113549.1.1.1)";
const OID_RSA_OAEP: &str = "(1.2.840.113549.1.1.7)";

/// hisp seals; `openssl cms -cmsout -print` shows the algorithms asked for, `openssl cms
/// -decrypt` decrypts, `openssl cms -verify -CAfile root` (purpose smimesign) verifies, and
/// the verified message/rfc822 entity's body is the original message.
fn hisp_to_openssl(cipher: &str, key_transport: &str, cipher_oid: &str, kt_oid: &str) {
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob(&format!("hisp {cipher} {key_transport}"));
    let sealed = hisp_seal(dir.path(), ALICE, &[BOB], cipher, key_transport, &msg);
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    let (outer, _) = split_entity(&sealed_bytes);
    let smime_type = header_param(outer, "smime-type").unwrap_or_default();
    let expected_type = if cipher.ends_with("gcm") {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    assert!(
        smime_type.eq_ignore_ascii_case(expected_type),
        "smime-type {smime_type:?}, expected {expected_type} (RFC 5751 §3.2.2, RFC 5083)"
    );

    let printed = check(
        openssl()
            .args(["cms", "-cmsout", "-print", "-in"])
            .arg(&sealed),
    );
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains(cipher_oid),
        "{cipher} OID not in:\n{printed}"
    );
    assert!(
        printed.contains(kt_oid),
        "{key_transport} OID not in:\n{printed}"
    );
    let other_kt = if kt_oid == OID_RSA_OAEP {
        OID_RSA_PKCS1
    } else {
        OID_RSA_OAEP
    };
    assert!(!printed.contains(other_kt), "{other_kt} in:\n{printed}");

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
    let dec = std::fs::read(&decrypted).unwrap();
    let (dec_headers, _) = split_entity(&dec);
    let dec_headers_text = String::from_utf8_lossy(dec_headers).to_ascii_lowercase();
    assert!(
        dec_headers_text.contains("multipart/signed"),
        "decrypted entity is not multipart/signed:\n{}",
        String::from_utf8_lossy(&dec)
    );
    assert_eq!(
        header_param(dec_headers, "micalg").as_deref(),
        Some("sha-256"),
        "RFC 5751 §3.5.3.2: micalg names the digest"
    );
    assert_eq!(
        header_param(dec_headers, "protocol").as_deref(),
        Some("application/pkcs7-signature")
    );

    let verified = dir.path().join("verified.eml");
    let r = check(
        openssl()
            .args(["cms", "-verify", "-in"])
            .arg(&decrypted)
            .arg("-CAfile")
            .arg(pki.cert(ROOT))
            .arg("-out")
            .arg(&verified),
    );
    assert!(r.stderr.contains("Verification successful"), "{}", r.stderr);
    let entity = std::fs::read(&verified).unwrap();
    let (headers, body) = split_entity(&entity);
    assert!(
        String::from_utf8_lossy(headers)
            .to_ascii_lowercase()
            .contains("content-type: message/rfc822"),
        "Applicability Statement §3.3: the signed entity wraps the message as message/rfc822:\n{}",
        String::from_utf8_lossy(&entity)
    );
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&msg),
        "the wrapped message must be the original"
    );
}

macro_rules! hisp_to_openssl_cases {
    ($($name:ident: $cipher:literal, $kt:literal, $coid:ident, $koid:ident;)*) => {$(
        #[test]
        fn $name() {
            hisp_to_openssl($cipher, $kt, $coid, $koid);
        }
    )*};
}

hisp_to_openssl_cases! {
    applicability_send_aes128_cbc_rsa_pkcs1_openssl_decrypts_and_verifies: "aes-128-cbc", "rsa-pkcs1-v1_5", OID_AES128_CBC, OID_RSA_PKCS1;
    applicability_send_aes128_cbc_rsa_oaep_openssl_decrypts_and_verifies: "aes-128-cbc", "rsa-oaep", OID_AES128_CBC, OID_RSA_OAEP;
    applicability_send_aes256_cbc_rsa_pkcs1_openssl_decrypts_and_verifies: "aes-256-cbc", "rsa-pkcs1-v1_5", OID_AES256_CBC, OID_RSA_PKCS1;
    applicability_send_aes256_cbc_rsa_oaep_openssl_decrypts_and_verifies: "aes-256-cbc", "rsa-oaep", OID_AES256_CBC, OID_RSA_OAEP;
    rfc5084_send_aes128_gcm_rsa_pkcs1_openssl_decrypts_and_verifies: "aes-128-gcm", "rsa-pkcs1-v1_5", OID_AES128_GCM, OID_RSA_PKCS1;
    rfc5084_send_aes128_gcm_rsa_oaep_openssl_decrypts_and_verifies: "aes-128-gcm", "rsa-oaep", OID_AES128_GCM, OID_RSA_OAEP;
    rfc5084_send_aes256_gcm_rsa_pkcs1_openssl_decrypts_and_verifies: "aes-256-gcm", "rsa-pkcs1-v1_5", OID_AES256_GCM, OID_RSA_PKCS1;
    rfc5084_send_aes256_gcm_rsa_oaep_openssl_decrypts_and_verifies: "aes-256-gcm", "rsa-oaep", OID_AES256_GCM, OID_RSA_OAEP;
}

/// RFC 5652 §6.1: one RecipientInfo per recipient; each decrypts with its own key alone.
fn multiple_recipients(recipients: &[&str]) {
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob("several recipients");
    let sealed = hisp_seal(
        dir.path(),
        ALICE,
        recipients,
        "aes-256-cbc",
        "rsa-pkcs1-v1_5",
        &msg,
    );
    for r in recipients {
        let decrypted = dir.path().join(format!("decrypted-{r}.eml"));
        check(
            openssl()
                .args(["cms", "-decrypt", "-in"])
                .arg(&sealed)
                .arg("-recip")
                .arg(pki.cert(r))
                .arg("-inkey")
                .arg(pki.key(r))
                .arg("-out")
                .arg(&decrypted),
        );
        let verified = dir.path().join(format!("verified-{r}.eml"));
        check(
            openssl()
                .args(["cms", "-verify", "-in"])
                .arg(&decrypted)
                .arg("-CAfile")
                .arg(pki.cert(ROOT))
                .arg("-out")
                .arg(&verified),
        );
        let entity = std::fs::read(&verified).unwrap();
        assert_eq!(split_entity(&entity).1, &msg[..], "recipient {r}");
        // hisp agrees, for each recipient's own key.
        assert_opened(&hisp_open(r, &pki.cert(ROOT), &sealed, &[]));
    }
}

#[test]
fn rfc5652_6_1_two_recipients_each_decrypt_with_openssl() {
    multiple_recipients(&[BOB, CAROL]);
}

#[test]
fn rfc5652_6_1_three_recipients_each_decrypt_with_openssl() {
    multiple_recipients(&[BOB, CAROL, C_DOMAIN]);
}
