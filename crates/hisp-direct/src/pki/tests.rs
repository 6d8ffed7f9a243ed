//! Each test names the RFC 5280 section (or RFC 7292 for PKCS#12) whose profile it checks,
//! and checks it with OpenSSL's own parser and verifier rather than with our encoder.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{CrlStatus, X509PurposeId, X509StoreContext, X509};

use super::*;

/// 2026-01-01T00:00:00Z, the check time of every test.
const T0: i64 = 1_767_225_600;
const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;

// X509_V_ERR_* codes from OpenSSL's x509_vfy.h (the crate names only OK).
const NOT_YET_VALID: i32 = 9;
const EXPIRED: i32 = 10;
const PATH_LENGTH_EXCEEDED: i32 = 25;
const INVALID_PURPOSE: i32 = 26;

const ALICE: &str = "dr.alice@direct.clinic.example";
const DOMAIN: &str = "direct.clinic.example";

/// Root and intermediate shared by the tests, since RSA key generation dominates run time.
struct Cas {
    root: Issued,
    inter: Issued,
}

fn cas() -> &'static Cas {
    static CAS: OnceLock<Cas> = OnceLock::new();
    CAS.get_or_init(|| {
        let root = new_root_ca("Hisp Test Root", T0 - YEAR, T0 + 10 * YEAR, 2048).unwrap();
        let url = Some("http://pki.example/root.cer");
        let inter = new_intermediate_ca(
            &root,
            "Hisp Test Intermediate",
            T0 - YEAR,
            T0 + 5 * YEAR,
            2048,
            url,
        )
        .unwrap();
        Cas { root, inter }
    })
}

/// One leaf key reused where the test is about the certificate, not the key.
fn shared_key() -> PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| generate_rsa(2048).unwrap()).clone()
}

fn leaf(spec: &LeafSpec) -> Issued {
    issue_leaf_for_key(&cas().inter, spec, shared_key()).unwrap()
}

fn alice_spec() -> LeafSpec {
    LeafSpec::address(ALICE, T0 - DAY, T0 + YEAR)
}

/// Verifies `leaf` against `anchor` at `at`; Err carries the X509_V_ERR code.
fn verify(
    anchor: &X509,
    untrusted: &[&X509],
    leaf: &X509,
    at: i64,
    purpose: Option<X509PurposeId>,
) -> Result<(), i32> {
    let mut param = X509VerifyParam::new().unwrap();
    param.set_time(at);
    if let Some(purpose) = purpose {
        param.set_purpose(purpose).unwrap();
    }
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(anchor.clone()).unwrap();
    store.set_param(&param).unwrap();
    let store = store.build();
    let mut chain = Stack::new().unwrap();
    for cert in untrusted {
        chain.push((*cert).clone()).unwrap();
    }
    let mut ctx = X509StoreContext::new().unwrap();
    ctx.init(&store, leaf, &chain, |c| {
        Ok(if c.verify_cert()? {
            Ok(())
        } else {
            Err(c.error().as_raw())
        })
    })
    .unwrap()
}

fn verify_leaf(leaf: &X509, at: i64, purpose: Option<X509PurposeId>) -> Result<(), i32> {
    verify(&cas().root.cert, &[&cas().inter.cert], leaf, at, purpose)
}

fn text(cert: &X509) -> String {
    String::from_utf8(cert.to_text().unwrap()).unwrap()
}

fn dn_emails(cert: &X509) -> Vec<String> {
    let entries = cert.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS);
    entries.map(|e| e.data().to_string().unwrap()).collect()
}

fn san_emails(cert: &X509) -> Vec<String> {
    let names = cert.subject_alt_names().into_iter().flatten();
    names
        .filter_map(|n| n.email().map(str::to_string))
        .collect()
}

fn san_dns(cert: &X509) -> Vec<String> {
    let names = cert.subject_alt_names().into_iter().flatten();
    names
        .filter_map(|n| n.dnsname().map(str::to_string))
        .collect()
}

#[test]
fn rfc5280_4_2_1_9_ca_basic_constraints() {
    let Cas { root, inter } = cas();
    let root_text = text(&root.cert);
    assert!(root_text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE\n"));
    assert_eq!(root.cert.pathlen(), None);
    assert!(text(&inter.cert).contains("X509v3 Basic Constraints: critical"));
    assert_eq!(inter.cert.pathlen(), Some(0));
    for ca in [root, inter] {
        assert!(text(&ca.cert)
            .contains("Key Usage: critical\n                Certificate Sign, CRL Sign"));
    }
    let leaf = leaf(&alice_spec());
    assert!(
        text(&leaf.cert).contains("X509v3 Basic Constraints: critical\n                CA:FALSE")
    );
}

#[test]
fn rfc5280_4_2_1_9_pathlen_zero_forbids_a_sub_ca() {
    let sub =
        new_intermediate_ca(&cas().inter, "Too Deep", T0 - DAY, T0 + YEAR, 2048, None).unwrap();
    let leaf = issue_leaf_for_key(&sub, &alice_spec(), shared_key()).unwrap();
    let chain = [&cas().inter.cert, &sub.cert];
    assert_eq!(
        verify(&cas().root.cert, &chain, &leaf.cert, T0, None),
        Err(PATH_LENGTH_EXCEEDED)
    );
}

#[test]
fn rfc5280_6_1_chain_verifies_at_check_time() {
    assert_eq!(
        verify(&cas().root.cert, &[], &cas().inter.cert, T0, None),
        Ok(())
    );
    for spec in [alice_spec(), LeafSpec::domain(DOMAIN, T0 - DAY, T0 + YEAR)] {
        let leaf = issue_leaf(&cas().inter, &spec).unwrap();
        assert_eq!(
            verify_leaf(&leaf.cert, T0, Some(X509PurposeId::SMIME_SIGN)),
            Ok(())
        );
        assert_eq!(
            verify_leaf(&leaf.cert, T0, Some(X509PurposeId::SMIME_ENCRYPT)),
            Ok(())
        );
        assert!(leaf.cert.public_key().unwrap().public_eq(&leaf.key));
    }
}

#[test]
fn rfc5280_4_1_2_5_validity_window_is_what_was_asked() {
    let expired = leaf(&LeafSpec::address(ALICE, T0 - 2 * YEAR, T0 - YEAR));
    assert_eq!(verify_leaf(&expired.cert, T0, None), Err(EXPIRED));
    let future = leaf(&LeafSpec::address(ALICE, T0 + DAY, T0 + YEAR));
    assert_eq!(verify_leaf(&future.cert, T0, None), Err(NOT_YET_VALID));
    assert_eq!(verify_leaf(&future.cert, T0 + 2 * DAY, None), Ok(()));
    // Inverted on purpose: built as asked, and no time can satisfy it.
    let inverted = leaf(&LeafSpec::address(ALICE, T0 + DAY, T0 - DAY));
    assert!(inverted.cert.not_before() > inverted.cert.not_after());
    assert!(verify_leaf(&inverted.cert, T0, None).is_err());
}

#[test]
fn rfc5280_4_2_1_6_address_binding_san_and_dn() {
    let cert = leaf(&alice_spec()).cert;
    assert_eq!(san_emails(&cert), [ALICE]);
    assert!(san_dns(&cert).is_empty());
    assert_eq!(dn_emails(&cert), [ALICE]);
    let subject: Vec<(Nid, String)> = cert
        .subject_name()
        .entries()
        .map(|e| (e.object().nid(), e.data().to_string().unwrap()))
        .collect();
    let expected = [
        (Nid::ORGANIZATIONNAME, TEST_ORGANIZATION),
        (Nid::COMMONNAME, ALICE),
        (Nid::PKCS9_EMAILADDRESS, ALICE),
    ];
    assert_eq!(subject, expected.map(|(nid, v)| (nid, v.to_string())));
}

#[test]
fn rfc5280_4_2_1_6_domain_binding_dns_name() {
    let cert = leaf(&LeafSpec::domain(DOMAIN, T0 - DAY, T0 + YEAR)).cert;
    assert_eq!(san_dns(&cert), [DOMAIN]);
    assert!(san_emails(&cert).is_empty());
    assert_eq!(dn_emails(&cert), [DOMAIN]);
}

#[test]
fn rfc5280_4_1_2_6_legacy_dn_only_bindings_have_no_san() {
    let mut spec = alice_spec();
    for (binding, dn) in [
        (SubjectBinding::AddressDnOnly(ALICE.into()), vec![ALICE]),
        (SubjectBinding::DomainDnOnly(DOMAIN.into()), vec![DOMAIN]),
        (SubjectBinding::None, vec![]),
    ] {
        spec.binding = binding;
        let cert = leaf(&spec).cert;
        assert!(cert.subject_alt_names().is_none());
        assert_eq!(dn_emails(&cert), dn);
    }
}

#[test]
fn rfc5280_4_2_1_6_extra_sans_add_names() {
    let mut spec = alice_spec();
    spec.extra_sans = vec![
        SubjectBinding::Address("dr.alice@other.example".into()),
        SubjectBinding::Domain(DOMAIN.into()),
        SubjectBinding::AddressDnOnly("legacy@other.example".into()),
        SubjectBinding::None,
    ];
    let cert = leaf(&spec).cert;
    assert_eq!(san_emails(&cert), [ALICE, "dr.alice@other.example"]);
    assert_eq!(san_dns(&cert), [DOMAIN]);
    assert_eq!(dn_emails(&cert), [ALICE, "legacy@other.example"]);
}

#[test]
fn rfc5280_4_2_1_6_non_ascii_names_are_refused() {
    let spec = LeafSpec::address("dr.zoë@direct.clinic.example", T0, T0 + DAY);
    let err = issue_leaf(&cas().inter, &spec).unwrap_err();
    assert!(matches!(
        err,
        PkiError::NotIa5 {
            field: "subject address or domain",
            ..
        }
    ));
    let mut spec = alice_spec();
    spec.crl_url = Some("http://pki.example/crl/é.crl".into());
    assert!(matches!(
        issue_leaf(&cas().inter, &spec),
        Err(PkiError::NotIa5 { .. })
    ));
}

#[test]
fn rfc5280_4_2_1_3_key_usage_per_spec() {
    use X509PurposeId as P;
    let cases = [
        (
            LeafUsage::SignAndEncrypt,
            "Digital Signature, Key Encipherment",
            true,
            true,
        ),
        (LeafUsage::SignOnly, "Digital Signature\n", true, false),
        (LeafUsage::EncryptOnly, "Key Encipherment\n", false, true),
        (LeafUsage::CertSignOnly, "Certificate Sign\n", false, false),
    ];
    for (usage, flags, can_sign, can_encrypt) in cases {
        let mut spec = alice_spec();
        spec.key_usage = usage;
        let cert = leaf(&spec).cert;
        let expected = format!("X509v3 Key Usage: critical\n                {flags}");
        assert!(text(&cert).contains(&expected), "{usage:?}");
        let ok = |allowed: bool| {
            if allowed {
                Ok(())
            } else {
                Err(INVALID_PURPOSE)
            }
        };
        assert_eq!(
            verify_leaf(&cert, T0, Some(P::SMIME_SIGN)),
            ok(can_sign),
            "{usage:?}"
        );
        assert_eq!(
            verify_leaf(&cert, T0, Some(P::SMIME_ENCRYPT)),
            ok(can_encrypt),
            "{usage:?}"
        );
    }
}

#[test]
fn rfc5280_4_2_1_12_email_protection_eku() {
    let with = leaf(&alice_spec()).cert;
    assert!(text(&with).contains("X509v3 Extended Key Usage: \n                E-mail Protection"));
    let mut spec = alice_spec();
    spec.email_protection_eku = false;
    let without = leaf(&spec).cert;
    assert!(!text(&without).contains("Extended Key Usage"));
}

#[test]
fn rfc5280_4_2_1_1_and_4_2_1_2_key_identifiers_link_the_chain() {
    let Cas { root, inter } = cas();
    let leaf = leaf(&alice_spec()).cert;
    let id = |c: &X509| c.subject_key_id().map(|k| k.as_slice().to_vec());
    let aki = |c: &X509| c.authority_key_id().map(|k| k.as_slice().to_vec());
    assert_eq!(id(&root.cert).map(|k| k.len()), Some(20));
    assert_eq!(aki(&root.cert), None);
    assert_eq!(aki(&inter.cert), id(&root.cert));
    assert_eq!(aki(&leaf), id(&inter.cert));
    assert!(id(&leaf).is_some());
    assert_ne!(id(&leaf), id(&inter.cert));
}

#[test]
fn rfc5280_4_2_1_13_crl_distribution_point_and_4_2_2_1_ca_issuers() {
    let mut spec = alice_spec();
    spec.crl_url = Some("http://pki.example/inter.crl".into());
    spec.aia_ca_issuers_url = Some("http://pki.example/inter.cer?a=1,b=@x".into());
    let cert = leaf(&spec).cert;
    let points = cert.crl_distribution_points().unwrap();
    let names = points
        .iter()
        .flat_map(|p| p.distpoint().unwrap().fullname().unwrap());
    let uris: Vec<&str> = names.filter_map(|n| n.uri()).collect();
    assert_eq!(uris, ["http://pki.example/inter.crl"]);
    let access = cert.authority_info().unwrap();
    assert_eq!(access.len(), 1);
    assert_eq!(access[0].method().nid(), Nid::AD_CA_ISSUERS);
    assert_eq!(
        access[0].location().uri(),
        Some("http://pki.example/inter.cer?a=1,b=@x")
    );
    let inter_aia = cas().inter.cert.authority_info().unwrap();
    assert_eq!(
        inter_aia[0].location().uri(),
        Some("http://pki.example/root.cer")
    );
    // The extensions must not disturb path validation.
    assert_eq!(verify_leaf(&cert, T0, None), Ok(()));
}

#[test]
fn rfc5280_4_1_2_2_serial_given_or_random_positive() {
    let mut spec = alice_spec();
    spec.serial = Some(0x8000_0000_0000_0001);
    let given = leaf(&spec).cert.serial_number().to_bn().unwrap();
    assert_eq!(given.to_vec(), 0x8000_0000_0000_0001_u64.to_be_bytes());
    let a = leaf(&alice_spec()).cert.serial_number().to_bn().unwrap();
    let b = leaf(&alice_spec()).cert.serial_number().to_bn().unwrap();
    for serial in [&a, &b] {
        assert!(!serial.is_negative());
        assert_eq!(serial.num_bits(), 63);
    }
    assert_ne!(a, b);
}

#[test]
fn rfc5280_4_1_2_3_signed_with_sha256_with_rsa() {
    let leaf = leaf(&alice_spec()).cert;
    for cert in [&cas().root.cert, &cas().inter.cert, &leaf] {
        assert_eq!(
            cert.signature_algorithm().object().nid(),
            Nid::SHA256WITHRSAENCRYPTION
        );
        assert_eq!(cert.version(), 2);
    }
    assert_eq!(cas().root.key.bits(), 2048);
}

#[test]
fn rfc5280_5_crl_lists_revoked_serial_and_verifies() {
    let inter = &cas().inter;
    let revoked = leaf(&alice_spec()).cert;
    let good = leaf(&alice_spec()).cert;
    let crl = issue_crl(inter, &[(&revoked, T0 - 3600)], T0 - DAY, T0 + 7 * DAY, 42).unwrap();
    match crl.get_by_cert(&revoked) {
        CrlStatus::Revoked(entry) => {
            assert_eq!(
                entry.serial_number().to_bn().unwrap(),
                revoked.serial_number().to_bn().unwrap()
            );
            assert_eq!(
                entry.revocation_date(),
                &*openssl::asn1::Asn1Time::from_unix(T0 - 3600).unwrap()
            );
        }
        _ => panic!("revoked certificate not listed"),
    }
    assert!(matches!(crl.get_by_cert(&good), CrlStatus::NotRevoked));
    assert!(crl.verify(&inter.key).unwrap());
    assert!(!crl.verify(&cas().root.key).unwrap());
    assert_eq!(
        crl.issuer_name().to_der().unwrap(),
        inter.cert.subject_name().to_der().unwrap()
    );
    let (critical, number) = crl.extension::<CrlNumber>().unwrap().unwrap();
    assert!(!critical);
    assert_eq!(number.to_bn().unwrap(), BigNum::from_u32(42).unwrap());
    // AuthorityKeyIdentifier { keyIdentifier [0] <the issuer's 20-byte SKI> } (§5.2.1).
    let mut aki = vec![0x30, 22, 0x80, 20];
    aki.extend_from_slice(inter.cert.subject_key_id().unwrap().as_slice());
    let der = crl.to_der().unwrap();
    assert!(der.windows(aki.len()).any(|w| w == aki));
}

#[test]
fn rfc5280_5_1_2_6_empty_crl_has_no_entries() {
    let crl = issue_crl(&cas().root, &[], T0, T0 + DAY, 1).unwrap();
    assert!(crl.get_revoked().is_none());
    assert!(crl.verify(&cas().root.key).unwrap());
    assert_eq!(
        crl.next_update().unwrap(),
        &*openssl::asn1::Asn1Time::from_unix(T0 + DAY).unwrap()
    );
}

#[test]
fn rfc5958_pkcs8_and_der_encodings_round_trip() {
    let alice = leaf(&alice_spec());
    let pem = alice.key_pem().unwrap();
    assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
    let from_pem = PKey::private_key_from_pem(&pem).unwrap();
    let from_der = PKey::private_key_from_pkcs8(&alice.key_der_pkcs8().unwrap()).unwrap();
    for key in [from_pem, from_der] {
        assert!(key.public_eq(&alice.key));
    }
    let cert_pem = alice.cert_pem().unwrap();
    assert!(cert_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(X509::from_pem(&cert_pem).unwrap(), alice.cert);
    assert_eq!(
        X509::from_der(&alice.cert_der().unwrap()).unwrap(),
        alice.cert
    );
}

#[test]
fn rfc7292_pkcs12_round_trip() {
    let alice = leaf(&alice_spec());
    let Cas { root, inter } = cas();
    let p12 = alice
        .to_pkcs12("s3cret", &[&inter.cert, &root.cert])
        .unwrap();
    let parsed = Pkcs12::from_der(&p12).unwrap().parse2("s3cret").unwrap();
    assert!(parsed.pkey.unwrap().public_eq(&alice.key));
    assert_eq!(parsed.cert.unwrap(), alice.cert);
    assert_eq!(parsed.ca.unwrap().len(), 2);
    assert!(Pkcs12::from_der(&p12).unwrap().parse2("wrong").is_err());
    assert!(matches!(
        alice.to_pkcs12("a\0b", &[]),
        Err(PkiError::PasswordContainsNul)
    ));
    let alone = alice.to_pkcs12("", &[]).unwrap();
    let alone = Pkcs12::from_der(&alone).unwrap().parse2("").unwrap();
    assert!(alone.ca.iter().all(|ca| ca.is_empty()));
}

/// A scratch directory removed on drop, so a failing assertion does not leave it behind.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let name = format!("hisp-pki-{tag}-{}-{}", std::process::id(), nanos.as_nanos());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Cross-checks our encoding with the `openssl` command, which parses independently of the
/// crate bindings; skipped when the command is not installed.
#[test]
fn rfc5280_6_1_openssl_cli_accepts_root_and_leaf() {
    let present = Command::new("openssl").arg("version").output();
    if !present.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no openssl command");
        return;
    }
    let root = &cas().root;
    let mut spec = alice_spec();
    spec.crl_url = Some("http://pki.example/root.crl".into());
    let alice = issue_leaf_for_key(root, &spec, shared_key()).unwrap();
    let crl = issue_crl(root, &[(&alice.cert, T0 - DAY)], T0 - DAY, T0 + DAY, 7).unwrap();
    let dir = ScratchDir::new("cli");
    let root_pem = dir.write("root.pem", &root.cert_pem().unwrap());
    let leaf_pem = dir.write("leaf.pem", &alice.cert_pem().unwrap());
    let crl_pem = dir.write("crl.pem", &crl.to_pem().unwrap());
    let at = T0.to_string();

    let (ok, out) = openssl_cli(&["verify", "-attime", &at, "-CAfile", &root_pem, &leaf_pem]);
    assert!(ok && out.contains(": OK"), "{out}");
    let (ok, out) = openssl_cli(&["x509", "-in", &leaf_pem, "-noout", "-ext", "subjectAltName"]);
    assert!(ok && out.contains(&format!("email:{ALICE}")), "{out}");
    let revocation = ["-crl_check", "-CRLfile", &crl_pem];
    let args = [
        &["verify", "-attime", &at, "-CAfile", &root_pem][..],
        &revocation,
        &[&leaf_pem],
    ];
    let (ok, out) = openssl_cli(&args.concat());
    assert!(!ok && out.contains("certificate revoked"), "{out}");
}
