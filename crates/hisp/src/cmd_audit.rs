//! `hisp audit`: read the access audit trail (HIPAA Security Rule §164.312(b)): who read,
//! took, sent or changed what, when and from where, newest first.

use crate::cmd_admin::{load, runtime};
use crate::files;
use anyhow::{Context as _, Result};
use hisp_direct::time::{format_rfc3339, parse_rfc3339};
use hisp_store::{AuditEvent, AuditQuery, Store};
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `hisp audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// Only what this actor did (an address, or `operator`).
    #[arg(long)]
    actor: Option<String>,
    /// Nothing older: an RFC 3339 time, or a duration back from now ("24h", "7d").
    #[arg(long)]
    since: Option<String>,
    /// Rows before this sequence number (the last of the previous page).
    #[arg(long, default_value_t = 0)]
    before: i64,
    /// At most this many rows.
    #[arg(long, default_value_t = 200)]
    limit: usize,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

/// `hisp audit`.
pub fn audit(a: &AuditArgs) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let since = match a.since.as_deref() {
        None => 0,
        Some(s) => since(s)?,
    };
    let query = AuditQuery {
        actor: a.actor.clone(),
        since,
        before: a.before,
        limit: a.limit,
    };
    let rows = runtime()?.block_on(store.audit(query))?;
    if a.json {
        let items: Vec<_> = rows.iter().map(row_json).collect();
        let before = rows.last().filter(|_| rows.len() == a.limit).map(|r| r.seq);
        println!("{}", json!({ "events": items, "next_before": before }));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no audit events match");
    }
    // A full page may have older rows behind it: say how to read on.
    let more = rows.last().filter(|_| rows.len() == a.limit).map(|r| r.seq);
    for r in &rows {
        let e = &r.event;
        let client = e.client.as_deref().unwrap_or("-");
        println!(
            "{:>8} {} {} {} {} from {client}: {}",
            r.seq,
            format_rfc3339(e.at),
            e.actor,
            e.action,
            e.object,
            e.detail
        );
    }
    if let Some(seq) = more {
        println!("older rows: hisp audit --before {seq} (with the same filters)");
    }
    Ok(0)
}

/// `--since`: an RFC 3339 time, or a duration back from now.
fn since(s: &str) -> Result<i64> {
    if let Ok(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let back = humantime::parse_duration(s).with_context(|| {
        format!("--since {s:?} is neither an RFC 3339 time nor a duration like \"24h\"")
    })?;
    Ok(files::now() - i64::try_from(back.as_secs()).unwrap_or(i64::MAX))
}

fn row_json(r: &AuditEvent) -> serde_json::Value {
    let e = &r.event;
    json!({
        "seq": r.seq,
        "at": format_rfc3339(e.at),
        "actor": e.actor,
        "action": e.action,
        "object": e.object,
        "client": e.client,
        "detail": e.detail,
    })
}
