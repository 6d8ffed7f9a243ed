//! The operator's commands over a configuration: `serve`, `user add`, `anchor add`, `route
//! add`, `cert add`, `mailbox` (their `list` and `remove`: `cmd_directory.rs`; the queues:
//! `cmd_queue.rs`). They work whether or not the
//! daemon runs: they write the store, and a running daemon reloads its directory within
//! seconds.

use crate::cmd_directory::{self as dir, DirList};
use crate::files;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use hisp_server::config::Config;
use hisp_store::sqlite::SqliteStore;
use hisp_store::{NewAnchor, NewStaticCert, Store};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Arguments of `hisp serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// Validate the configuration and exit (0, or 1 naming each bad key).
    #[arg(long)]
    check: bool,
    /// With --check: print the configuration in force, every default written out and
    /// every path absolute (as Postfix's `postconf`).
    #[arg(long, requires = "check")]
    print: bool,
}

/// `hisp user …`
#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user (a Direct address in a local domain) or set its password.
    Add {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The address.
        address: String,
        /// Read the password from the first line of stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the users.
    List(DirList),
    /// Remove a user: it can no longer log in, and mail for it is refused (its mailbox
    /// stays).
    Remove {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The address.
        address: String,
    },
}

/// `hisp anchor …`
#[derive(Subcommand)]
pub enum AnchorCmd {
    /// Trust a CA (every certificate in the file) for one local domain or all.
    Add {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// PEM or DER file.
        #[arg(long)]
        file: PathBuf,
        /// The local domain it applies to (default: all).
        #[arg(long)]
        domain: Option<String>,
        /// Trust it for `incoming` mail's signers or `outgoing` recipients' certificates
        /// only (default: both).
        #[arg(long)]
        direction: Option<String>,
    },
    /// List the anchors (fingerprint, domain, direction, subject).
    List(DirList),
    /// Stop trusting a CA: remove every anchor with this SHA-256 (`anchor list` shows it).
    Remove {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The certificate's SHA-256, hex.
        sha256: String,
    },
}

/// `--direction` as stored: `None` for both.
pub(crate) fn direction(arg: Option<&str>) -> Result<Option<hisp_store::Direction>> {
    match arg {
        None | Some("both") => Ok(None),
        Some(d) => hisp_store::Direction::parse(d)
            .map(Some)
            .ok_or_else(|| anyhow!("--direction must be incoming, outgoing or both, not {d:?}")),
    }
}

/// `hisp route …`
#[derive(Subcommand)]
pub enum RouteCmd {
    /// Deliver mail for DOMAIN to HOST:PORT instead of its MX.
    Add {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The destination domain.
        domain: String,
        /// `host:port`.
        target: String,
    },
    /// List the static routes.
    List(DirList),
    /// Remove a domain's static route (its MX is used again).
    Remove {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The destination domain.
        domain: String,
    },
}

/// `hisp cert …`
#[derive(Subcommand)]
pub enum CertCmd {
    /// Add a recipient certificate, consulted before discovery.
    Add {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// PEM or DER file.
        #[arg(long)]
        file: PathBuf,
    },
    /// List the static recipient certificates.
    List(DirList),
    /// Remove a static certificate by SHA-256 (`cert list` shows it), for every binding.
    Remove {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// The certificate's SHA-256, hex.
        sha256: String,
    },
}

/// Arguments of `hisp mailbox`.
#[derive(clap::Args)]
pub struct MailboxArgs {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// The local address.
    address: String,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Record an operator command in the audit trail (`hisp audit`) as `operator`, naming the
/// OS user who ran it. A command that shows message content records before it shows.
pub(crate) async fn audit_operator(
    store: &SqliteStore,
    action: &str,
    object: &str,
    detail: &str,
) -> Result<()> {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let detail = match detail {
        "" => format!("by OS user {who}"),
        d => format!("by OS user {who}: {d}"),
    };
    let row = hisp_store::NewAudit {
        at: files::now(),
        actor: "operator".into(),
        action: action.into(),
        object: object.into(),
        client: None,
        detail,
    };
    store
        .add_audit(row)
        .await
        .context("cannot record the command in the audit trail (nothing was shown)")
}

/// [`audit_operator`] from outside a runtime.
pub(crate) fn audit_operator_now(
    store: &SqliteStore,
    action: &str,
    object: &str,
    detail: &str,
) -> Result<()> {
    runtime()?.block_on(audit_operator(store, action, object, detail))
}

pub(crate) fn load(path: &Path) -> Result<(Config, SqliteStore)> {
    let cfg = Config::load(path)?;
    let store = SqliteStore::open(&cfg.store_path())?;
    Ok((cfg, store))
}

/// `hisp serve`.
pub fn serve(a: &ServeArgs) -> Result<u8> {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(hisp_server::config::ConfigError::Invalid { path, problems }) => {
            for p in problems {
                crate::say(true, &format!("{}: {p}", path.display()));
            }
            return Ok(1);
        }
        Err(e) => {
            crate::say(true, &e.to_string());
            return Ok(1);
        }
    };
    if a.check {
        if a.print {
            print!("{}", cfg.in_force_toml()?);
        } else {
            println!("{}: ok", a.config.display());
        }
        return Ok(0);
    }
    let cfg_http_tls = cfg.http.tls;
    runtime()?.block_on(async move {
        let clock = std::sync::Arc::new(hisp_server::clock::SystemClock);
        let running = hisp_server::daemon::start(cfg, clock).await?;
        let http = if cfg_http_tls { "https" } else { "http" };
        let serving = format!(
            "hisp: serving: relay {}, submission {}, {http} {} (Ctrl-C to stop)",
            running.relay, running.submission, running.http
        );
        crate::say(false, &serving);
        serve_until_stopped(&running, &a.config).await;
        crate::say(false, "hisp: stopping");
        running.shutdown().await;
        Ok(0)
    })
}

/// Run until SIGINT or SIGTERM; on each SIGHUP, read the configuration again and reload
/// (hisp_server::reload). Without a handler SIGHUP would end the process abruptly.
async fn serve_until_stopped<S: Store>(running: &hisp_server::daemon::Running<S>, path: &Path) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = recv(&mut term) => return,
            _ = recv(&mut hup) => match Config::load(path) {
                Ok(fresh) => {
                    running.reload(&fresh).await;
                }
                Err(e) => tracing::error!(error = %e,
                    "reload: the configuration file has problems; nothing was changed"),
            },
        }
    }
}

/// The next delivery of a signal; never, when its handler could not be installed.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// `hisp user add`.
pub fn user(cmd: &UserCmd) -> Result<u8> {
    let (config, address) = match cmd {
        UserCmd::Add {
            config, address, ..
        } => (config, address),
        UserCmd::List(a) => return dir::users(a),
        UserCmd::Remove { config, address } => return dir::remove_user(config, address),
    };
    let (cfg, store) = load(config)?;
    let address = dir::user_address(address);
    let domain = hisp_direct::mime::domain_of(&address)
        .ok_or_else(|| anyhow!("{address:?} is not an address"))?;
    if !cfg
        .domains
        .iter()
        .any(|d| d.name.eq_ignore_ascii_case(&domain))
    {
        bail!(
            "{address} is not in a local domain ({})",
            cfg.domains
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("empty password on stdin");
    }
    let hash = hisp_server::users::hash_password(password)?;
    runtime()?.block_on(async {
        store.set_user(&address, &hash, files::now()).await?;
        audit_operator(&store, "user-add", &address, "password set").await
    })?;
    println!("user {address} saved");
    Ok(0)
}

/// `hisp anchor add`.
pub fn anchor(cmd: &AnchorCmd) -> Result<u8> {
    let (config, file, domain, dir) = match cmd {
        AnchorCmd::Add {
            config,
            file,
            domain,
            direction,
        } => (config, file, domain, direction),
        AnchorCmd::List(a) => return dir::anchors(a),
        AnchorCmd::Remove { config, sha256 } => return dir::remove_anchor(config, sha256),
    };
    let direction = direction(dir.as_deref())?;
    let (_, store) = load(config)?;
    let certs = files::certs(std::slice::from_ref(file), "anchor")?;
    let rt = runtime()?;
    for c in certs {
        let p = hisp_direct::cert::ParsedCert::from_x509(c)?;
        let new = NewAnchor {
            domain: domain.clone(),
            direction,
            der: p.der.clone(),
            sha256: p.sha256_hex(),
            subject: p.subject.clone(),
        };
        let added = rt.block_on(store.add_anchor(new, files::now()))?;
        let what = if added { "added" } else { "already present" };
        let scope = direction.map(|d| d.as_str()).unwrap_or("both directions");
        if added {
            let detail = format!(
                "{} for {}, {scope}",
                p.subject,
                domain.as_deref().unwrap_or("every domain")
            );
            rt.block_on(audit_operator(
                &store,
                "anchor-add",
                &p.sha256_hex(),
                &detail,
            ))?;
        }
        println!("anchor {what}: {} ({}), {scope}", p.subject, p.sha256_hex());
    }
    Ok(0)
}

/// `hisp route add`.
pub fn route(cmd: &RouteCmd) -> Result<u8> {
    let (config, domain, target) = match cmd {
        RouteCmd::Add {
            config,
            domain,
            target,
        } => (config, domain, target),
        RouteCmd::List(a) => return dir::routes(a),
        RouteCmd::Remove { config, domain } => return dir::remove_route(config, domain),
    };
    let (_, store) = load(config)?;
    let domain = dir::route_domain(domain);
    if !hisp_server::config::is_domain_name(&domain) {
        bail!("{domain:?} is not a domain name");
    }
    let ok_target = target
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !ok_target {
        bail!("{target:?} is not host:port");
    }
    runtime()?.block_on(async {
        store.set_route(&domain, target, files::now()).await?;
        audit_operator(&store, "route-add", &domain, target).await
    })?;
    println!("route {domain} -> {target}");
    Ok(0)
}

/// `hisp cert add`.
pub fn cert(cmd: &CertCmd) -> Result<u8> {
    let (config, file) = match cmd {
        CertCmd::Add { config, file } => (config, file),
        CertCmd::List(a) => return dir::certs(a),
        CertCmd::Remove { config, sha256 } => return dir::remove_cert(config, sha256),
    };
    let (_, store) = load(config)?;
    let rt = runtime()?;
    for c in files::certs(std::slice::from_ref(file), "certificate")? {
        let p = hisp_direct::cert::ParsedCert::from_x509(c)?;
        if p.bindings.is_empty() {
            bail!(
                "{} binds no address or domain (no rfc822Name/dNSName SAN, no emailAddress)",
                p.subject
            );
        }
        for b in &p.bindings {
            let new = NewStaticCert {
                bound_to: b.value().to_string(),
                der: p.der.clone(),
                sha256: p.sha256_hex(),
            };
            rt.block_on(store.add_cert(new, files::now()))?;
            let detail = format!("{} for {} {}", p.subject, b.kind(), b.value());
            rt.block_on(audit_operator(&store, "cert-add", &p.sha256_hex(), &detail))?;
            println!(
                "certificate for {} {}: {} ({})",
                b.kind(),
                b.value(),
                p.subject,
                p.sha256_hex()
            );
        }
    }
    Ok(0)
}

/// `hisp mailbox`.
pub fn mailbox(a: &MailboxArgs) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let owner = a.address.to_ascii_lowercase();
    let entries = runtime()?.block_on(async {
        audit_operator(&store, "mailbox-list", &owner, "").await?;
        Ok::<_, anyhow::Error>(store.mailbox(&owner, true).await?)
    })?;
    if a.json {
        let items: Vec<_> = entries
            .iter()
            .map(hisp_server::report::entry_json)
            .collect();
        println!(
            "{}",
            serde_json::json!({ "address": owner, "messages": items })
        );
    } else {
        print!("{}", hisp_server::report::mailbox_text(&owner, &entries));
    }
    Ok(0)
}
