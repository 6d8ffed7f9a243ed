//! Proves the DESIGN §3 CLI contract outside seal/open interop: `hisp init` writes a working,
//! loadable instance (keys 0600, refuses to overwrite without --force, CA verifies its domain
//! certificate with openssl) whose files two domains can exchange mail with; `hisp demo` runs
//! the whole exchange; usage errors exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const INIT_FILES: [&str; 5] = ["hisp.toml", "ca.pem", "ca.key", "domain.pem", "domain.key"];

fn init(dir: &Path, domain: &str, force: bool) -> Run {
    let mut cmd = hisp();
    cmd.args(["init", "--domain", domain, "--dir"]).arg(dir);
    if force {
        cmd.arg("--force");
    }
    run(&mut cmd, None)
}

/// DESIGN §3 `hisp init`: hisp.toml, ca.pem, ca.key, domain.pem, domain.key; the keys are
/// private (0600); the configuration loads and names the domain.
#[test]
fn design_3_init_writes_instance_with_private_keys() {
    let tmp = workdir();
    let dir = tmp.path().join("d");
    let r = init(&dir, "d.example", false);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_panic(&r);
    for f in INIT_FILES {
        let p = dir.join(f);
        assert!(p.is_file(), "{f} not written");
        assert!(std::fs::metadata(&p).unwrap().len() > 0, "{f} is empty");
    }
    for key in ["ca.key", "domain.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key} has mode {mode:o}");
    }
    let config = hisp_server::config::Config::load(&dir.join("hisp.toml"))
        .unwrap_or_else(|e| panic!("hisp init's hisp.toml does not load: {e}"));
    assert_eq!(config.domains.len(), 1);
    assert_eq!(config.domains[0].name, "d.example");
    assert!(config.validate().is_empty(), "{:?}", config.validate());
}

/// `hisp init` twice into the same folder fails without --force and names the file; the
/// first instance is left untouched; with --force it is replaced.
#[test]
fn design_3_init_refuses_to_overwrite_without_force() {
    let tmp = workdir();
    let dir = tmp.path();
    assert_eq!(init(dir, "d.example", false).code, 0);
    let before = std::fs::read(dir.join("ca.key")).unwrap();
    let r = init(dir, "d.example", false);
    assert_ne!(r.code, 0, "a second init must fail without --force");
    assert_no_panic(&r);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    let r = init(dir, "d.example", true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    let mode = std::fs::metadata(dir.join("domain.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// `hisp init` output checks out with an independent implementation: `openssl verify
/// -CAfile ca.pem domain.pem`, and domain.pem is domain-bound (dNSName SAN).
#[test]
fn rfc5280_init_domain_cert_verifies_with_openssl() {
    let tmp = workdir();
    let dir = tmp.path();
    assert_eq!(init(dir, "d.example", false).code, 0);
    let r = check(
        openssl()
            .args(["verify", "-CAfile"])
            .arg(dir.join("ca.pem"))
            .arg(dir.join("domain.pem")),
    );
    assert!(String::from_utf8_lossy(&r.stdout).contains(": OK"));
    let r = check(
        openssl()
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(dir.join("domain.pem")),
    );
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("DNS:d.example"),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    check(
        openssl()
            .args(["verify", "-purpose", "smimesign", "-CAfile"])
            .arg(dir.join("ca.pem"))
            .arg(dir.join("domain.pem")),
    );
}

/// Two `hisp init` domains exchange mail both ways, each trusting the other's ca.pem.
#[test]
fn applicability_two_init_domains_seal_and_open_each_other() {
    let tmp = workdir();
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    assert_eq!(init(&one, "one.example", false).code, 0);
    assert_eq!(init(&two, "two.example", false).code, 0);
    for (from_dir, from, to_dir, to) in [
        (&one, "dr.a@one.example", &two, "dr.b@two.example"),
        (&two, "dr.b@two.example", &one, "dr.a@one.example"),
    ] {
        let msg = message(from, to, "between init'd domains", "hello\n");
        let input = write(tmp.path(), "msg.eml", &msg);
        let sealed = tmp.path().join("sealed.eml");
        check(
            hisp()
                .arg("seal")
                .arg("--signer-cert")
                .arg(from_dir.join("domain.pem"))
                .arg("--signer-key")
                .arg(from_dir.join("domain.key"))
                .arg("--recipient-cert")
                .arg(to_dir.join("domain.pem"))
                .arg("--in")
                .arg(&input)
                .arg("--out")
                .arg(&sealed),
        );
        let open = |anchor: &Path, json: bool| {
            let mut cmd = hisp();
            cmd.arg("open")
                .arg("--cert")
                .arg(to_dir.join("domain.pem"))
                .arg("--key")
                .arg(to_dir.join("domain.key"))
                .arg("--anchor")
                .arg(anchor)
                .arg("--in")
                .arg(&sealed);
            if json {
                cmd.arg("--json");
            }
            run(&mut cmd, None)
        };
        let v = assert_opened(&open(&from_dir.join("ca.pem"), true));
        assert_eq!(v["binding"]["kind"], "domain", "{v:#}");
        let r = open(&from_dir.join("ca.pem"), false);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&msg)
        );
        // The recipient's own CA is not the sender's: untrusted.
        assert_rejected(&open(&to_dir.join("ca.pem"), true), 6, &["not trusted"]);
    }
}

/// DESIGN §3 `hisp demo`: the whole exchange on loopback, processed and dispatched MDNs.
#[test]
fn design_3_demo_exits_0_with_processed_and_dispatched() {
    let tmp = workdir();
    let r = run(hisp().arg("demo").current_dir(tmp.path()), None);
    assert_no_panic(&r);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code, 0, "stdout:\n{out}\nstderr:\n{}", r.stderr);
    for word in ["processed", "dispatched"] {
        assert!(out.contains(word), "no {word:?} in:\n{out}");
    }
}

/// `hisp bench exchange` (issue 4's figures) runs end to end on a small load and prints
/// every figure it promises: the table, the CPU line that says where the gap to the
/// ceiling is, and the hop latency. Figures only: their values are not asserted.
#[test]
fn bench_exchange_prints_throughput_cpu_and_hop_latency() {
    let tmp = workdir();
    let args = [
        "bench",
        "exchange",
        "--messages",
        "30",
        "--sizes",
        "10k",
        "--seconds",
        "0.5",
        "--rss-mib",
        "0",
    ];
    let r = run(hisp().args(args).current_dir(tmp.path()), None);
    assert_no_panic(&r);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code, 0, "stdout:\n{out}\nstderr:\n{}", r.stderr);
    for want in [
        "exchanges/s",
        "ms of CPU per exchange",
        "the ceiling's work is",
        "hop latency at half load",
        "median round: p50",
        "rounds in order, p50/p99 ms:",
        "hops pooled: p50",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

/// Clap usage errors are exit 2 with a usage line, for `hisp open` with no arguments and
/// an unknown flag.
#[test]
fn design_3_open_without_arguments_is_usage_error() {
    let r = run(hisp().arg("open"), None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("Usage"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_no_panic(&r);
    let r = run(hisp().args(["open", "--no-such-flag"]), None);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// `hisp seal` rejects a cipher outside the list with exit 2 and names the choices.
#[test]
fn design_3_seal_unknown_cipher_is_usage_error() {
    let pki = pki();
    let r = run(
        hisp()
            .arg("seal")
            .arg("--signer-cert")
            .arg(pki.chain(ALICE))
            .arg("--signer-key")
            .arg(pki.key(ALICE))
            .arg("--recipient-cert")
            .arg(pki.cert(BOB))
            .args(["--cipher", "rc2-40"]),
        Some(&alice_to_bob("bad cipher")),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("aes-256-cbc"), "{}", r.stderr);
    assert_no_panic(&r);
}

/// DESIGN §3: seal and open work through stdin/stdout too (no --in/--out).
#[test]
fn design_3_seal_and_open_through_stdin_stdout() {
    let pki = pki();
    let msg = alice_to_bob("pipes");
    let sealed = check_with(
        hisp()
            .arg("seal")
            .arg("--signer-cert")
            .arg(pki.chain(ALICE))
            .arg("--signer-key")
            .arg(pki.key(ALICE))
            .arg("--recipient-cert")
            .arg(pki.cert(BOB)),
        Some(&msg),
    );
    let opened = check_with(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki.cert(BOB))
            .arg("--key")
            .arg(pki.key(BOB))
            .arg("--anchor")
            .arg(pki.cert(ROOT)),
        Some(&sealed.stdout),
    );
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout),
        String::from_utf8_lossy(&msg)
    );
}
