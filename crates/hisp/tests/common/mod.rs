//! Shared fixtures for the `hisp` CLI integration tests: a test PKI made with the `openssl`
//! CLI (never with hisp, so interop is tested against an independent implementation),
//! runners for `hisp`/`openssl` with a timeout, RFC 5322 message builders, and the checks
//! every rejected `hisp open` must pass (exit code, one stderr line per error, JSON verdict).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test.
pub const HISP: &str = env!("CARGO_BIN_EXE_hisp");
/// Password of every PKCS#12 file of the test PKI.
pub const P12_PASSWORD: &str = "test";
/// No single command of these tests may take longer (debug build, 2 cores).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// A rejected `hisp open` must answer at least this fast.
pub const QUICK: Duration = Duration::from_secs(10);

mod pki;
pub use pki::*;

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr, lossily decoded.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// stdout parsed as the one JSON object `hisp open --json` prints.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}); exit {}; stdout {:?}; stderr {:?}",
                self.code,
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        })
    }
    /// The `errors` array of the JSON verdict.
    pub fn json_errors(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .expect("errors is an array")
            .iter()
            .map(|e| e.as_str().expect("errors are strings").to_string())
            .collect()
    }
}

/// Run `cmd` (stdin from `input`, or empty), killing it after [`TIMEOUT`].
pub fn run(cmd: &mut Command, input: Option<&[u8]>) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.map(<[u8]>::to_vec).unwrap_or_default();
    let writer = std::thread::spawn(move || {
        // The child may exit without reading; a broken pipe is not our failure.
        let _ = stdin.write_all(&data);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Run `cmd` and insist it succeeds.
pub fn check(cmd: &mut Command) -> Run {
    check_with(cmd, None)
}

/// Run `cmd` with `input` on stdin and insist it succeeds.
pub fn check_with(cmd: &mut Command, input: Option<&[u8]>) -> Run {
    let r = run(cmd, input);
    assert_eq!(
        r.code,
        0,
        "{cmd:?} failed: exit {}\nstderr: {}\nstdout: {}",
        r.code,
        r.stderr,
        String::from_utf8_lossy(&r.stdout)
    );
    r
}

/// `hisp` with no arguments yet.
pub fn hisp() -> Command {
    let mut c = Command::new(HISP);
    c.env_remove("HISP_LOG");
    c
}

/// Run `hisp ARGS` (with the [`TIMEOUT`]): exit status, stdout and stderr as text.
pub fn hisp_run(args: &[&str]) -> (i32, String, String) {
    let r = run(hisp().args(args), None);
    (
        r.code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        r.stderr,
    )
}

/// `openssl` with no arguments yet.
pub fn openssl() -> Command {
    Command::new("openssl")
}

/// A fresh working directory for one test.
pub fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hisp-test-")
        .tempdir()
        .unwrap()
}

/// An RFC 5322 message with CRLF line ends and a unique Message-ID.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let domain = from.rsplit('@').next().unwrap_or("example");
    let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 01 Jun 2026 10:00:00 +0000\r\n\
         Message-ID: <t{}.{n}@{domain}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{body}",
        std::process::id()
    )
    .into_bytes()
}

/// The default test message from Alice to Bob.
pub fn alice_to_bob(subject: &str) -> Vec<u8> {
    message(
        ALICE_ADDR,
        BOB_ADDR,
        subject,
        "Dear Bob,\nplease find the referral below.\n\nPatient: Jane Doe, DOB 1970-01-01\n-- \nAlice\n",
    )
}

/// The whole message as a `message/rfc822` entity (Applicability Statement: wrap first).
pub fn wrap_rfc822(msg: &[u8]) -> Vec<u8> {
    let mut v = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
    v.extend_from_slice(msg);
    v
}

/// Write `bytes` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `hisp seal` of `msg` signed by `signer` (its chain file, so the intermediate rides along)
/// for `recipients`; returns the sealed file.
pub fn hisp_seal(
    dir: &Path,
    signer: &str,
    recipients: &[&str],
    cipher: &str,
    key_transport: &str,
    msg: &[u8],
) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pki = pki();
    let input = write(dir, &format!("plain-{n}.eml"), msg);
    let out = dir.join(format!("sealed-{n}-{cipher}-{key_transport}.eml"));
    let mut cmd = hisp();
    cmd.arg("seal")
        .arg("--signer-cert")
        .arg(pki.chain(signer))
        .arg("--signer-key")
        .arg(pki.key(signer))
        .args(["--cipher", cipher, "--key-transport", key_transport])
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&out);
    for r in recipients {
        cmd.arg("--recipient-cert").arg(pki.cert(r));
    }
    check(&mut cmd);
    out
}

/// `hisp open --json` as `recipient` with `anchor`, plus `extra` arguments.
pub fn hisp_open(recipient: &str, anchor: &Path, input: &Path, extra: &[&str]) -> Run {
    let pki = pki();
    run(
        hisp()
            .arg("open")
            .arg("--cert")
            .arg(pki.cert(recipient))
            .arg("--key")
            .arg(pki.key(recipient))
            .arg("--anchor")
            .arg(anchor)
            .arg("--in")
            .arg(input)
            .arg("--json")
            .args(extra),
        None,
    )
}

/// Assert `hisp open` succeeded completely: exit 0 and every JSON check true.
pub fn assert_opened(r: &Run) -> Value {
    let v = r.json();
    assert_eq!(r.code, 0, "exit {}: {v:#}\nstderr: {}", r.code, r.stderr);
    for k in [
        "decrypted",
        "signature_valid",
        "trusted",
        "chain_trusted",
        "bound",
    ] {
        assert_eq!(v[k], Value::Bool(true), "{k} in {v:#}");
    }
    assert_eq!(v["errors"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["exit_code"], 0, "{v:#}");
    assert_no_panic(r);
    v
}

/// No panic message on stderr.
pub fn assert_no_panic(r: &Run) {
    assert!(
        !r.stderr.contains("panicked"),
        "hisp panicked:\n{}",
        r.stderr
    );
}

/// Assert a rejected `hisp open --json`: exit `code`; the JSON verdict carries the errors
/// with the same `exit_code`; stderr holds exactly one `hisp open: <reason>` line per error
/// (warnings aside); one reason mentions one of `needles` (case-insensitive); no panic;
/// answered within [`QUICK`]. Returns the verdict.
pub fn assert_rejected(r: &Run, code: i32, needles: &[&str]) -> Value {
    assert_no_panic(r);
    assert_eq!(
        r.code,
        code,
        "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
        r.code,
        String::from_utf8_lossy(&r.stdout),
        r.stderr
    );
    assert!(
        r.elapsed < QUICK,
        "took {:?} to reject (limit {QUICK:?})",
        r.elapsed
    );
    let v = r.json();
    assert_eq!(v["exit_code"], code, "{v:#}");
    let errors = r.json_errors();
    assert!(
        !errors.is_empty(),
        "JSON errors empty for exit {code}: {v:#}"
    );
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("hisp open: warning: "))
        .collect();
    let expected: Vec<String> = errors.iter().map(|e| format!("hisp open: {e}")).collect();
    assert_eq!(
        lines, expected,
        "stderr must hold exactly one `hisp open: <reason>` line per JSON error"
    );
    let all = errors.join("\n").to_ascii_lowercase();
    assert!(
        needles
            .iter()
            .any(|n| all.contains(&n.to_ascii_lowercase())),
        "no error mentions any of {needles:?}: {errors:#?}"
    );
    v
}

/// Split a MIME entity into its header block and body at the first empty line.
pub fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    for (sep, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(i) = entity.windows(len).position(|w| w == sep) {
            return (&entity[..i], &entity[i + len..]);
        }
    }
    (entity, &[])
}

/// The value of `param` in a header line like `Content-Type: x; boundary="b"`.
pub fn header_param(headers: &[u8], param: &str) -> Option<String> {
    let text = String::from_utf8_lossy(headers);
    let needle = format!("{param}=");
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&needle)? + needle.len();
    let rest = &text[at..];
    let v = if let Some(stripped) = rest.strip_prefix('"') {
        stripped.split('"').next()?
    } else {
        rest.split([';', '\r', '\n', ' ']).next()?
    };
    Some(v.to_string())
}

/// The two parts of a multipart/signed entity: (signed entity bytes, signature part).
/// The signed bytes exclude the CRLF before the next delimiter (RFC 2046 §5.1.1).
pub fn split_multipart_signed(entity: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (headers, body) = split_entity(entity);
    let boundary = header_param(headers, "boundary").expect("multipart/signed has a boundary");
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let rest = body;
    let mut starts = Vec::new();
    let mut i = 0;
    while i + delim.len() <= rest.len() {
        if rest[i..].starts_with(&delim) && (i == 0 || rest[i - 1] == b'\n') {
            starts.push(i);
            i += delim.len();
        } else {
            i += 1;
        }
    }
    assert!(starts.len() >= 3, "multipart/signed needs 2 parts");
    for w in starts.windows(2).take(2) {
        let mut s = w[0] + delim.len();
        while rest[s] != b'\n' {
            s += 1;
        }
        s += 1;
        let mut e = w[1];
        if e > 0 && rest[e - 1] == b'\n' {
            e -= 1;
        }
        if e > 0 && rest[e - 1] == b'\r' {
            e -= 1;
        }
        parts.push(rest[s..e].to_vec());
    }
    (parts.remove(0), parts.remove(0))
}

/// `text` with `from` replaced once by `to` (same length), panicking when absent.
pub fn replace_once(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = text
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    let mut v = text[..i].to_vec();
    v.extend_from_slice(to);
    v.extend_from_slice(&text[i + from.len()..]);
    v
}
