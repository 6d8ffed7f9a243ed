//! The directory's `list` and `remove` commands (issue 4, operator commands: a user who
//! left, a CA no longer trusted, a stale route or certificate must be taken out), against a
//! running daemon:
//! - `user list --json` lists; after `user remove`, the daemon refuses the user's REST login
//!   (RFC 9110 §11.6.1: 401) although it had just let it in, and refuses mail for the
//!   address at RCPT (RFC 5321 §4.2.2: 550); a submission session Python's smtplib
//!   authenticated before the removal gets `530 5.7.0` at its next MAIL FROM (RFC 4954
//!   §6); a second remove is refused by name (exit 2).
//! - `anchor list` shows the peer's CA by fingerprint and `anchor remove` takes it out;
//!   `route list|remove` and `cert list|remove` likewise.
//! - `hisp backup` taken while the daemon runs is a store of its own: pointed at it, the
//!   commands see the directory as it was (Bob still a user after his removal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use daemon_support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

fn list(inst: &Instance, what: &str) -> Value {
    let r = hisp_at(inst, &[what, "list", "--json"]);
    assert_eq!(r.code, 0, "hisp {what} list: {}", r.stderr);
    json_of(&r)
}

/// The reply to `RCPT TO:<rcpt>` on a relay port.
fn rcpt_reply(port: u16, rcpt: &str) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    smtp_reply(&mut r);
    for cmd in [
        "EHLO directory.test",
        "MAIL FROM:<alice@direct.alpha.example>",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        assert!(smtp_reply(&mut r).starts_with("250"));
    }
    w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
        .unwrap();
    smtp_reply(&mut r)
}

/// A Python smtplib submission session, authenticated (STARTTLS, AUTH) as `user`, that
/// sends MAIL FROM as `user` when told to and prints the reply.
struct HeldSession {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl HeldSession {
    fn open(port: u16, user: &str, password: &str) -> HeldSession {
        let script = format!(
            "import smtplib, ssl, sys\n\
             s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)\n\
             s.starttls(context=ssl._create_unverified_context())\n\
             s.login('{user}', '{password}')\n\
             print('authenticated', flush=True)\n\
             sys.stdin.readline()\n\
             code, text = s.mail('{user}')\n\
             print(code, text.decode(), flush=True)\n"
        );
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run /usr/bin/python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "authenticated");
        HeldSession { child, out }
    }

    /// The reply to MAIL FROM, as `code text`.
    fn mail_from(mut self) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = self.child.wait();
        line
    }
}

/// `remove` of what is not there: exit 2, naming it.
fn assert_refused(r: &common::Run, what: &str) {
    assert_eq!(r.code, 2, "{}", String::from_utf8_lossy(&r.stdout));
    assert!(r.stderr.contains(&format!("no {what}")), "{}", r.stderr);
}

#[test]
fn list_and_remove_users_anchors_routes_and_certificates() {
    let tmp = common::workdir();
    let pair = Pair::init(tmp.path());
    let beta = &pair.beta;
    let d = Daemon::start(beta);

    assert_eq!(list(beta, "user")["users"], json!([BOB]));
    let backup = tmp.path().join("beta-backup");
    let r = hisp_at(beta, &["backup", "--out", backup.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let restored = beta.dir.join("restored.toml");
    let data_dir = format!("{:?}", backup.to_str().unwrap());
    std::fs::write(
        &restored,
        toml_set(&beta.config_text(), "server", "data_dir", &data_dir),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/api/v1/messages", beta.http_port);
    let bob = format!("{BOB}:{BOB_PASSWORD}");
    assert_eq!(http_status(&bob, &url), "200");
    assert!(rcpt_reply(beta.relay_port, BOB).starts_with("250"));
    let held = HeldSession::open(beta.submission_port, BOB, BOB_PASSWORD);
    let r = hisp_at(beta, &["user", "remove", BOB]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("removed user"), "{out}");
    let refused = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        http_status(&bob, &url) == "401"
    });
    assert!(
        refused,
        "REST still lets a removed user in\n{}",
        d.log_text()
    );
    assert!(rcpt_reply(beta.relay_port, BOB).starts_with("550"));
    let reply = held.mail_from();
    assert!(
        reply.starts_with("530 5.7.0") && reply.contains("no longer has an account"),
        "{reply}"
    );
    assert_eq!(list(beta, "user")["users"], json!([]));
    assert_refused(&hisp_at(beta, &["user", "remove", BOB]), "user");
    let r = common::run(
        common::hisp()
            .args(["user", "list", "--json", "--config"])
            .arg(&restored),
        None,
    );
    assert_eq!(json_of(&r)["users"], json!([BOB]), "{}", r.stderr);

    let ca = cert_sha256(&pair.alpha.dir.join("ca.pem"));
    let anchors = list(beta, "anchor")["anchors"].clone();
    assert!(anchors
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["sha256"] == ca));
    let r = hisp_at(beta, &["anchor", "remove", &ca.to_ascii_uppercase()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let anchors = list(beta, "anchor")["anchors"].clone();
    assert!(!anchors
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["sha256"] == ca));
    assert_refused(&hisp_at(beta, &["anchor", "remove", &ca]), "anchor");

    let routes = list(beta, "route")["routes"].clone();
    assert_eq!(routes[0]["domain"], "direct.alpha.example", "{routes}");
    assert_eq!(
        hisp_at(beta, &["route", "remove", "direct.alpha.example"]).code,
        0
    );
    assert_eq!(list(beta, "route")["routes"], json!([]));
    assert_refused(
        &hisp_at(beta, &["route", "remove", "direct.alpha.example"]),
        "route",
    );

    let cert = cert_sha256(&pair.alpha.dir.join("domain.pem"));
    let certs = list(beta, "cert")["certificates"].clone();
    assert_eq!(certs[0]["sha256"], cert, "{certs}");
    assert_eq!(certs[0]["bound_to"], "direct.alpha.example");
    assert_eq!(hisp_at(beta, &["cert", "remove", &cert]).code, 0);
    assert_eq!(list(beta, "cert")["certificates"], json!([]));
    assert_refused(&hisp_at(beta, &["cert", "remove", &cert]), "certificate");
}
