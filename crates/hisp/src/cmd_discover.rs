//! `hisp discover ADDRESS`: find the certificates to encrypt to an address the way the
//! daemon does (DNS CERT at the address, then at its domain) and say which are usable and
//! why each other one is not. Exit 0 when one is usable, 3 when none, 1 when DNS gave no
//! answer, 2 for bad arguments.

use crate::files;
use anyhow::{anyhow, Context, Result};
use hisp_direct::alg::Profile;
use hisp_direct::trust::TrustAnchors;
use hisp_discovery::dns::DnsCerts;
use hisp_discovery::select::Policy;
use hisp_discovery::{Discovery, Found};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `hisp discover`.
#[derive(clap::Args)]
pub struct DiscoverArgs {
    /// The Direct address.
    address: String,
    /// Ask this DNS server (HOST:PORT) instead of the system resolver.
    #[arg(long)]
    dns: Option<String>,
    /// Trust anchor certificate(s) (PEM or DER); repeat for several.
    #[arg(long = "anchor")]
    anchors: Vec<PathBuf>,
    /// Intermediate CA certificates for path building.
    #[arg(long = "intermediate")]
    intermediates: Vec<PathBuf>,
    /// CRL(s) to check revocation against.
    #[arg(long = "crl")]
    crls: Vec<PathBuf>,
    /// Judge validity at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Use a certificate whose CRL cannot be fetched (default: reject it).
    #[arg(long)]
    allow_unreachable_crl: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `hisp discover`.
pub fn run(a: &DiscoverArgs) -> Result<u8> {
    let anchors = TrustAnchors::new(files::certs(&a.anchors, "anchor")?);
    let intermediates = files::certs(&a.intermediates, "intermediate")?;
    let crls = files::crls(&a.crls)?;
    let at = match &a.at {
        Some(t) => hisp_direct::time::parse_rfc3339(t)?,
        None => files::now(),
    };
    let timeout = Duration::from_secs(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let found = rt.block_on(async {
        let dns = dns_from(a.dns.as_deref(), timeout).await?;
        let profile = Profile::strict();
        let policy = Policy {
            anchors: &anchors,
            intermediates: &intermediates,
            crls: &crls,
            at,
            profile: &profile,
        };
        let discovery = Discovery::new(dns, timeout).allow_unreachable_crl(a.allow_unreachable_crl);
        Ok::<_, anyhow::Error>(discovery.discover(&a.address, &policy).await)
    })?;
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hisp discover: {e}");
            return Ok(1);
        }
    };
    if a.json {
        println!("{}", to_json(&a.address, &found));
    } else {
        print!("{}", to_text(&a.address, &found, a.anchors.is_empty()));
    }
    Ok(if found.usable.is_empty() { 3 } else { 0 })
}

/// The DNS side of discovery: the server of `--dns HOST:PORT`, else the system resolver.
pub(crate) async fn dns_from(arg: Option<&str>, timeout: Duration) -> Result<DnsCerts> {
    match arg {
        Some(s) => {
            let addr = tokio::net::lookup_host(s)
                .await
                .with_context(|| format!("--dns {s}: not HOST:PORT"))?
                .next()
                .ok_or_else(|| anyhow!("--dns {s}: no address"))?;
            Ok(DnsCerts::at(addr, timeout))
        }
        None => Ok(DnsCerts::system(timeout)?),
    }
}

fn to_json(address: &str, f: &Found) -> serde_json::Value {
    json!({
        "address": address.trim().to_ascii_lowercase(),
        "certificates": f.usable.iter().map(|u| json!({
            "sha256": u.cert.sha256_hex(),
            "subject": u.cert.subject,
            "source": u.source.as_str(),
            "binding": u.binding.kind(),
            "bound_to": u.binding.value(),
            "not_after": u.cert.not_after.map(hisp_direct::time::format_rfc3339),
        })).collect::<Vec<_>>(),
        "rejected": f.rejected.iter().map(|r| json!({
            "sha256": r.sha256,
            "subject": r.subject,
            "source": r.source.as_str(),
            "reason": r.reason,
        })).collect::<Vec<_>>(),
        "lookups": f.trail,
    })
}

fn to_text(address: &str, f: &Found, no_anchors: bool) -> String {
    let mut out = String::new();
    for t in &f.trail {
        out.push_str(&format!("  {t}\n"));
    }
    for u in &f.usable {
        out.push_str(&format!(
            "usable   {} {} ({}-bound to {}, from {})\n",
            u.cert.sha256_hex(),
            u.cert.subject,
            u.binding.kind(),
            u.binding.value(),
            u.source.as_str()
        ));
    }
    for r in &f.rejected {
        out.push_str(&format!(
            "rejected {} {}: {}\n",
            r.sha256, r.subject, r.reason
        ));
    }
    if f.usable.is_empty() {
        out.push_str(&format!("no usable certificate for {address}\n"));
        if no_anchors && !f.rejected.is_empty() {
            out.push_str("(no --anchor given: nothing can be trusted)\n");
        }
    }
    out
}
