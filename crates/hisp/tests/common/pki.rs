//! The test PKI, made with the `openssl` CLI: a root, an intermediate, the end entities
//! every test needs (valid, expired, not yet valid, revoked, other address/domain) and a CRL.

use super::*;

/// Names of the PKI members (files `<name>.pem`, `<name>.key`, `<name>.chain.pem`).
pub const ROOT: &str = "root";
/// Intermediate CA under [`ROOT`]; issues every end entity below.
pub const INTER: &str = "inter";
/// A self-signed root nobody chains to: the "untrusted anchor".
pub const OTHER_ROOT: &str = "other-root";
/// Sender, address-bound: rfc822Name `alice@a.example`.
pub const ALICE: &str = "alice";
/// Recipient, domain-bound: dNSName `b.example`.
pub const BOB: &str = "bob";
/// Another address in the sender's domain: rfc822Name `carol@a.example`.
pub const CAROL: &str = "carol";
/// Domain-bound certificate for another domain: dNSName `c.example`.
pub const C_DOMAIN: &str = "c-domain";
/// `alice@a.example`, valid 2020-01-01 .. 2021-01-01 only.
pub const ALICE_EXPIRED: &str = "alice-expired";
/// `alice@a.example`, valid from 2099-01-01 only.
pub const ALICE_FUTURE: &str = "alice-future";
/// `alice@a.example`, listed in the intermediate's CRL.
pub const ALICE_REVOKED: &str = "alice-revoked";

/// Sender address of [`ALICE`].
pub const ALICE_ADDR: &str = "alice@a.example";
/// An address at the recipient's domain (bound through [`BOB`]'s dNSName).
pub const BOB_ADDR: &str = "bob@b.example";

/// The test PKI on disk.
pub struct Pki {
    /// Where every file lives.
    pub dir: PathBuf,
}

impl Pki {
    /// `<name>.pem`
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }
    /// `<name>.key` (PKCS#8 PEM, unencrypted)
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
    /// `<name>.chain.pem`: the end-entity certificate followed by the intermediate.
    pub fn chain(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.chain.pem"))
    }
    /// `<name>.p12`, password [`P12_PASSWORD`], 3DES/SHA-1 so that gpgsm 2.2 reads it too.
    pub fn p12(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.p12"))
    }
    /// Export `<name>`'s key and certificate again, as [`Pki::p12`] is made, to `out`
    /// (a fresh random salt each time).
    pub fn export_p12(&self, name: &str, out: &Path) {
        export_p12(&self.dir, name, out);
    }
    /// The intermediate's CRL, listing [`ALICE_REVOKED`].
    pub fn crl(&self) -> PathBuf {
        self.dir.join("inter.crl")
    }
    /// SHA-1 fingerprint, upper-case hex without colons (what gpgsm takes as a user id).
    pub fn sha1_fingerprint(&self, name: &str) -> String {
        let out = check(
            Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
                .arg(self.cert(name)),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_uppercase()
    }
}

/// The PKI, built once per test binary on first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(build_pki)
}

const CA_CONFIG: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_inter ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $ENV::SAN
"#;

/// An end-entity certificate of the test PKI, issued by [`INTER`].
struct Leaf {
    name: &'static str,
    cn: &'static str,
    san: &'static str,
    /// (notBefore, notAfter) as `openssl ca -startdate/-enddate`; `None` = now .. +1 year.
    validity: Option<(&'static str, &'static str)>,
}

const fn leaf(name: &'static str, cn: &'static str, san: &'static str) -> Leaf {
    Leaf {
        name,
        cn,
        san,
        validity: None,
    }
}

const LEAVES: &[Leaf] = &[
    leaf(ALICE, "alice@a.example", "email:alice@a.example"),
    leaf(BOB, "b.example", "DNS:b.example"),
    leaf(CAROL, "carol@a.example", "email:carol@a.example"),
    leaf(C_DOMAIN, "c.example", "DNS:c.example"),
    Leaf {
        validity: Some(("20200101000000Z", "20210101000000Z")),
        ..leaf(
            ALICE_EXPIRED,
            "alice@a.example (expired)",
            "email:alice@a.example",
        )
    },
    Leaf {
        validity: Some(("20990101000000Z", "21000101000000Z")),
        ..leaf(
            ALICE_FUTURE,
            "alice@a.example (not yet valid)",
            "email:alice@a.example",
        )
    },
    leaf(
        ALICE_REVOKED,
        "alice@a.example (revoked)",
        "email:alice@a.example",
    ),
];

const PKI_PREFIX: &str = "hisp-test-pki-";

/// Remove PKI directories of earlier runs (older than an hour, so never a running one's).
fn sweep_old_pkis(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old && e.file_name().to_string_lossy().starts_with(PKI_PREFIX) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn build_pki() -> Pki {
    // Statics are never dropped, so the PKI outlives the process: keep it under cargo's
    // target/tmp (removed by `cargo clean`) and sweep what earlier runs left behind.
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(parent).unwrap();
    sweep_old_pkis(parent);
    let dir = tempfile::Builder::new()
        .prefix(PKI_PREFIX)
        .tempdir_in(parent)
        .expect("temp dir for the PKI")
        .keep();
    std::fs::write(dir.join("ca.cnf"), CA_CONFIG).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
    std::fs::create_dir(dir.join("newcerts")).unwrap();
    let ossl = |args: &[&str], san: &str| {
        check(
            Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .env("SAN", san),
        )
    };

    // RSA key generation dominates the cost: run every keygen at once.
    let mut names = vec![ROOT, INTER, OTHER_ROOT];
    names.extend(LEAVES.iter().map(|l| l.name));
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
                .args(["rsa_keygen_bits:2048", "-out", &format!("{n}.key")])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the openssl CLI must be installed (scripts/test installs it)")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "openssl genpkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    for (name, cn) in [
        (ROOT, "Hisp Interop Test Root"),
        (OTHER_ROOT, "Hisp Unrelated Root"),
    ] {
        ossl(
            &[
                "req",
                "-config",
                "ca.cnf",
                "-new",
                "-x509",
                "-sha256",
                "-days",
                "3650",
                "-extensions",
                "v3_root",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.pem"),
            ],
            "",
        );
    }
    let issue = |name: &str, cn: &str, issuer: &str, ext: &str, san: &str, dates: &[&str]| {
        ossl(
            &[
                "req",
                "-config",
                "ca.cnf",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
            san,
        );
        let (issuer_cert, issuer_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
        let (csr, cert) = (format!("{name}.csr"), format!("{name}.pem"));
        let mut args = vec![
            "ca",
            "-config",
            "ca.cnf",
            "-batch",
            "-notext",
            "-extensions",
            ext,
        ];
        args.extend([
            "-cert",
            &issuer_cert,
            "-keyfile",
            &issuer_key,
            "-in",
            &csr,
            "-out",
            &cert,
        ]);
        args.extend_from_slice(dates);
        ossl(&args, san);
    };
    issue(
        INTER,
        "Hisp Interop Test Intermediate",
        ROOT,
        "v3_inter",
        "",
        &["-days", "1825"],
    );
    for l in LEAVES {
        let dates: Vec<&str> = match l.validity {
            Some((start, end)) => vec!["-startdate", start, "-enddate", end],
            None => vec!["-days", "365"],
        };
        issue(l.name, l.cn, INTER, "v3_leaf", l.san, &dates);
    }
    // The intermediate revokes alice-revoked and publishes its CRL (valid 30 days from now).
    let as_inter = [
        "-config",
        "ca.cnf",
        "-cert",
        "inter.pem",
        "-keyfile",
        "inter.key",
    ];
    let mut revoke = vec![
        "ca",
        "-revoke",
        "alice-revoked.pem",
        "-crl_reason",
        "keyCompromise",
    ];
    revoke.extend(as_inter);
    ossl(&revoke, "");
    let mut gencrl = vec!["ca", "-gencrl", "-out", "inter.crl"];
    gencrl.extend(as_inter);
    ossl(&gencrl, "");

    let inter_pem = std::fs::read(dir.join("inter.pem")).unwrap();
    for l in LEAVES {
        let mut chain = std::fs::read(dir.join(format!("{}.pem", l.name))).unwrap();
        chain.extend_from_slice(&inter_pem);
        std::fs::write(dir.join(format!("{}.chain.pem", l.name)), chain).unwrap();
    }
    for name in [ALICE, BOB, CAROL] {
        export_p12(&dir, name, &dir.join(format!("{name}.p12")));
    }
    Pki { dir }
}

/// `<name>.pem` and `<name>.key` in `dir` as PKCS#12 at `out`, password [`P12_PASSWORD`].
fn export_p12(dir: &Path, name: &str, out: &Path) {
    check(
        Command::new("openssl")
            .args(["pkcs12", "-export", "-in"])
            .arg(dir.join(format!("{name}.pem")))
            .arg("-inkey")
            .arg(dir.join(format!("{name}.key")))
            .arg("-passout")
            .arg(format!("pass:{P12_PASSWORD}"))
            // gpgsm 2.2 cannot read OpenSSL 3's default PBES2/AES PKCS#12.
            .args(["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES"])
            .args(["-macalg", "sha1", "-out"])
            .arg(out),
    );
}
