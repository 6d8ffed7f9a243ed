//! `[http] tls` (docs/operations.md "REST API"): the REST API, `/healthz` and `/metrics` over
//! HTTPS with the STARTTLS certificate, checked by `curl` against the instance's CA (RFC 2818
//! §3.1: the name asked for is in the certificate); a plain HTTP request to that port gets no
//! answer; a certificate renewed in place is served after SIGHUP; and `hisp serve --check`
//! refuses plain HTTP on an address other hosts can reach, naming `http.tls`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use daemon_support::*;
use std::path::Path;
use std::time::Duration;

const ALICE: &str = "dr.alice@direct.alpha.example";

fn https_ok(ca: &Path, port: u16, path: &str, user: Option<&str>) -> (i32, String) {
    let url = format!("https://localhost:{port}{path}");
    let ca = ca.to_str().unwrap();
    match user {
        Some(u) => curl(&["--cacert", ca, "-u", u, &url]),
        None => curl(&["--cacert", ca, &url]),
    }
}

#[test]
fn rest_api_over_https_with_the_starttls_certificate() {
    let tmp = common::workdir();
    let inst = Instance::init(tmp.path(), "alpha", "direct.alpha.example");
    inst.set("http", "tls", "true");
    inst.add_user(ALICE, "alice-password");
    let mut d = Daemon::start(&inst);
    let ca = inst.dir.join("ca.pem");

    let healthy = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        https_ok(&ca, inst.http_port, "/healthz", None) == (0, "ok".to_string())
    });
    assert!(healthy, "no HTTPS /healthz\n{}", d.log_text());
    let (code, body) = https_ok(
        &ca,
        inst.http_port,
        "/api/v1/messages",
        Some(&format!("{ALICE}:alice-password")),
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["messages"],
        serde_json::json!([])
    );
    let (_, metrics) = https_ok(&ca, inst.http_port, "/metrics", None);
    assert!(metrics.contains("hisp_queue_depth"), "{metrics}");

    // Plain HTTP to the HTTPS port: no HTTP answer, and the daemon carries on.
    let (code, body) = curl(&[&format!("http://127.0.0.1:{}/healthz", inst.http_port)]);
    assert!(
        code != 0 && body != "ok",
        "plain HTTP answered: {code} {body}"
    );

    // A certificate renewed in place is served after SIGHUP (the old CA no longer verifies).
    let renewed = inst.renew_tls();
    d.hup();
    let new_cert = inst.dir.join("tls.pem");
    let swapped = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        https_ok(&new_cert, inst.http_port, "/healthz", None) == (0, "ok".to_string())
    });
    assert!(
        swapped,
        "renewed certificate {renewed} not served\n{}",
        d.log_text()
    );
    assert!(d.running(), "{}", d.log_text());
}

#[test]
fn plain_http_on_a_reachable_address_is_refused_by_name() {
    let tmp = common::workdir();
    let inst = Instance::init(tmp.path(), "beta", "direct.beta.example");
    inst.set("http", "listen", &format!("\"0.0.0.0:{}\"", inst.http_port));
    inst.set("http", "tls", "false");
    let config = inst.config.to_str().unwrap().to_string();
    let (code, _, err) = common::hisp_run(&["serve", "--config", &config, "--check"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("http.tls"), "{err}");
    inst.set("http", "tls", "true");
    let (code, _, err) = common::hisp_run(&["serve", "--config", &config, "--check"]);
    assert_eq!(code, 0, "{err}");
}
