//! `hisp trust explain --cert FILE [--address A] [--at T]`: why a certificate is or is not
//! trusted for an address, one check per line as the daemon makes them: validity, key
//! usage, key size, the path to an anchor (intermediates fetched by caIssuers), revocation
//! (CRLs fetched from the distribution points), and the binding to the address.

use crate::cmd_admin::{load, runtime};
use crate::files;
use anyhow::{anyhow, Result};
use hisp_direct::binding::check_binding_in;
use hisp_direct::cert::ParsedCert;
use hisp_direct::time::format_rfc3339;
use hisp_direct::trust::{check_usage, evaluate, TrustAnchors, TrustInput, Usage};
use hisp_discovery::complete::complete;
use hisp_discovery::fetch::Fetcher;
use hisp_discovery::select::{Candidate, Source};
use hisp_server::directory::Directory;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `hisp trust explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The certificate (PEM or DER).
    #[arg(long)]
    cert: PathBuf,
    /// The address it should speak for.
    #[arg(long)]
    address: Option<String>,
    /// Judge at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Use the anchors in force for this configuration (all its domains, bundles included).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Anchor file(s), instead of or beside --config.
    #[arg(long = "anchor")]
    anchors: Vec<PathBuf>,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, ok: Option<bool>, what: &str, detail: &str) {
        let mark = match ok {
            Some(true) => "pass",
            Some(false) => {
                self.failed = true;
                "FAIL"
            }
            None => "info",
        };
        println!("{mark:<5} {what:<12} {detail}");
    }
}

/// Run `hisp trust explain`; exit 0 when trusted, 6 when not.
pub fn run(a: &ExplainArgs) -> Result<u8> {
    let cert = files::certs(std::slice::from_ref(&a.cert), "certificate")?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{} holds no certificate", a.cert.display()))?;
    let cert = Arc::new(ParsedCert::from_x509(cert)?);
    let at = match &a.at {
        Some(t) => hisp_direct::time::parse_rfc3339(t)?,
        None => files::now(),
    };
    let rt = runtime()?;
    let mut anchors = files::certs(&a.anchors, "anchor")?;
    let mut profile = hisp_direct::alg::Profile::strict();
    if let Some(config) = &a.config {
        let (cfg, store) = load(config)?;
        profile = cfg.crypto.profile();
        let dir = rt.block_on(Directory::load(&cfg, &store))?;
        for d in &dir.domains {
            anchors.extend(d.anchors.certs().iter().cloned());
        }
    }
    let mut r = Report { failed: false };
    r.line(
        None,
        "certificate",
        &format!("{} (sha256 {})", cert.subject, cert.sha256_hex()),
    );
    let issuer = hisp_direct::cert::name_string(cert.x509.issuer_name());
    r.line(None, "issuer", &issuer);
    let window = format!(
        "{} .. {} (checked at {})",
        cert.not_before.map(format_rfc3339).unwrap_or_default(),
        cert.not_after.map(format_rfc3339).unwrap_or_default(),
        format_rfc3339(at)
    );
    let valid = cert.not_before.is_none_or(|t| t <= at) && cert.not_after.is_none_or(|t| t >= at);
    r.line(Some(valid), "validity", &window);
    // Direct allows separate signing and encryption certificates: unfit for one is a note,
    // unfit for both a failure.
    let mut fit = 0;
    for (usage, what) in [
        (Usage::Encryption, "encryption"),
        (Usage::Signing, "signing"),
    ] {
        match check_usage(&cert.x509, usage) {
            Ok(()) => {
                fit += 1;
                r.line(Some(true), "key usage", &format!("fit for {what}"));
            }
            Err(e) => r.line(None, "key usage", &e.to_string()),
        }
    }
    if fit == 0 {
        r.line(
            Some(false),
            "key usage",
            "fit for neither encryption nor signing",
        );
    }
    let bits = hisp_direct::cert::rsa_bits(&cert.x509);
    let size_ok = bits.is_some_and(|b| b >= 2048);
    let size = bits
        .map(|b| format!("RSA {b} bits"))
        .unwrap_or("not an RSA key".into());
    r.line(
        Some(size_ok),
        "key size",
        &format!("{size} (strict profile: RSA >= 2048)"),
    );

    let candidate = Candidate {
        cert: cert.clone(),
        source: Source::Dns,
    };
    let fetcher = Fetcher::new(Duration::from_secs(10));
    let done = rt.block_on(complete(&fetcher, &[candidate], &anchors, &[], at, false));
    for t in &done.trail {
        r.line(None, "fetched", t);
    }
    if anchors.is_empty() {
        r.line(
            Some(false),
            "chain",
            "no anchors (give --config or --anchor)",
        );
    } else {
        let trust = TrustAnchors::new(anchors.clone());
        let input = TrustInput {
            anchors: &trust,
            intermediates: &done.intermediates,
            crls: &done.crls,
            at,
            profile: &profile,
        };
        match evaluate(&cert.x509, Usage::Encryption, &input) {
            Ok(path) => {
                let names: Vec<String> = path
                    .chain
                    .iter()
                    .map(|c| hisp_direct::cert::subject_string(c))
                    .collect();
                r.line(Some(true), "chain", &names.join(" -> "));
                for n in &path.notes {
                    r.line(None, "note", n);
                }
                r.line(Some(true), "revocation", "not revoked by any CRL at hand");
            }
            Err(e) => r.line(Some(false), "chain", &e.to_string()),
        }
    }
    if let Some(why) = done.unknown.values().next() {
        r.line(Some(false), "revocation", why);
    }
    let bound: Vec<String> = cert
        .bindings
        .iter()
        .map(|b| format!("{} {}", b.kind(), b.value()))
        .collect();
    r.line(None, "binds", &bound.join(", "));
    if let Some(address) = &a.address {
        let address = address.trim().to_ascii_lowercase();
        match check_binding_in(&cert.bindings, &address) {
            Ok(b) => r.line(
                Some(true),
                "binding",
                &format!("{address} via {} {}", b.kind(), b.value()),
            ),
            Err(_) => r.line(Some(false), "binding", &format!("not bound to {address}")),
        }
    }
    let verdict = if r.failed { "NOT trusted" } else { "trusted" };
    let for_whom = a
        .address
        .as_deref()
        .map(|x| format!(" for {x}"))
        .unwrap_or_default();
    println!("=> {verdict}{for_whom} at {}", format_rfc3339(at));
    Ok(if r.failed { 6 } else { 0 })
}
