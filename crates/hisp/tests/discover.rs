//! `hisp discover` (DESIGN §3) against a real BIND: the JSON shape and the exit statuses
//! (0 found, 3 none, 1 no answer from DNS), with a domain made by `hisp init`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::hisp_run as hisp;

use hisp_discovery::testservers::{cert_line, Named, Slapd};

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

fn init_with_user(root: &std::path::Path, domain: &str, user: &str) -> std::path::PathBuf {
    let inst = root.join(domain);
    let d = inst.to_str().unwrap();
    let (code, _, err) = hisp(&["init", "--domain", domain, "--dir", d]);
    assert_eq!(code, 0, "{err}");
    let config = inst.join("hisp.toml");
    let args = [
        "user",
        "add",
        "--config",
        config.to_str().unwrap(),
        user,
        "--password-stdin",
    ];
    common::check_with(common::hisp().args(args), Some(b"pw\n"));
    inst
}

/// What `hisp dns records` and `hisp ldap export` print is what discovery finds: the records
/// loaded into BIND as printed (RFC 4398 §2.2 presentation format), the LDIF into slapd as
/// printed, with an SRV record pointing at it.
#[test]
fn published_records_and_ldif_are_found_by_discovery() {
    let root = tempfile::tempdir().unwrap();
    let a = init_with_user(root.path(), "dnspub.direct.test", "ann@dnspub.direct.test");
    let b = init_with_user(
        root.path(),
        "ldappub.direct.test",
        "ben@ldappub.direct.test",
    );
    let cfg = |p: &std::path::Path| p.join("hisp.toml").to_str().unwrap().to_string();

    let (code, records, err) = hisp(&["dns", "records", "--config", &cfg(&a), "--ttl", "600"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        records.contains("dnspub.direct.test. 600 IN CERT PKIX "),
        "{records}"
    );
    let (code, ldif, err) = hisp(&["ldap", "export", "--config", &cfg(&b)]);
    assert_eq!(code, 0, "{err}");
    assert!(ldif.contains("mail: ben@ldappub.direct.test"), "{ldif}");

    let ldap = Slapd::start("dc=ldappub,dc=direct,dc=test", &ldif);
    let zone = format!(
        "{records}\nldap IN A 127.0.0.1\n_ldap._tcp.ldappub IN SRV 0 0 {} ldap.direct.test.",
        ldap.addr.port()
    );
    let named = Named::start("direct.test", &zone);
    let dns = named.addr.to_string();
    for (inst, address, source) in [
        (&a, "ann@dnspub.direct.test", "dns"),
        (&b, "ben@ldappub.direct.test", "ldap"),
    ] {
        let anchor = inst.join("ca.pem");
        let (code, out, err) = hisp(&[
            "discover",
            address,
            "--dns",
            &dns,
            "--anchor",
            anchor.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{address}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["certificates"][0]["source"], source, "{out}");
        assert_eq!(v["certificates"][0]["binding"], "domain", "{out}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hisp doctor` on a domain published in BIND whose HISP (`hisp serve`) answers SMTP with
/// STARTTLS: exit 0 with MX, certificate, discovery, SMTP and STARTTLS passing; a domain
/// with nothing published fails (exit 1) with a fix named.
#[test]
fn doctor_reports_a_healthy_domain_and_a_bare_one() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("clinic");
    let (relay, sub, http) = (free_port(), free_port(), free_port());
    let (code, _, err) = hisp(&[
        "init",
        "--domain",
        "clinic.direct.test",
        "--dir",
        inst.to_str().unwrap(),
        "--bind",
        "127.0.0.1",
        "--smtp-port",
        &relay.to_string(),
        "--submission-port",
        &sub.to_string(),
        "--http-port",
        &http.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let config = inst.join("hisp.toml");
    let _serve = Serve(
        common::hisp()
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", relay)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "hisp serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pem = std::fs::read(inst.join("domain.pem")).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    let zone = format!(
        "clinic IN MX 10 mail.direct.test.\nmail IN A 127.0.0.1\n{}",
        cert_line("clinic", &der)
    );
    let named = Named::start("direct.test", &zone);
    let dns = named.addr.to_string();
    let anchor = inst.join("ca.pem");
    let smtp = format!("127.0.0.1:{relay}");
    let (code, out, err) = hisp(&[
        "doctor",
        "clinic.direct.test",
        "--dns",
        &dns,
        "--anchor",
        anchor.to_str().unwrap(),
        "--smtp",
        &smtp,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let passed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "pass")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for check in ["mx", "certificate", "discovery", "smtp", "starttls"] {
        assert!(passed.contains(&check), "{check} did not pass: {out}");
    }

    let (code, out, _) = hisp(&["doctor", "bare.direct.test", "--dns", &dns, "--smtp", &smtp]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  discovery") && out.contains("fix: publish"),
        "{out}"
    );
}
