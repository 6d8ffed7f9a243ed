//! The operator's view of and hand on the queues, as Postfix's `postqueue`/`postsuper`
//! give one: `hisp queue` (outbound, per recipient), `queue summary` (by destination, as
//! `qshape`), `queue flush`, `queue hold`/`release` and `queue delete`, and `hisp
//! quarantine` (inbound mail that failed to open) with `show` and `release`.
//! Like the other operator commands they work on the store, whether or not the daemon
//! runs; a running daemon's workers look for due work every second.

use crate::cmd_admin::{load, runtime};
use crate::files;
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use hisp_direct::time::format_rfc3339;
use hisp_server::notify::{dsn_for_sender, Failure, Original};
use hisp_store::{Inbound, OutKind, OutMessage, OutRecipient, QueueId, QueueSelection, Store};
use serde_json::json;
use std::path::{Path, PathBuf};

/// How `hisp queue` and `hisp quarantine` list.
#[derive(clap::Args)]
struct Listing {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// One JSON object.
    #[arg(long)]
    json: bool,
    /// Most messages shown, newest first.
    #[arg(long, default_value_t = 200)]
    limit: usize,
}

/// Arguments of `hisp queue`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueueArgs {
    #[command(subcommand)]
    cmd: Option<QueueCmd>,
    #[command(flatten)]
    list: Listing,
}

/// `hisp queue …`
#[derive(Subcommand)]
pub enum QueueCmd {
    /// The queue by destination (as Postfix's `qshape`): recipients waiting, by age, and
    /// those waiting for the peer's MDN.
    Summary {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Make every recipient waiting for a retry due now (as `postqueue -f` does).
    Flush {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
    },
    /// Hold a message, or all mail waiting for a domain (as `postsuper -h` does): its
    /// recipients waiting for an attempt are not tried, flushed or expired until released.
    Hold(Pick),
    /// Release held mail (as `postsuper -H` does): the held recipients are due now.
    Release(Pick),
    /// Delete a message from the queue (as `postsuper -d` does): every recipient still
    /// waiting fails, and the sender gets a DSN saying so. Relayed mail cannot be recalled.
    Delete {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// Its queue id (`o-…`, from `hisp queue`).
        id: String,
    },
}

/// The mail `hisp queue hold` and `release` act on: one message, or one destination.
#[derive(clap::Args)]
pub struct Pick {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// A queue id (`o-…`, from `hisp queue`).
    #[arg(required_unless_present = "domain")]
    id: Option<String>,
    /// Instead of one message: every recipient in this destination domain.
    #[arg(long, conflicts_with = "id")]
    domain: Option<String>,
}

/// What the recipients of a deleted message fail with (and the sender's DSN says).
const DELETED: &str = "deleted from the queue by the HISP's operator before delivery";

/// Arguments of `hisp quarantine`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    cmd: Option<QuarantineCmd>,
    #[command(flatten)]
    list: Listing,
}

/// `hisp quarantine …`
#[derive(Subcommand)]
pub enum QuarantineCmd {
    /// Write a quarantined message as it was received (still sealed), e.g. for `hisp open`.
    Show {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// Its id (`i-…`, from `hisp quarantine`).
        id: String,
        /// Write it here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a quarantined message back in the inbound spool to be opened again, once what
    /// it failed on is fixed (`hisp anchor add`, `hisp user add`).
    Release {
        /// The configuration file.
        #[arg(long, default_value = "hisp.toml")]
        config: PathBuf,
        /// Its id (`i-…`, from `hisp quarantine`).
        id: String,
    },
}

/// Arguments of `hisp purge`.
#[derive(clap::Args)]
pub struct PurgeArgs {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
}

/// `hisp purge`: the daemon's hourly retention pass, now.
pub fn purge(a: &PurgeArgs) -> Result<u8> {
    let (cfg, store) = load(&a.config)?;
    let r = &cfg.retention;
    let rt = runtime()?;
    let p = rt.block_on(hisp_server::retention::purge_all(&store, r, files::now()))?;
    println!(
        "removed the bodies of {} finished outbound message(s) older than {} and of {} \
         mailbox entr(ies) picked up more than {} ago, and the sealed form of {} message(s) \
         quarantined more than {} ago",
        p.outbound,
        humantime::format_duration(r.keep_outbound_bodies),
        p.mailbox,
        humantime::format_duration(r.keep_picked_up_bodies),
        p.quarantined,
        humantime::format_duration(r.keep_quarantined)
    );
    let records = rt.block_on(hisp_server::retention::purge_records_all(
        &store,
        r,
        files::now(),
    ))?;
    match (records, r.keep_records) {
        (Some(p), Some(keep)) => println!(
            "removed the records of {} outbound message(s), {} inbound message(s), {} \
             picked-up mailbox entr(ies) and {} notification(s) older than {}",
            p.messages,
            p.inbound,
            p.mailbox,
            p.notifications,
            humantime::format_duration(keep)
        ),
        _ => println!("records of finished mail are kept (retention.keep_records = \"forever\")"),
    }
    let audit = rt.block_on(hisp_server::retention::purge_audit_all(
        &store,
        r,
        files::now(),
    ))?;
    match (audit, r.keep_audit) {
        (Some(n), Some(keep)) => println!(
            "removed {n} audit row(s) older than {}",
            humantime::format_duration(keep)
        ),
        _ => println!("the audit trail is kept (retention.keep_audit = \"forever\")"),
    }
    Ok(0)
}

/// Arguments of `hisp backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// A new (or empty) directory for the copy.
    #[arg(long)]
    out: PathBuf,
}

/// `hisp backup`: a consistent copy of the store while the daemon runs.
pub fn backup(a: &BackupArgs) -> Result<u8> {
    let (cfg, store) = load(&a.config)?;
    let b = store.backup(&a.out)?;
    let db = cfg.store_path();
    let name = db.file_name().unwrap_or_default().to_string_lossy();
    println!(
        "backed up {} into {}: the database ({} bytes) and {} body file(s) ({} bytes); to \
         restore, stop the daemon and put {name} and {name}-bodies/ in {}",
        db.display(),
        a.out.display(),
        b.database_bytes,
        b.files,
        b.file_bytes,
        db.parent().unwrap_or(&db).display()
    );
    if b.missing.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "hisp: {} body file(s) the copy names were removed while it was taken (their \
         messages were purged or deleted meanwhile): take the backup again into a new directory",
        b.missing.len()
    );
    Ok(1)
}

/// `hisp queue [flush | delete ID]`.
pub fn queue(a: &QueueArgs) -> Result<u8> {
    match &a.cmd {
        Some(QueueCmd::Flush { config }) => {
            let (_, store) = load(config)?;
            let n = runtime()?.block_on(store.flush_queue(files::now()))?;
            println!("{n} recipient(s) waiting for a retry are due now");
            return Ok(0);
        }
        Some(QueueCmd::Delete { config, id }) => return delete(config, id),
        Some(QueueCmd::Summary { config, json }) => return summary(config, *json),
        Some(QueueCmd::Hold(pick)) => return hold_or_release(pick, true),
        Some(QueueCmd::Release(pick)) => return hold_or_release(pick, false),
        None => {}
    }
    let (_, store) = load(&a.list.config)?;
    runtime()?.block_on(async {
        let messages = store.list_outbound(a.list.limit).await?;
        if a.list.json {
            let mut out = Vec::new();
            for m in &messages {
                let events = store.events(&m.id).await?;
                out.push(hisp_server::report::message_json(m, &events));
            }
            println!("{}", json!({ "messages": out }));
        } else {
            print!("{}", hisp_server::report::queue_text(&messages));
        }
        Ok(0)
    })
}

/// `hisp queue summary [--json]`.
fn summary(config: &Path, as_json: bool) -> Result<u8> {
    use hisp_server::report;
    let (_, store) = load(config)?;
    let now = files::now();
    let shapes = runtime()?.block_on(store.queue_shape(now, report::shape_bounds()))?;
    if as_json {
        println!("{}", report::shape_json(&shapes, now));
    } else {
        print!("{}", report::shape_text(&shapes, now));
    }
    Ok(0)
}

/// `hisp queue hold|release (ID | --domain D)`.
fn hold_or_release(pick: &Pick, hold: bool) -> Result<u8> {
    let (_, store) = load(&pick.config)?;
    runtime()?.block_on(async {
        let now = files::now();
        let act = |which: QueueSelection| {
            let store = &store;
            async move {
                if hold {
                    store.hold_queued(&which, now).await
                } else {
                    store.release_held(&which, now).await
                }
            }
        };
        let verb = if hold { "held" } else { "released, due now" };
        let action = if hold { "queue-hold" } else { "queue-release" };
        if let Some(domain) = &pick.domain {
            let done = act(QueueSelection::Domain(domain.clone())).await?;
            let detail = format!("{} recipient(s) of domain {domain}", done.len());
            crate::cmd_admin::audit_operator(&store, action, domain, &detail).await?;
            for r in &done {
                println!("{}: {} {verb}", r.message, r.rcpt);
            }
            println!("{} recipient(s) for {domain} {verb}", done.len());
            return Ok(0);
        }
        let id = pick.id.as_deref().unwrap_or_default();
        let qid = QueueId(id.to_string());
        let Some(m) = store.outbound(&qid).await? else {
            bail!("no outbound message {id}: `hisp queue` lists them");
        };
        let done = act(QueueSelection::Message(qid)).await?;
        if done.is_empty() && hold {
            bail!(
                "nothing of {id} waits for an attempt ({}): relayed mail cannot be recalled, \
                 and a recipient in delivery now can be held once it is deferred",
                states_of(&m)
            );
        }
        if done.is_empty() {
            bail!(
                "nothing of {id} is held ({}): `hisp queue hold {id}` holds it",
                states_of(&m)
            );
        }
        let detail = format!("{} recipient(s)", done.len());
        crate::cmd_admin::audit_operator(&store, action, id, &detail).await?;
        report_done(&m, &done, verb);
        if hold {
            println!(
                "`hisp queue release {id}` lets it go; `hisp queue delete {id}` fails it and \
                 tells the sender"
            );
        }
        Ok(0)
    })
}

/// "rcpt state, …" of a message, for a refusal that says why nothing was done.
fn states_of(m: &OutMessage) -> String {
    let states: Vec<String> = m
        .recipients
        .iter()
        .map(|r| format!("{} {}", r.rcpt, r.state.as_str()))
        .collect();
    states.join(", ")
}

/// A line per recipient of `m`: those in `done` with `verb`, the others as they are.
fn report_done(m: &OutMessage, done: &[OutRecipient], verb: &str) {
    let id = &m.id;
    for r in done {
        println!("{id}: {} {verb}", r.rcpt);
    }
    for r in m
        .recipients
        .iter()
        .filter(|r| !done.iter().any(|g| g.rcpt == r.rcpt))
    {
        println!("{id}: {} left as it is ({})", r.rcpt, r.state.as_str());
    }
}

/// `hisp queue delete ID`: the waiting recipients fail, and a message's sender (a local
/// user) gets a DSN in their mailbox; a notification we send fails silently (no DSN about
/// an MDN).
fn delete(config: &Path, id: &str) -> Result<u8> {
    let (cfg, store) = load(config)?;
    runtime()?.block_on(async {
        let qid = QueueId(id.to_string());
        let Some(m) = store.outbound(&qid).await? else {
            bail!("no outbound message {id}: `hisp queue` lists them");
        };
        let now = files::now();
        // The sender's DSN commits with the failures it reports (none for a notification).
        let is_message = m.kind == OutKind::Message;
        let host = cfg.server.hostname.clone();
        let (dsn_qid, message_id, sender) = (qid.clone(), m.message_id.clone(), m.sender.clone());
        let tell = move |gone: &[OutRecipient]| {
            is_message.then(|| {
                let failures: Vec<Failure> = gone
                    .iter()
                    .map(|r| Failure {
                        rcpt: r.rcpt.clone(),
                        status: (5, 0, 0),
                        reason: DELETED.into(),
                        remote: None,
                    })
                    .collect();
                let original = Original {
                    queue_id: &dsn_qid,
                    message_id: &message_id,
                    sender: &sender,
                };
                dsn_for_sender(&host, &original, &failures, now)
            })
        };
        let gone = store.cancel_queued(&qid, DELETED, now, tell).await?;
        if gone.is_empty() {
            bail!(
                "nothing of {id} waits in the queue ({}): relayed mail cannot be recalled, and \
                 a recipient in delivery now can be deleted once it is deferred",
                states_of(&m)
            );
        }
        let detail = format!("{} recipient(s)", gone.len());
        crate::cmd_admin::audit_operator(&store, "queue-delete", id, &detail).await?;
        report_done(&m, &gone, "deleted");
        if m.kind == OutKind::Message {
            println!("{} was sent a DSN", m.sender);
        }
        Ok(0)
    })
}

/// `hisp quarantine [show ID | release ID]`.
pub fn quarantine(a: &QuarantineArgs) -> Result<u8> {
    match &a.cmd {
        None => list(&a.list),
        Some(QuarantineCmd::Show { config, id, out }) => show(config, id, out.as_deref()),
        Some(QuarantineCmd::Release { config, id }) => release(config, id),
    }
}

fn list(a: &Listing) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let listed = runtime()?.block_on(store.quarantined(a.limit))?;
    if a.json {
        let items: Vec<_> = listed.iter().map(inbound_json).collect();
        println!("{}", json!({ "messages": items }));
        return Ok(0);
    }
    if listed.is_empty() {
        println!("nothing quarantined");
    }
    for m in &listed {
        println!(
            "{} {} from {} to {}",
            m.id,
            format_rfc3339(m.received),
            m.mail_from,
            m.rcpts.join(", ")
        );
        println!(
            "    {}",
            m.reason.as_deref().unwrap_or("(no reason recorded)")
        );
    }
    Ok(0)
}

fn inbound_json(m: &Inbound) -> serde_json::Value {
    json!({
        "id": m.id.0,
        "received": format_rfc3339(m.received),
        "mail_from": m.mail_from,
        "rcpts": m.rcpts,
        "reason": m.reason,
    })
}

/// The quarantined message `id`, or an error saying what it is instead.
async fn quarantined(store: &impl Store, id: &str) -> Result<Inbound> {
    match store.inbound(&QueueId(id.to_string())).await? {
        None => bail!("no inbound message {id}: `hisp quarantine` lists the quarantined ones"),
        Some(m) if m.state != hisp_store::InboundState::Quarantined => bail!(
            "{id} is not quarantined (it is {}): only quarantined messages can be shown or released",
            m.state.as_str()
        ),
        Some(m) => Ok(m),
    }
}

fn show(config: &Path, id: &str, out: Option<&Path>) -> Result<u8> {
    let (_, store) = load(config)?;
    let m = runtime()?.block_on(async {
        let m = quarantined(&store, id).await?;
        crate::cmd_admin::audit_operator(&store, "quarantine-show", id, &m.mail_from).await?;
        Ok::<_, anyhow::Error>(m)
    })?;
    if m.body.is_empty() {
        bail!(
            "the sealed form of {id} was not kept; its reason: {}",
            m.reason.unwrap_or_default()
        );
    }
    match out {
        Some(path) => std::fs::write(path, &m.body)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&m.body)?;
        }
    }
    Ok(0)
}

fn release(config: &Path, id: &str) -> Result<u8> {
    let (_, store) = load(config)?;
    runtime()?.block_on(async {
        let m = quarantined(&store, id).await?;
        if !store.release_quarantined(&m.id, files::now()).await? {
            bail!("{id} left quarantine meanwhile: see `hisp quarantine`");
        }
        crate::cmd_admin::audit_operator(&store, "quarantine-release", id, "").await?;
        println!(
            "{id} (from {}) is back in the inbound spool: it is opened again within seconds \
             if the daemon runs, else when it starts",
            m.mail_from
        );
        Ok(0)
    })
}
