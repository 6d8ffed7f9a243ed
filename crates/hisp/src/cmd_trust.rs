//! `hisp trust`: trust bundles (DirectTrust form) by URL — add (fetched and verified at
//! once), list with what is in force, refresh now, remove. A running daemon refreshes them
//! on their schedule and picks up every change within seconds.

use crate::cmd_admin::{load, runtime};
use crate::files;
use anyhow::{anyhow, bail, Context, Result};
use hisp_direct::alg::Profile;
use hisp_discovery::fetch::Fetcher;
use hisp_server::bundles::refresh;
use hisp_store::{NewBundle, Store};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `hisp trust …`.
#[derive(clap::Subcommand)]
pub enum TrustCmd {
    /// Add a trust bundle by URL, fetch and verify it now.
    Add {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// Where the bundle is published (http://… or file://…).
        #[arg(long)]
        url: String,
        /// The certificate that must have signed it (PEM or DER); without it the bundle
        /// may be unsigned, and is trusted as far as its URL is.
        #[arg(long)]
        signer: Option<PathBuf>,
        /// The local domain its anchors apply to (default: all).
        #[arg(long)]
        domain: Option<String>,
        /// How often it is fetched again, e.g. 6h, 1d.
        #[arg(long, default_value = "1d")]
        refresh: String,
        /// Trust its anchors for `incoming` or `outgoing` mail only (default: both).
        #[arg(long)]
        direction: Option<String>,
    },
    /// List anchors in force: configured, added, and from each bundle.
    List {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fetch bundles now (all, or one by id).
    Refresh {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The bundle id (see `hisp trust list`).
        id: Option<i64>,
    },
    /// Explain, check by check, why a certificate is or is not trusted for an address.
    Explain(crate::cmd_explain::ExplainArgs),
    /// Remove a bundle and its anchors.
    Remove {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The bundle id (see `hisp trust list`).
        id: i64,
    },
}

/// Run `hisp trust`.
pub fn run(cmd: &TrustCmd) -> Result<u8> {
    match cmd {
        TrustCmd::Add {
            config,
            url,
            signer,
            domain,
            refresh: every,
            direction,
        } => {
            let direction = crate::cmd_admin::direction(direction.as_deref())?;
            add(
                config,
                url,
                signer.as_ref(),
                (domain.clone(), direction),
                every,
            )
        }
        TrustCmd::List { config, json } => list(config, *json),
        TrustCmd::Explain(a) => crate::cmd_explain::run(a),
        TrustCmd::Refresh { config, id } => refresh_now(config, *id),
        TrustCmd::Remove { config, id } => {
            let (_, store) = load(config)?;
            if runtime()?.block_on(store.remove_bundle(*id))? {
                println!("trust bundle {id} removed with its anchors");
                Ok(0)
            } else {
                bail!("no trust bundle {id} (see `hisp trust list`)")
            }
        }
    }
}

fn profile(cfg: &hisp_server::config::Config) -> Profile {
    cfg.crypto.profile()
}

fn add(
    config: &Path,
    url: &str,
    signer: Option<&PathBuf>,
    (domain, direction): (Option<String>, Option<hisp_store::Direction>),
    every: &str,
) -> Result<u8> {
    let (cfg, store) = load(config)?;
    let every = humantime::parse_duration(every)
        .with_context(|| format!("--refresh {every:?} is not a duration like 6h or 1d"))?;
    if !(url.starts_with("http://") || url.starts_with("file://")) {
        bail!("--url must be http://… or file://… (got {url})");
    }
    if let Some(d) = &domain {
        if !cfg.domains.iter().any(|x| x.name.eq_ignore_ascii_case(d)) {
            bail!("--domain {d} is not a local domain");
        }
    }
    let signer_der = match signer {
        Some(p) => {
            let certs = files::certs(std::slice::from_ref(p), "bundle signer")?;
            let c = certs
                .first()
                .ok_or_else(|| anyhow!("{} holds no certificate", p.display()))?;
            Some(c.to_der()?)
        }
        None => None,
    };
    let spec = NewBundle {
        url: url.to_string(),
        domain,
        direction,
        signer_der,
        refresh_secs: i64::try_from(every.as_secs()).unwrap_or(86_400).max(60),
    };
    let rt = runtime()?;
    let now = files::now();
    let id = rt.block_on(store.add_bundle(spec, now))?;
    let bundles = rt.block_on(store.bundles())?;
    let b = bundles
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| anyhow!("bundle {id} vanished"))?;
    let fetcher = Fetcher::new(Duration::from_secs(30));
    match rt.block_on(refresh(&store, &fetcher, b, now, &profile(&cfg))) {
        Ok(n) => {
            println!("trust bundle {id} added: {n} anchors from {url}");
            Ok(0)
        }
        Err(why) => {
            eprintln!("hisp trust add: bundle {id} added but not loaded: {why}");
            eprintln!("(it is tried again on its schedule; `hisp trust remove {id}` drops it)");
            Ok(1)
        }
    }
}

fn refresh_now(config: &Path, id: Option<i64>) -> Result<u8> {
    let (cfg, store) = load(config)?;
    let rt = runtime()?;
    let bundles = rt.block_on(store.bundles())?;
    let chosen: Vec<_> = bundles
        .iter()
        .filter(|b| id.is_none_or(|i| b.id == i))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no trust bundle{} to refresh",
            id.map(|i| format!(" {i}")).unwrap_or_default()
        );
    }
    let fetcher = Fetcher::new(Duration::from_secs(30));
    let mut failed = false;
    for b in chosen {
        match rt.block_on(refresh(&store, &fetcher, b, files::now(), &profile(&cfg))) {
            Ok(n) => println!("bundle {}: {n} anchors loaded from {}", b.id, b.spec.url),
            Err(why) => {
                failed = true;
                println!(
                    "bundle {}: not loaded ({why}); {} anchors of the previous version stay",
                    b.id,
                    b.anchors.len()
                );
            }
        }
    }
    Ok(u8::from(failed))
}

fn list(config: &Path, as_json: bool) -> Result<u8> {
    let (cfg, store) = load(config)?;
    let rt = runtime()?;
    let anchors = rt.block_on(store.anchors())?;
    let bundles = rt.block_on(store.bundles())?;
    let time = hisp_direct::time::format_rfc3339;
    if as_json {
        let v = json!({
            "configured": cfg.domains.iter().map(|d| json!({
                "domain": d.name,
                "files": d.anchors.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "anchors": anchors.iter().map(|a| json!({
                "sha256": a.sha256, "subject": a.subject, "domain": a.domain,
                "direction": a.direction.map(|d| d.as_str()).unwrap_or("both"),
            })).collect::<Vec<_>>(),
            "bundles": bundles.iter().map(|b| json!({
                "id": b.id,
                "url": b.spec.url,
                "domain": b.spec.domain,
                "direction": b.spec.direction.map(|d| d.as_str()).unwrap_or("both"),
                "signed": b.spec.signer_der.is_some(),
                "refresh_secs": b.spec.refresh_secs,
                "loaded": b.loaded.map(time),
                "next_fetch": time(b.next_fetch),
                "last_error": b.last_error,
                "anchors": b.anchors.iter().map(|a| json!({
                    "sha256": a.sha256, "subject": a.subject,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(0);
    }
    for d in &cfg.domains {
        for p in &d.anchors {
            println!("configured  {}  {}", d.name, p.display());
        }
    }
    for a in &anchors {
        let scope = a.domain.as_deref().unwrap_or("all domains");
        let dir = a.direction.map(|d| d.as_str()).unwrap_or("both");
        println!("added       {scope} ({dir})  {}  {}", a.sha256, a.subject);
    }
    for b in &bundles {
        let state = match (&b.loaded, &b.last_error) {
            (_, Some(e)) => format!("last fetch failed: {e}"),
            (Some(t), None) => format!("loaded {}", time(*t)),
            (None, None) => "not fetched yet".into(),
        };
        println!(
            "bundle {}   {}  {} anchors, {}, {}; next fetch {}",
            b.id,
            b.spec.url,
            b.anchors.len(),
            if b.spec.signer_der.is_some() {
                "signed"
            } else {
                "unsigned"
            },
            state,
            time(b.next_fetch)
        );
        for a in &b.anchors {
            println!("            {}  {}", a.sha256, a.subject);
        }
    }
    Ok(0)
}
