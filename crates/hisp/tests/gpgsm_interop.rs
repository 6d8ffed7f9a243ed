//! Proves `hisp` interoperates with GnuPG's gpgsm (libksba, a CMS implementation unrelated to
//! OpenSSL): gpgsm decrypts and verifies what `hisp seal` writes (Applicability Statement
//! defaults: AES-256-CBC, RSA PKCS#1 v1.5, SHA-256, detached multipart/signed), and `hisp open`
//! accepts gpgsm's BER-encoded EnvelopedData around detached or opaque SignedData.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway GNUPGHOME (mode 0700) holding Bob's and Alice's keys (imported from PKCS#12)
/// and the root and intermediate certificates, the root marked trusted. Dropping it stops
/// the gpg-agent it started, also when the test fails.
struct GnupgHome {
    dir: tempfile::TempDir,
}

impl GnupgHome {
    fn new() -> GnupgHome {
        for tool in ["gpgsm", "gpgconf"] {
            let found = Command::new(tool).arg("--version").output();
            assert!(
                found.is_ok_and(|o| o.status.success()),
                "{tool} is not installed: these interop tests need GnuPG's gpgsm \
                 (scripts/test installs it; or: apt-get install gpgsm)"
            );
        }
        let pki = pki();
        // Short path: gpg-agent's socket path must fit in sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("hisp-gnupg-")
            .tempdir_in("/tmp")
            .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let home = GnupgHome { dir };
        // Loopback pinentry lets --passphrase-fd answer the agent. A fixed, minimal S2K count
        // skips the agent's calibration (~100 ms) and costly key protection on import.
        write(
            home.path(),
            "gpg-agent.conf",
            b"allow-loopback-pinentry\ns2k-count 65536\n",
        );
        // No CRL fetching and no dirmngr: the tests run offline.
        write(
            home.path(),
            "gpgsm.conf",
            b"disable-crl-checks\ndisable-dirmngr\n",
        );
        let fpr = pki.sha1_fingerprint(ROOT);
        let colons: Vec<String> = fpr
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        // trustlist.txt: "<SHA-1 fingerprint> S relax" marks the root trusted for S/MIME.
        write(
            home.path(),
            "trustlist.txt",
            format!("{} S relax\n", colons.join(":")).as_bytes(),
        );
        check(
            home.gpgsm()
                .arg("--import")
                .arg(pki.cert(ROOT))
                .arg(pki.cert(INTER)),
        );
        for who in [BOB, ALICE] {
            home.import_p12(who);
        }
        let secrets = check(home.gpgsm().arg("--list-secret-keys").arg("--with-colons"));
        let listed = String::from_utf8_lossy(&secrets.stdout);
        for who in [BOB, ALICE] {
            let fpr = pki.sha1_fingerprint(who);
            assert!(
                listed.contains(&fpr),
                "{who}'s key was not imported into gpgsm:\n{listed}"
            );
        }
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Import `who`'s key and certificate from PKCS#12. gpgsm 2.2's PKCS#12 reader rejects
    /// about one valid OpenSSL file in sixty ("decryption failed; trying charset ...", then
    /// "error parsing or decrypting the PKCS#12 file"): its check of the decrypted bags
    /// misjudges some random salts. OpenSSL reads those files, so a rejected one is exported
    /// again, with a fresh salt, from the same key and certificate.
    fn import_p12(&self, who: &str) {
        let pki = pki();
        let mut p12 = pki.p12(who);
        for attempt in 1..=5 {
            let r = run(
                self.gpgsm_with_passphrase().arg("--import").arg(&p12),
                Some(format!("{P12_PASSWORD}\n").as_bytes()),
            );
            if r.code == 0 {
                return;
            }
            assert!(
                r.stderr
                    .contains("error parsing or decrypting the PKCS#12 file")
                    && attempt < 5,
                "gpgsm could not import {who}'s PKCS#12 (attempt {attempt}):\n{}",
                r.stderr
            );
            p12 = self.path().join(format!("{who}-{attempt}.p12"));
            pki.export_p12(who, &p12);
        }
    }

    fn gpgsm(&self) -> Command {
        let mut c = Command::new("gpgsm");
        c.env("GNUPGHOME", self.path())
            .args(["--batch", "--no-tty", "--status-fd", "1"]);
        c
    }

    /// gpgsm that reads the passphrase from stdin (loopback pinentry).
    fn gpgsm_with_passphrase(&self) -> Command {
        let mut c = self.gpgsm();
        c.args(["--pinentry-mode", "loopback", "--passphrase-fd", "0"]);
        c
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "all"])
            .output();
    }
}

/// Status lines (`[GNUPG:] KEYWORD ...`) gpgsm wrote on stdout.
fn status(r: &Run) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// The body of a MIME entity (gpgsm reads bare base64, not a MIME message).
fn mime_body(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    split_entity(&bytes).1.to_vec()
}

/// An application/pkcs7-mime entity around gpgsm's base64 output, as a mail client makes it.
fn pkcs7_mime(smime_type: &str, base64: &[u8], outer: &str) -> Vec<u8> {
    let mut v = format!(
        "{outer}MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; \
         smime-type={smime_type}; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=smime.p7m\r\n\r\n"
    )
    .into_bytes();
    v.extend_from_slice(&crlf(base64));
    v
}

fn crlf(text: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(text).replace("\r\n", "\n");
    s.replace('\n', "\r\n").into_bytes()
}

/// `gpgsm --encrypt` of `input` for Bob, base64, wrapped as a Direct enveloped-data message.
fn gpgsm_encrypt_for_bob(home: &GnupgHome, dir: &Path, input: &Path) -> PathBuf {
    let b64 = dir.join("gpgsm-encrypted.b64");
    let r = check(
        home.gpgsm()
            .args(["--encrypt", "--base64", "--recipient"])
            .arg(pki().sha1_fingerprint(BOB))
            .arg("--output")
            .arg(&b64)
            .arg(input),
    );
    assert!(r.stderr.contains("encrypted data created"), "{}", r.stderr);
    let outer = format!("From: {ALICE_ADDR}\r\nTo: {BOB_ADDR}\r\n");
    write(
        dir,
        "gpgsm-encrypted.eml",
        &pkcs7_mime("enveloped-data", &std::fs::read(&b64).unwrap(), &outer),
    )
}

/// hisp → gpgsm: `gpgsm --decrypt` of a `hisp seal` (defaults) yields the multipart/signed
/// entity, and `gpgsm --verify` of its detached signature over its first part is GOODSIG,
/// VALIDSIG and TRUST_FULLY with the root as the only trusted certificate.
#[test]
fn applicability_send_defaults_gpgsm_decrypts_and_verifies() {
    let home = GnupgHome::new();
    let dir = workdir();
    let msg = alice_to_bob("to gpgsm");
    // Defaults: no --cipher / --key-transport.
    let input = write(dir.path(), "plain.eml", &msg);
    let sealed = dir.path().join("sealed.eml");
    check(
        hisp()
            .arg("seal")
            .arg("--signer-cert")
            .arg(pki().chain(ALICE))
            .arg("--signer-key")
            .arg(pki().key(ALICE))
            .arg("--recipient-cert")
            .arg(pki().cert(BOB))
            .arg("--in")
            .arg(&input)
            .arg("--out")
            .arg(&sealed),
    );
    let b64 = write(dir.path(), "sealed.b64", &mime_body(&sealed));
    let decrypted = dir.path().join("gpgsm-decrypted.eml");
    let r = check_with(
        home.gpgsm_with_passphrase()
            .args(["--verbose", "--assume-base64", "--decrypt", "--output"])
            .arg(&decrypted)
            .arg(&b64),
        Some(format!("{P12_PASSWORD}\n").as_bytes()),
    );
    let st = status(&r);
    assert!(st.contains("DECRYPTION_OKAY"), "{st}\n{}", r.stderr);
    // With --verbose gpgsm names the content cipher: the default is AES-256-CBC.
    assert!(r.stderr.contains("AES256.CBC"), "{}", r.stderr);

    let entity = std::fs::read(&decrypted).unwrap();
    let (headers, _) = split_entity(&entity);
    assert!(
        String::from_utf8_lossy(headers)
            .to_ascii_lowercase()
            .contains("multipart/signed"),
        "gpgsm output is not the multipart/signed entity:\n{}",
        String::from_utf8_lossy(&entity)
    );
    let (signed, sig_part) = split_multipart_signed(&entity);
    let (sig_headers, sig_body) = split_entity(&sig_part);
    assert!(String::from_utf8_lossy(sig_headers)
        .to_ascii_lowercase()
        .contains("application/pkcs7-signature"));
    let content = write(dir.path(), "signed-part.bin", &signed);
    let sig = write(dir.path(), "smime.p7s.b64", sig_body);
    let r = check(
        home.gpgsm()
            .args(["--assume-base64", "--verify"])
            .arg(&sig)
            .arg(&content),
    );
    let st = status(&r);
    for keyword in ["GOODSIG", "VALIDSIG", "TRUST_FULLY"] {
        assert!(st.contains(keyword), "no {keyword} in:\n{st}\n{}", r.stderr);
    }
    assert!(
        r.stderr.contains(ALICE_ADDR),
        "gpgsm names the signer: {}",
        r.stderr
    );
    // The signed part is the message/rfc822 wrapper around the original message.
    let (wrapper_headers, inner) = split_entity(&signed);
    assert!(String::from_utf8_lossy(wrapper_headers)
        .to_ascii_lowercase()
        .contains("message/rfc822"));
    assert_eq!(
        String::from_utf8_lossy(inner),
        String::from_utf8_lossy(&msg)
    );
}

/// gpgsm → hisp: an OpenSSL-signed (detached, wrapped) message encrypted by `gpgsm --encrypt`
/// (BER indefinite lengths, AES-128-CBC, RSA PKCS#1 v1.5) opens in hisp.
#[test]
fn applicability_receive_gpgsm_encrypted_openssl_signed() {
    let home = GnupgHome::new();
    let dir = workdir();
    let pki = pki();
    let msg = alice_to_bob("openssl signed, gpgsm encrypted");
    let to_sign = write(dir.path(), "wrapped.eml", &wrap_rfc822(&msg));
    let signed = dir.path().join("signed.eml");
    check(
        openssl()
            .args(["cms", "-sign", "-md", "sha256", "-signer"])
            .arg(pki.cert(ALICE))
            .arg("-inkey")
            .arg(pki.key(ALICE))
            .arg("-certfile")
            .arg(pki.cert(INTER))
            .arg("-in")
            .arg(&to_sign)
            .arg("-out")
            .arg(&signed),
    );
    // The signed entity goes to gpgsm with CRLF line ends, as a mail client would hand it.
    let signed_crlf = write(
        dir.path(),
        "signed-crlf.eml",
        &crlf(&std::fs::read(&signed).unwrap()),
    );
    let enc = gpgsm_encrypt_for_bob(&home, dir.path(), &signed_crlf);
    assert_gpgsm_message_opens(&enc, &msg);
}

/// gpgsm → hisp, gpgsm alone: `gpgsm --detach-sign` by Alice, assembled as multipart/signed
/// (RFC 5751 §3.5.3), then `gpgsm --encrypt` for Bob (gpgsm 2.2 cannot `--sign --encrypt`
/// in one step) opens in hisp.
#[test]
fn rfc5751_3_5_3_receive_gpgsm_detached_signed_then_encrypted() {
    let home = GnupgHome::new();
    let dir = workdir();
    let msg = alice_to_bob("gpgsm detached signature");
    let wrapped = wrap_rfc822(&msg);
    let to_sign = write(dir.path(), "wrapped.eml", &wrapped);
    let sig = dir.path().join("smime.p7s.b64");
    let r = check_with(
        home.gpgsm_with_passphrase()
            .args(["--local-user", ALICE_ADDR, "--detach-sign", "--base64"])
            .arg("--output")
            .arg(&sig)
            .arg(&to_sign),
        Some(format!("{P12_PASSWORD}\n").as_bytes()),
    );
    assert!(status(&r).contains("SIG_CREATED"), "{}", status(&r));
    let boundary = "gpgsm-boundary-0123456789";
    let mut multipart = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/signed; \
         protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{boundary}\"\r\n\r\n\
         This is an S/MIME signed message\r\n\r\n--{boundary}\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(&wrapped);
    multipart.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=smime.p7s\r\n\r\n"
        )
        .as_bytes(),
    );
    multipart.extend_from_slice(&crlf(&std::fs::read(&sig).unwrap()));
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let signed = write(dir.path(), "signed.eml", &multipart);
    let enc = gpgsm_encrypt_for_bob(&home, dir.path(), &signed);
    assert_gpgsm_message_opens(&enc, &msg);
}

/// gpgsm → hisp with opaque signing (RFC 5751 §3.5.2: application/pkcs7-mime;
/// smime-type=signed-data, the content encapsulated in the SignedData), then encrypted.
#[test]
fn rfc5751_3_5_2_receive_gpgsm_opaque_signed_data_then_encrypted() {
    let home = GnupgHome::new();
    let dir = workdir();
    let msg = alice_to_bob("gpgsm opaque signature");
    let to_sign = write(dir.path(), "wrapped.eml", &wrap_rfc822(&msg));
    let sig = dir.path().join("opaque.b64");
    check_with(
        home.gpgsm_with_passphrase()
            .args(["--local-user", ALICE_ADDR, "--sign", "--base64"])
            .arg("--output")
            .arg(&sig)
            .arg(&to_sign),
        Some(format!("{P12_PASSWORD}\n").as_bytes()),
    );
    let signed = write(
        dir.path(),
        "opaque.eml",
        &pkcs7_mime("signed-data", &std::fs::read(&sig).unwrap(), ""),
    );
    let enc = gpgsm_encrypt_for_bob(&home, dir.path(), &signed);
    assert_gpgsm_message_opens(&enc, &msg);
}

fn assert_gpgsm_message_opens(enc: &Path, msg: &[u8]) {
    let pki = pki();
    let r = hisp_open(BOB, &pki.cert(ROOT), enc, &[]);
    let v = assert_opened(&r);
    assert_eq!(v["wrapped"], true, "{v:#}");
    assert_eq!(v["from"], ALICE_ADDR, "{v:#}");
    assert_eq!(v["algorithms"]["key_transport"], "rsa-pkcs1-v1_5", "{v:#}");
    assert_eq!(v["algorithms"]["digest"], "sha256", "{v:#}");
    let out = enc.with_file_name("delivered.eml");
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
            .arg(enc)
            .arg("--out")
            .arg(&out),
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(msg)
    );
}
