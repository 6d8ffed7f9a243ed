//! `hisp open` (DESIGN §3): decrypt, verify, evaluate trust and binding, unwrap. Exit 0 all
//! good; 2 usage or unreadable input; 4 cannot decrypt; 5 bad signature; 6 untrusted
//! signer or binding mismatch. With `--json` the verdict is printed whatever the outcome.

use crate::files;
use anyhow::{anyhow, Result};
use hisp_direct::alg::Profile;
use hisp_direct::open::{open, OpenOptions, Verdict};
use hisp_direct::trust::TrustAnchors;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Arguments of `hisp open`.
#[derive(clap::Args)]
pub struct OpenArgs {
    /// Our certificate (PEM or DER); may be omitted when --key is a PKCS#12 file.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Our private key (PEM/DER, PKCS#8/PKCS#1) or PKCS#12 file.
    #[arg(long)]
    key: PathBuf,
    /// Password of an encrypted key or PKCS#12 file.
    #[arg(long)]
    key_password: Option<String>,
    /// Trust anchor certificate(s); repeat for several (each file may hold many).
    #[arg(long = "anchor", required = true)]
    anchors: Vec<PathBuf>,
    /// Extra intermediate certificates for path building.
    #[arg(long = "intermediate")]
    intermediates: Vec<PathBuf>,
    /// CRL(s) to check revocation against (PEM or DER).
    #[arg(long = "crl")]
    crls: Vec<PathBuf>,
    /// Evaluate validity at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Crypto profile: strict (default) or legacy (accepts SHA-1, 3DES, 1024-bit RSA).
    #[arg(long, default_value = "strict")]
    profile: String,
    /// The SMTP envelope sender, which must also be bound to the signer.
    #[arg(long)]
    sender: Option<String>,
    /// The message (default: stdin).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// Where to write the unwrapped message (default: stdout, unless --json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the verdict as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Print this process's peak resident memory to stderr at exit (benchmarks).
    #[arg(long, hide = true)]
    report_peak_rss: bool,
}

/// Everything `open` needs, read from the arguments and files.
struct Inputs {
    profile: Profile,
    at: i64,
    cred: hisp_direct::keys::Credential,
    anchors: TrustAnchors,
    intermediates: Vec<openssl::x509::X509>,
    crls: Vec<openssl::x509::X509Crl>,
    message: Vec<u8>,
}

fn inputs(a: &OpenArgs) -> Result<Inputs> {
    let profile = Profile::by_name(&a.profile)
        .ok_or_else(|| anyhow!("--profile must be strict or legacy, not {:?}", a.profile))?;
    let at = match &a.at {
        Some(t) => hisp_direct::time::parse_rfc3339(t)?,
        None => files::now(),
    };
    Ok(Inputs {
        profile,
        at,
        cred: files::credential(a.cert.as_deref(), &a.key, a.key_password.as_deref())?,
        anchors: TrustAnchors::new(files::certs(&a.anchors, "anchor")?),
        intermediates: files::certs(&a.intermediates, "intermediate")?,
        crls: files::crls(&a.crls)?,
        message: match a.input.as_deref() {
            Some(p) => crate::sealed_input::read(p)?,
            None => files::read_input(None)?,
        },
    })
}

/// Run `hisp open`.
pub fn run(a: &OpenArgs) -> Result<u8> {
    let i = match inputs(a) {
        Ok(i) => i,
        Err(e) => {
            // Unreadable input or key material: exit 2, and the JSON verdict still appears.
            let reason = format!("{e:#}");
            if a.json {
                println!("{}", unreadable_json(&reason, &a.profile));
            }
            eprintln!("hisp open: {reason}");
            return Ok(2);
        }
    };
    let mut opts = OpenOptions::new(std::slice::from_ref(&i.cred), &i.anchors, i.at, &i.profile);
    opts.intermediates = &i.intermediates;
    opts.crls = &i.crls;
    opts.envelope_sender = a.sender.as_deref();
    let message = i.message;
    let opened = open(message, &opts);
    let v = &opened.verdict;
    let code = v.exit_code();
    if a.json {
        println!("{}", verdict_json(v));
    }
    for e in &v.errors {
        eprintln!("hisp open: {e}");
    }
    for w in &v.warnings {
        eprintln!("hisp open: warning: {w}");
    }
    if let Some(inner) = opened.trusted_inner() {
        if a.out.is_some() || !a.json {
            files::write_output(a.out.as_deref(), inner)?;
        }
    } else if !a.json {
        eprintln!(
            "hisp open: {} (exit {code}); nothing written",
            next_step(code)
        );
    }
    if a.report_peak_rss {
        report_peak_rss();
    }
    Ok(code)
}

fn next_step(code: u8) -> &'static str {
    match code {
        2 => "the input is not a message",
        4 => "check that --cert/--key are the recipient's and that the message is Direct S/MIME",
        5 => "the message was altered or signed incorrectly; ask the sender to resend",
        _ => "add the sender's CA with --anchor, or check --at and the sender's address",
    }
}

/// The DESIGN §3 JSON object. `trusted` answers "may this signer speak for this sender":
/// path trust and address binding both; `chain_trusted` and `bound` give each alone.
pub fn verdict_json(v: &Verdict) -> Value {
    let signer = v.signer.as_ref().map(|s| {
        json!({
            "subject": s.subject,
            "addresses": s.addresses,
            "sha256": s.sha256,
            "not_before": s.not_before,
            "not_after": s.not_after,
        })
    });
    json!({
        "decrypted": v.decrypted,
        "signature_valid": v.signature_valid,
        "trusted": v.trusted && v.bound,
        "chain_trusted": v.trusted,
        "bound": v.bound,
        "signer": signer,
        "from": v.from,
        "content_type": v.content_type,
        "signed_content_type": v.signed_content_type,
        "wrapped": v.wrapped,
        "algorithms": {
            "content_encryption": v.algorithms.content_encryption,
            "key_transport": v.algorithms.key_transport,
            "digest": v.algorithms.digest,
            "signature": v.algorithms.signature,
        },
        "signing_time": v.signing_time.map(hisp_direct::time::format_rfc3339),
        "chain": v.chain,
        "binding": v.binding.as_ref().map(|b| json!({"kind": b.kind(), "value": b.value()})),
        "profile": v.profile,
        "errors": v.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "error_kinds": v.errors.iter().map(|e| e.kind()).collect::<Vec<_>>(),
        "warnings": v.warnings,
        "exit_code": v.exit_code(),
    })
}

/// The verdict object for input that never reached the checks.
fn unreadable_json(reason: &str, profile: &str) -> Value {
    json!({
        "decrypted": false,
        "signature_valid": false,
        "trusted": false,
        "chain_trusted": false,
        "bound": false,
        "signer": null,
        "from": null,
        "content_type": null,
        "algorithms": {"content_encryption": null, "key_transport": null, "digest": null, "signature": null},
        "profile": profile,
        "errors": [reason],
        "error_kinds": ["input"],
        "warnings": [],
        "exit_code": 2,
    })
}

fn report_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        eprintln!("peak-rss {}", line.trim_start_matches("VmHWM:").trim());
    }
}
