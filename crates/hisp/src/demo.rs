//! `hisp demo`: the Direct exchange end to end, in process, between two fresh health domains
//! with their own test CAs: seal → open → `processed` MDN sealed, opened and matched to the
//! original → `dispatched` MDN likewise (final-destination delivery was requested).
//! Each step prints what happened; any failed check stops the demo with exit 1.

use crate::files;
use anyhow::{bail, Context, Result};
use hisp_direct::alg::Profile;
use hisp_direct::keys::Credential;
use hisp_direct::mdn::{build_mdn, parse_mdn, Disposition, MdnSpec};
use hisp_direct::notification::{same_message_id, NotificationRequest};
use hisp_direct::open::{open, OpenOptions, Opened};
use hisp_direct::pki::{self, LeafSpec};
use hisp_direct::seal::{seal, SealOptions};
use hisp_direct::trust::TrustAnchors;
use std::time::Instant;

struct Domain {
    name: &'static str,
    address: &'static str,
    ca: openssl::x509::X509,
    anchors: TrustAnchors,
    cred: Credential,
}

fn domain(name: &'static str, address: &'static str, now: i64) -> Result<Domain> {
    let ca = pki::new_root_ca(
        &format!("Hisp Demo CA for {name}"),
        now - 3600,
        now + 86_400 * 365,
        2048,
    )?;
    let leaf = pki::issue_leaf(
        &ca,
        &LeafSpec::address(address, now - 3600, now + 86_400 * 365),
    )?;
    let cred = Credential::new(leaf.cert, leaf.key, vec![])?;
    Ok(Domain {
        name,
        address,
        anchors: TrustAnchors::new(vec![ca.cert.clone()]),
        ca: ca.cert,
        cred,
    })
}

/// Run the demo.
pub fn run() -> Result<u8> {
    let now = files::now();
    println!("Hisp demo: a Direct exchange between two fresh health domains (in process)\n");
    let mut alpha = domain(
        "direct.alpha-clinic.example",
        "dr.alice@direct.alpha-clinic.example",
        now,
    )?;
    let mut beta = domain(
        "direct.beta-hospital.example",
        "dr.bob@direct.beta-hospital.example",
        now,
    )?;
    // Each HISP trusts its own CA and its peer's, as operators exchange anchors.
    alpha.anchors = TrustAnchors::new(vec![alpha.ca.clone(), beta.ca.clone()]);
    beta.anchors = TrustAnchors::new(vec![beta.ca.clone(), alpha.ca.clone()]);
    for d in [&alpha, &beta] {
        let sha = hisp_direct::cert::sha256_hex(d.cred.cert());
        println!(
            "[setup] {}: test CA + address-bound certificate for {} (sha256 {}…)",
            d.name,
            d.address,
            &sha[..16]
        );
    }
    let msg_id = message_id(alpha.name)?;
    let original = clinical_message(&alpha, &beta, &msg_id, now);
    step(1, &format!("{} composes a referral ({} bytes, Message-ID {msg_id}) asking for final-destination delivery notification", alpha.address, original.len()));

    let t = Instant::now();
    let sealed = seal(
        &original,
        &alpha.cred,
        &[beta.cred.cert()],
        &SealOptions::new(now),
    )?;
    step(2, &format!("sealed: message/rfc822 wrapped, signed (sha256), encrypted (aes-256-cbc, RSA PKCS#1 v1.5) for {} → {} bytes in {:.1} ms", beta.address, sealed.len(), ms(t)));

    let opened = open_at(&beta, sealed, now)?;
    let inner = opened.trusted_inner().context("no inner message")?;
    let v = &opened.verdict;
    step(3, &format!(
        "opened at {}: decrypted, signature valid, signer trusted (chain: {}), bound to {} → {} byte message",
        beta.name,
        v.chain.join(" → "),
        v.binding.as_ref().map(|b| b.value()).unwrap_or("?"),
        inner.len()
    ));
    if inner != original.as_slice() {
        bail!("the unwrapped message differs from what was sent");
    }
    let request =
        NotificationRequest::read(inner).context("the message is itself a notification")?;

    for (n, disposition, label) in [
        (4, Disposition::processed(), "processed"),
        (5, Disposition::dispatched(), "dispatched"),
    ] {
        let final_dest = label == "dispatched" && request.final_destination_delivery;
        let spec = mdn_spec(&beta, &alpha, &msg_id, disposition, final_dest, now)?;
        let mdn = build_mdn(&spec);
        let sealed_mdn = seal(
            &mdn,
            &beta.cred,
            &[alpha.cred.cert()],
            &SealOptions::new(now),
        )?;
        let back = open_at(&alpha, sealed_mdn, now)?;
        let parsed = parse_mdn(back.trusted_inner().context("no MDN")?)?;
        let matched = parsed
            .correlation_id()
            .is_some_and(|id| same_message_id(id, &msg_id));
        if !matched || parsed.disposition.disposition_type.as_str() != label {
            bail!("the {label} MDN does not match the original message");
        }
        step(
            n,
            &format!(
            "{label} MDN from {} sealed, opened at {} (trusted, bound) and matched to {msg_id}{}",
            beta.address,
            alpha.name,
            if final_dest { " (X-DIRECT-FINAL-DESTINATION-DELIVERY)" } else { "" }
        ),
        );
    }
    println!("\nTimeline for {msg_id}: submitted → sealed → opened → processed → dispatched  ✔");
    println!("Next: `hisp init --domain YOUR.DOMAIN` writes a configuration with a test CA.");
    Ok(0)
}

fn step(n: u32, text: &str) {
    println!("[{n}] {text}");
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn open_at(d: &Domain, message: Vec<u8>, now: i64) -> Result<Opened> {
    let profile = Profile::strict();
    let opts = OpenOptions::new(std::slice::from_ref(&d.cred), &d.anchors, now, &profile);
    let opened = open(message, &opts);
    if !opened.verdict.ok() {
        let reasons: Vec<String> = opened
            .verdict
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        bail!("open at {} failed: {}", d.name, reasons.join("; "));
    }
    Ok(opened)
}

fn message_id(domain: &str) -> Result<String> {
    let mut r = [0u8; 12];
    openssl::rand::rand_bytes(&mut r)?;
    Ok(format!("<{}@{domain}>", hex::encode(r)))
}

fn clinical_message(from: &Domain, to: &Domain, id: &str, now: i64) -> Vec<u8> {
    let date = hisp_direct::time::format_rfc5322(now);
    format!(
        "From: Dr Alice <{}>\r\nTo: Dr Bob <{}>\r\nSubject: Referral: cardiology consult\r\nDate: {date}\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\nDisposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\nContent-Type: multipart/mixed; boundary=\"part\"\r\n\r\n--part\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear Dr Bob, please see the attached summary of care (synthetic test patient).\r\n--part\r\nContent-Type: application/xml; name=\"summary.xml\"\r\nContent-Disposition: attachment; filename=\"summary.xml\"\r\n\r\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>Summary of care (test)</title></ClinicalDocument>\r\n--part--\r\n",
        from.address, to.address
    )
    .into_bytes()
}

fn mdn_spec(
    from: &Domain,
    to: &Domain,
    original_id: &str,
    d: Disposition,
    final_dest: bool,
    now: i64,
) -> Result<MdnSpec> {
    Ok(MdnSpec {
        reporting_ua_name: from.name.to_string(),
        reporting_ua_product: Some(format!("Hisp {}", env!("CARGO_PKG_VERSION"))),
        from: from.address.to_string(),
        to: to.address.to_string(),
        message_id: message_id(from.name)?,
        date: hisp_direct::time::format_rfc5322(now),
        original_message_id: original_id.to_string(),
        original_subject: Some("Referral: cardiology consult".into()),
        original_recipient: None,
        final_recipient: from.address.to_string(),
        disposition: d,
        error: None,
        failure: None,
        final_destination_delivery: final_dest,
        text: None,
    })
}
