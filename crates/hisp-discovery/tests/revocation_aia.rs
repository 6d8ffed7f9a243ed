//! RFC 5280 §4.2.2.1 and §4.2.1.13 in discovery, with a PKI made by the `openssl` command
//! line and a real HTTP server (Python's http.server) holding the intermediate and its
//! CRL: the intermediate is found only through caIssuers, a revoked certificate is turned
//! down, and one whose CRL cannot be fetched is turned down too (fail closed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hisp_discovery::dns::DnsCerts;
use hisp_discovery::select::Policy;
use hisp_discovery::testservers::{cert_line, free_loopback_port, HttpDir, Named};
use hisp_discovery::Discovery;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CNF: &str = r#"
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:$ENV::ADDR
crlDistributionPoints = URI:$ENV::CRL_URL
authorityInfoAccess = caIssuers;URI:$ENV::AIA_URL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

fn ossl(dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    // ca.cnf reads these from the environment wherever they are used or not.
    let defaults = [("ADDR", "x"), ("CRL_URL", "x"), ("AIA_URL", "x")];
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .envs(defaults)
        .envs(env.iter().copied())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Root → intermediate (with `openssl ca`, which keeps the index the CRL is made from) →
/// leaves `good`, `revoked` and `nocrl` of rev.direct.test; `revoked` is revoked.
fn make_pki(dir: &Path, http: &str) {
    std::fs::write(dir.join("ca.cnf"), CNF).unwrap();
    std::fs::create_dir_all(dir.join("newcerts")).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    let none: &[(&str, &str)] = &[];
    ossl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/CN=Discovery Test Root",
            "-days",
            "3650",
            "-config",
            "ca.cnf",
            "-extensions",
            "v3_root",
        ],
        none,
    );
    ossl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/CN=Discovery Test Intermediate",
            "-config",
            "ca.cnf",
        ],
        none,
    );
    ossl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "inter.pem",
            "-days",
            "1825",
            "-extfile",
            "ca.cnf",
            "-extensions",
            "v3_inter",
        ],
        none,
    );
    ossl(
        dir,
        &[
            "x509",
            "-in",
            "inter.pem",
            "-outform",
            "DER",
            "-out",
            "inter.der",
        ],
        none,
    );
    let crl_url = format!("{http}/inter.crl");
    let aia_url = format!("{http}/inter.der");
    let missing_crl = format!("{http}/missing.crl");
    for (name, crl) in [
        ("good", &crl_url),
        ("revoked", &crl_url),
        ("nocrl", &missing_crl),
        ("ipkix", &crl_url),
    ] {
        let addr = format!("{name}@rev.direct.test");
        let env = [
            ("ADDR", addr.as_str()),
            ("CRL_URL", crl.as_str()),
            ("AIA_URL", aia_url.as_str()),
        ];
        ossl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={addr}"),
                "-config",
                "ca.cnf",
            ],
            &env,
        );
        ossl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-cert",
                "inter.pem",
                "-keyfile",
                "inter.key",
                "-in",
                &format!("{name}.csr"),
                "-out",
                &format!("{name}.pem"),
                "-extensions",
                "v3_leaf",
                "-notext",
            ],
            &env,
        );
    }
    let env = [("ADDR", "x"), ("CRL_URL", "x"), ("AIA_URL", "x")];
    ossl(
        dir,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "inter.pem",
            "-keyfile",
            "inter.key",
            "-revoke",
            "revoked.pem",
            "-crl_reason",
            "keyCompromise",
        ],
        &env,
    );
    ossl(
        dir,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "inter.pem",
            "-keyfile",
            "inter.key",
            "-gencrl",
            "-out",
            "inter.crl",
        ],
        &env,
    );
}

fn der(dir: &Path, name: &str) -> Vec<u8> {
    let pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
    openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap()
}

fn sha(d: &[u8]) -> String {
    openssl::sha::sha256(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn intermediate_by_aia_revocation_by_crl_and_unreachable_crl_fails_closed() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let port = free_loopback_port();
    make_pki(dir, &format!("http://127.0.0.1:{port}"));
    let _http = HttpDir::start_on(dir, port);
    let zone: Vec<String> = ["good", "revoked", "nocrl"]
        .iter()
        .map(|n| cert_line(&format!("{n}.rev"), &der(dir, n)))
        .collect();
    // RFC 4398 §2.1 IPKIX: the record holds the URL of the certificate.
    std::fs::write(dir.join("ipkix.der"), der(dir, "ipkix")).unwrap();
    let url = format!("http://127.0.0.1:{port}/ipkix.der");
    let mut zone = zone;
    zone.push(format!(
        "ipkix.rev IN CERT IPKIX 0 0 {}",
        openssl::base64::encode_block(url.as_bytes())
    ));
    let named = Named::start("direct.test", &zone.join("\n"));

    let root =
        openssl::x509::X509::from_pem(&std::fs::read(dir.join("root.pem")).unwrap()).unwrap();
    let anchors = hisp_direct::trust::TrustAnchors::new(vec![root]);
    let profile = hisp_direct::alg::Profile::strict();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Only the root is an anchor; the intermediate is not given.
    let policy = Policy {
        anchors: &anchors,
        intermediates: &[],
        crls: &[],
        at: now,
        profile: &profile,
    };
    let d = Discovery::new(
        DnsCerts::at(named.addr, Duration::from_secs(2)),
        Duration::from_secs(2),
    );

    let f = d.discover("good@rev.direct.test", &policy).await.unwrap();
    assert_eq!(f.usable.len(), 1, "{:?} {:?}", f.rejected, f.trail);
    assert_eq!(f.usable[0].cert.sha256_hex(), sha(&der(dir, "good")));
    assert!(
        f.trail
            .iter()
            .any(|t| t.contains("inter.der: 1 certificate")),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail.iter().any(|t| t.contains("inter.crl: fetched")),
        "{:?}",
        f.trail
    );

    let f = d
        .discover("revoked@rev.direct.test", &policy)
        .await
        .unwrap();
    assert!(f.usable.is_empty());
    assert!(f.rejected[0].reason.contains("revoked"), "{:?}", f.rejected);

    let f = d.discover("nocrl@rev.direct.test", &policy).await.unwrap();
    assert!(f.usable.is_empty());
    assert!(
        f.rejected[0].reason.starts_with("revocation:"),
        "{:?}",
        f.rejected
    );
    assert!(f.rejected[0].reason.contains("404"), "{:?}", f.rejected);

    let f = d.discover("ipkix@rev.direct.test", &policy).await.unwrap();
    assert_eq!(f.usable.len(), 1, "{:?} {:?}", f.rejected, f.trail);
    assert_eq!(f.usable[0].cert.sha256_hex(), sha(&der(dir, "ipkix")));
    assert!(
        f.trail.iter().any(|t| t.starts_with("ipkix http")),
        "{:?}",
        f.trail
    );

    // The operator may accept an unreachable CRL.
    let lenient = Discovery::new(
        DnsCerts::at(named.addr, Duration::from_secs(2)),
        Duration::from_secs(2),
    )
    .allow_unreachable_crl(true);
    let f = lenient
        .discover("nocrl@rev.direct.test", &policy)
        .await
        .unwrap();
    assert_eq!(f.usable.len(), 1, "{:?}", f.rejected);
}
