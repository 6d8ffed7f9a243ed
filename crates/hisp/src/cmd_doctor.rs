//! `hisp doctor DOMAIN_OR_ADDRESS`: check a Direct domain the way a test tool would, and
//! say what to fix: MX, DNS CERT and LDAP publication, each certificate (binding, validity,
//! key usage, key size, chain, CRL), what discovery would choose, and SMTP with STARTTLS.
//! Exit 0 when nothing fails.

use anyhow::{anyhow, Result};
use hisp_direct::alg::Profile;
use hisp_direct::trust::TrustAnchors;
use hisp_discovery::dns::DnsCerts;
use hisp_discovery::record::domain_owner;
use hisp_discovery::select::Policy;
use hisp_discovery::Discovery;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Arguments of `hisp doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// A Direct domain, or an address (which is checked too).
    target: String,
    /// Ask this DNS server (HOST:PORT) instead of the system resolver.
    #[arg(long)]
    dns: Option<String>,
    /// Anchors to judge the certificates' chains against.
    #[arg(long = "anchor")]
    anchors: Vec<PathBuf>,
    /// Probe SMTP here instead of the MX hosts on port 25.
    #[arg(long)]
    smtp: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Pass,
    Warn,
    Fail,
}

struct Check {
    level: Level,
    what: &'static str,
    detail: String,
    fix: String,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, level: Level, what: &'static str, detail: String, fix: &str) {
        self.0.push(Check {
            level,
            what,
            detail,
            fix: fix.to_string(),
        });
    }
}

/// Run `hisp doctor`.
pub fn run(a: &DoctorArgs) -> Result<u8> {
    let anchors = TrustAnchors::new(crate::files::certs(&a.anchors, "anchor")?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = rt.block_on(examine(a, &anchors))?;
    let failed = checks.0.iter().any(|c| c.level == Level::Fail);
    if a.json {
        let v = json!({
            "target": a.target,
            "ok": !failed,
            "checks": checks.0.iter().map(|c| json!({
                "level": match c.level { Level::Pass => "pass", Level::Warn => "warn", Level::Fail => "fail" },
                "check": c.what,
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        for c in &checks.0 {
            let mark = match c.level {
                Level::Pass => "pass",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{mark}  {:<12} {}", c.what, c.detail);
            if c.level != Level::Pass && !c.fix.is_empty() {
                println!("      {:<12} fix: {}", "", c.fix);
            }
        }
        let n = |l| checks.0.iter().filter(|c| c.level == l).count();
        println!(
            "{} passed, {} warnings, {} failed",
            n(Level::Pass),
            n(Level::Warn),
            n(Level::Fail)
        );
    }
    Ok(u8::from(failed))
}

async fn examine(a: &DoctorArgs, anchors: &TrustAnchors) -> Result<Checks> {
    let timeout = Duration::from_secs(3);
    let dns = crate::cmd_discover::dns_from(a.dns.as_deref(), timeout).await?;
    let target = a.target.trim().to_ascii_lowercase();
    let (address, domain) = match target.rsplit_once('@') {
        Some((_, d)) => (Some(target.clone()), d.to_string()),
        None => (None, target.clone()),
    };
    let mut c = Checks::default();
    let mx_hosts = check_mx(&dns, &domain, &mut c).await?;
    // What discovery finds for the address, or for a made-up address in the domain (which
    // exercises the domain-bound path).
    let probe = address
        .clone()
        .unwrap_or_else(|| format!("doctor-probe@{domain}"));
    let profile = Profile::strict();
    let policy = Policy {
        anchors,
        intermediates: &[],
        crls: &[],
        at: crate::files::now(),
        profile: &profile,
    };
    let discovery = Discovery::new(dns, timeout);
    match discovery.discover(&probe, &policy).await {
        Ok(f) => {
            for t in &f.trail {
                let level = if t.contains("NXDOMAIN") || t.contains("no ") {
                    Level::Warn
                } else {
                    Level::Pass
                };
                c.add(level, "publication", t.clone(), "publish CERT records (hisp dns records) or an LDAP directory (hisp ldap export)");
            }
            for u in &f.usable {
                c.add(
                    Level::Pass,
                    "certificate",
                    format!(
                        "{} ({}-bound to {}, from {}, sha256 {})",
                        u.cert.subject,
                        u.binding.kind(),
                        u.binding.value(),
                        u.source.as_str(),
                        u.cert.sha256_hex()
                    ),
                    "",
                );
            }
            for r in &f.rejected {
                let no_anchor = anchors.certs().is_empty() && r.reason.starts_with("trust:");
                let (level, fix) = if no_anchor {
                    (Level::Warn, "give the CA with --anchor to check the chain")
                } else {
                    (
                        Level::Fail,
                        "replace or fix this certificate (see the reason)",
                    )
                };
                c.add(
                    level,
                    "certificate",
                    format!("{} {}: {}", r.sha256, r.subject, r.reason),
                    fix,
                );
            }
            let any_found = !f.usable.is_empty() || !f.rejected.is_empty();
            if !any_found {
                c.add(
                    Level::Fail,
                    "discovery",
                    format!("no certificate published for {probe}"),
                    "publish a certificate in DNS CERT or LDAP",
                );
            } else if f.usable.is_empty() && !anchors.certs().is_empty() {
                c.add(
                    Level::Fail,
                    "discovery",
                    format!("no usable certificate for {probe}"),
                    "see the certificate lines above",
                );
            } else if !f.usable.is_empty() {
                c.add(
                    Level::Pass,
                    "discovery",
                    format!("{} usable certificate(s) for {probe}", f.usable.len()),
                    "",
                );
            }
        }
        Err(e) => c.add(
            Level::Fail,
            "discovery",
            e.to_string(),
            "check the domain's DNS and LDAP servers",
        ),
    }
    let targets: Vec<String> = match &a.smtp {
        Some(s) => vec![s.clone()],
        None => mx_hosts
            .iter()
            .map(|h| format!("{}:25", h.trim_end_matches('.')))
            .collect(),
    };
    for t in targets {
        check_smtp(&t, &mut c).await;
    }
    Ok(c)
}

async fn check_mx(dns: &DnsCerts, domain: &str, c: &mut Checks) -> Result<Vec<String>> {
    let owner = domain_owner(domain)?;
    match dns.mx(&owner).await {
        Ok(mx) if !mx.is_empty() => {
            let hosts: Vec<String> = mx.iter().map(|(_, h)| h.to_string()).collect();
            let list: Vec<String> = mx.iter().map(|(p, h)| format!("{p} {h}")).collect();
            c.add(Level::Pass, "mx", list.join(", "), "");
            Ok(hosts)
        }
        Ok(_) => {
            c.add(
                Level::Warn,
                "mx",
                format!("no MX for {domain}: mail goes to its A record (RFC 5321 §5.1)"),
                "publish an MX record for the HISP's relay",
            );
            Ok(vec![owner.to_string()])
        }
        Err(e) => {
            c.add(
                Level::Fail,
                "mx",
                e.to_string(),
                "check the domain's name servers",
            );
            Ok(Vec::new())
        }
    }
}

/// Connect, read the greeting, EHLO, STARTTLS, and report the server's certificate.
async fn check_smtp(target: &str, c: &mut Checks) {
    let t = Duration::from_secs(10);
    match tokio::time::timeout(t, probe_smtp(target)).await {
        Ok(Ok((greeting, tls))) => {
            c.add(Level::Pass, "smtp", format!("{target}: {greeting}"), "");
            match tls {
                Some(detail) => c.add(Level::Pass, "starttls", format!("{target}: {detail}"), ""),
                None => c.add(
                    Level::Fail,
                    "starttls",
                    format!("{target}: STARTTLS not offered"),
                    "enable STARTTLS on the relay port (Direct requires TLS between HISPs)",
                ),
            }
        }
        Ok(Err(e)) => c.add(
            Level::Fail,
            "smtp",
            format!("{target}: {e}"),
            "make the relay port reachable from other HISPs",
        ),
        Err(_) => c.add(
            Level::Fail,
            "smtp",
            format!("{target}: no answer within {t:?}"),
            "make the relay port reachable from other HISPs",
        ),
    }
}

async fn read_reply<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<(u16, Vec<String>)> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            anyhow::bail!("connection closed");
        }
        let line = line.trim_end().to_string();
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("not SMTP: {line:?}"))?;
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line.get(4..).unwrap_or_default().to_string());
        if last {
            return Ok((code, lines));
        }
    }
}

async fn probe_smtp(target: &str) -> Result<(String, Option<String>)> {
    let addr: SocketAddr = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or_else(|| anyhow!("no address"))?;
    let stream = TcpStream::connect(addr).await?;
    let mut r = BufReader::new(stream);
    let (code, greeting) = read_reply(&mut r).await?;
    if code != 220 {
        anyhow::bail!("greeting {code} {}", greeting.join(" "));
    }
    r.get_mut()
        .write_all(b"EHLO hisp-doctor.invalid\r\n")
        .await?;
    let (code, ehlo) = read_reply(&mut r).await?;
    if code != 250 {
        anyhow::bail!("EHLO answered {code}");
    }
    let greeting = format!("220 {}", greeting.join(" "));
    if !ehlo.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
        return Ok((greeting, None));
    }
    r.get_mut().write_all(b"STARTTLS\r\n").await?;
    let (code, _) = read_reply(&mut r).await?;
    if code != 220 {
        anyhow::bail!("STARTTLS answered {code}");
    }
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())?;
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let ssl = b.build().configure()?.into_ssl("hisp-doctor.invalid")?;
    let mut tls = tokio_openssl::SslStream::new(ssl, r.into_inner())?;
    std::pin::Pin::new(&mut tls).connect().await?;
    let s = tls.ssl();
    let version = s.version_str().to_string();
    let cert = s
        .peer_certificate()
        .map(|c| {
            let until = c.not_after().to_string();
            format!(
                "certificate {} (until {until})",
                hisp_direct::cert::subject_string(&c)
            )
        })
        .unwrap_or_else(|| "no certificate".into());
    let _ = tls.write_all(b"QUIT\r\n").await;
    Ok((greeting, Some(format!("{version}, {cert}"))))
}
