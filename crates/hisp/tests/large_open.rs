//! `hisp open` on a sealed message over 8 MiB reads its base64 body decoding as it goes
//! (so the base64 form is never held whole): the verdict and the unwrapped message are the
//! same as for any other, with CRLF or LF line ends, and a corrupted body still gets the
//! opener's precise error. (The memory it saves is measured by `hisp bench seal-open
//! --rss-mib 100`: 1.16 x the message instead of 1.51 x.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
mod common;

/// Run `hisp ARGS` with the shared runner's timeout.
fn hisp(args: &[&str]) -> common::Run {
    common::run(common::hisp().args(args), None)
}

fn init(root: &Path, domain: &str) -> std::path::PathBuf {
    let dir = root.join(domain);
    let out = hisp(&["init", "--domain", domain, "--dir", dir.to_str().unwrap()]);
    assert!(out.code == 0, "{}", out.stderr);
    dir
}

#[test]
fn large_sealed_message_opens_the_same_streamed() {
    let root = tempfile::tempdir().unwrap();
    let a = init(root.path(), "a.example");
    let b = init(root.path(), "b.example");
    let mut msg = b"From: dr.a@a.example\r\nTo: dr.b@b.example\r\nSubject: scan\r\n\r\n".to_vec();
    while msg.len() < 9 << 20 {
        msg.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\r\n",
        );
    }
    let p = |d: &Path, f: &str| d.join(f).to_str().unwrap().to_string();
    let (inp, sealed, out) = (
        p(root.path(), "m.eml"),
        p(root.path(), "s.eml"),
        p(root.path(), "o.eml"),
    );
    std::fs::write(&inp, &msg).unwrap();
    let s = hisp(&[
        "seal",
        "--signer-cert",
        &p(&a, "domain.pem"),
        "--signer-key",
        &p(&a, "domain.key"),
        "--recipient-cert",
        &p(&b, "domain.pem"),
        "--in",
        &inp,
        "--out",
        &sealed,
    ]);
    assert!(s.code == 0, "{}", s.stderr);
    let open = |file: &str| {
        hisp(&[
            "open",
            "--cert",
            &p(&b, "domain.pem"),
            "--key",
            &p(&b, "domain.key"),
            "--anchor",
            &p(&a, "ca.pem"),
            "--in",
            file,
            "--out",
            &out,
        ])
    };
    let o = open(&sealed);
    assert!(o.code == 0, "{}", o.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), msg);

    // LF line ends.
    let lf: Vec<u8> = std::fs::read(&sealed)
        .unwrap()
        .into_iter()
        .filter(|b| *b != b'\r')
        .collect();
    let lf_file = p(root.path(), "lf.eml");
    std::fs::write(&lf_file, lf).unwrap();
    std::fs::remove_file(&out).unwrap();
    let o = open(&lf_file);
    assert!(o.code == 0, "{}", o.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), msg);

    // A character that is not base64 in the middle: the precise error, exit 4.
    let mut bad = std::fs::read(&sealed).unwrap();
    let mid = bad.len() / 2;
    bad[mid] = b'!';
    let bad_file = p(root.path(), "bad.eml");
    std::fs::write(&bad_file, bad).unwrap();
    let o = open(&bad_file);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(o.stderr.contains("base64"), "{}", o.stderr);
}
