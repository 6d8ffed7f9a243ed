//! `hisp discover` (DESIGN §3) against a real BIND: the JSON shape and the exit statuses
//! (0 found, 3 none, 1 no answer from DNS), with a domain made by `hisp init`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hisp_discovery::testbind::{cert_line, Named};
use std::process::Command;

fn hisp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hisp"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn discover_finds_a_domain_bound_certificate_published_in_dns_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("clinic");
    let d = inst.to_str().unwrap();
    let (code, _, err) = hisp(&["init", "--domain", "clinic.direct.test", "--dir", d]);
    assert_eq!(code, 0, "{err}");
    let pem = std::fs::read(inst.join("domain.pem")).unwrap();
    let cert = openssl::x509::X509::from_pem(&pem).unwrap();
    let der = cert.to_der().unwrap();
    let sha: String = openssl::sha::sha256(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let named = Named::start("direct.test", &cert_line("clinic", &der));
    let dns = named.addr.to_string();
    let anchor = inst.join("ca.pem");
    let anchor = anchor.to_str().unwrap();

    // Found: exit 0, DESIGN §3 JSON.
    let (code, out, err) = hisp(&[
        "discover",
        "dr.bob@clinic.direct.test",
        "--dns",
        &dns,
        "--anchor",
        anchor,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["address"], "dr.bob@clinic.direct.test");
    assert_eq!(v["certificates"][0]["sha256"], sha.as_str());
    assert_eq!(v["certificates"][0]["source"], "dns");
    assert_eq!(v["certificates"][0]["binding"], "domain");
    assert_eq!(v["rejected"].as_array().unwrap().len(), 0);

    // Without an anchor the same certificate is rejected, with the rule named: exit 3.
    let (code, out, _) = hisp(&[
        "discover",
        "dr.bob@clinic.direct.test",
        "--dns",
        &dns,
        "--json",
    ]);
    assert_eq!(code, 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rejected"][0]["sha256"], sha.as_str());
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("trust:"),
        "{out}"
    );

    // Nothing published: exit 3, text names the lookups.
    let (code, out, _) = hisp(&[
        "discover",
        "x@none.direct.test",
        "--dns",
        &dns,
        "--anchor",
        anchor,
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("NXDOMAIN") && out.contains("no usable certificate"),
        "{out}"
    );

    // A server that refuses: no answer, exit 1 with the reason.
    let (code, _, err) = hisp(&["discover", "x@elsewhere.example", "--dns", &dns]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Refused"), "{err}");
}
