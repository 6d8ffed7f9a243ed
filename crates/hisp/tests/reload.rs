//! `kill -HUP` on a running `hisp serve` (docs/operations.md "Reload"): the STARTTLS
//! certificate renewed in place is served by the next session (RFC 3207) without a restart
//! and without ending the daemon; a configuration file with an unknown key or a broken
//! certificate file changes nothing and is reported by name; a changed table is reported
//! as needing a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use daemon_support::*;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// SHA-256 of the certificate the relay port presents after STARTTLS.
fn served_cert(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s.try_clone().unwrap();
    smtp_reply(&mut r);
    w.write_all(b"EHLO reload.test\r\n").unwrap();
    smtp_reply(&mut r);
    w.write_all(b"STARTTLS\r\n").unwrap();
    assert!(smtp_reply(&mut r).starts_with("220"));
    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    let tls = b
        .build()
        .configure()
        .unwrap()
        .verify_hostname(false)
        .connect("localhost", s)
        .unwrap();
    let der = tls.ssl().peer_certificate().unwrap().to_der().unwrap();
    hex::encode(openssl::sha::sha256(&der))
}

#[test]
fn sighup_reloads_renewed_certificates_and_reports_what_needs_a_restart() {
    let tmp = common::workdir();
    let inst = Instance::init(tmp.path(), "alpha", "direct.alpha.example");
    let mut d = Daemon::start(&inst);
    let before = served_cert(inst.relay_port);

    // Renewed in place, then SIGHUP: the next session gets the new certificate.
    let renewed = inst.renew_tls();
    assert_ne!(before, renewed);
    d.hup();
    let swapped = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        served_cert(inst.relay_port) == renewed
    });
    assert!(swapped, "old certificate still served\n{}", d.log_text());
    assert!(d.running(), "SIGHUP ended the daemon\n{}", d.log_text());
    let logged = |d: &Daemon, what: &str| {
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            d.log_text().contains(what)
        })
    };
    assert!(logged(
        &d,
        "reload: certificate, key and anchor files read again"
    ));

    // A configuration file with an unknown key: nothing changes, the key is named.
    let good = inst.config_text();
    std::fs::write(&inst.config, format!("{good}\n[bogus]\nkey = 1\n")).unwrap();
    d.hup();
    assert!(
        logged(&d, "the configuration file has problems"),
        "{}",
        d.log_text()
    );
    assert!(d.log_text().contains("bogus"), "{}", d.log_text());

    // A changed table is reported as needing a restart.
    std::fs::write(&inst.config, &good).unwrap();
    inst.set("queue", "retry_first", "\"5m\"");
    d.hup();
    assert!(logged(&d, "restart to apply them"), "{}", d.log_text());
    assert!(d.log_text().contains("tables=queue"), "{}", d.log_text());

    // A broken certificate file fails the check by name and leaves the renewed one in force.
    std::fs::write(&inst.config, &good).unwrap();
    std::fs::write(inst.dir.join("tls.pem"), b"not a certificate\n").unwrap();
    d.hup();
    assert!(logged(&d, "smtp.tls_cert"), "{}", d.log_text());
    assert_eq!(served_cert(inst.relay_port), renewed);
    assert!(d.running(), "{}", d.log_text());
}
