//! `hisp user|anchor|route|cert list|remove`: what the directory holds, and taking an entry
//! out (a user who left, a CA no longer trusted, a stale route or certificate). Like `add`,
//! they work with or without a running daemon: it reloads its directory within seconds of
//! a change, and a REST login checked before the change is checked again.

use crate::cmd_admin::{load, runtime};
use anyhow::Result;
use hisp_store::Store;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Arguments of the `list` subcommands.
#[derive(clap::Args)]
pub struct DirList {
    /// The configuration file.
    #[arg(long, default_value = "hisp.toml")]
    config: PathBuf,
    /// One JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

/// Print `value` as JSON, or `lines` one per line.
fn print(a: &DirList, value: serde_json::Value, lines: Vec<String>) -> Result<u8> {
    if a.json {
        println!("{value}");
    } else {
        lines.iter().for_each(|l| println!("{l}"));
    }
    Ok(0)
}

/// Exit 0 when something went, else 2 saying what was not there and where to look.
fn removed(what: String, gone: bool, list: &str) -> Result<u8> {
    if gone {
        println!("removed {what}");
        return Ok(0);
    }
    eprintln!("hisp: no {what}: nothing removed (`hisp {list} list` shows what there is)");
    Ok(2)
}

/// An address as `user add` stores it and `user remove` looks for it.
pub(crate) fn user_address(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// A route's domain as `route add` stores it and `route remove` looks for it.
pub(crate) fn route_domain(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A fingerprint as stored: lower-case hex, colons and spaces dropped.
fn fingerprint(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `hisp user list`.
pub fn users(a: &DirList) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let users = runtime()?.block_on(store.users())?;
    print(a, json!({ "users": users }), users.clone())
}

/// `hisp user remove`.
pub fn remove_user(config: &Path, address: &str) -> Result<u8> {
    let (_, store) = load(config)?;
    let address = user_address(address);
    let gone = runtime()?.block_on(async {
        let gone = store.remove_user(&address).await?;
        if gone {
            crate::cmd_admin::audit_operator(&store, "user-remove", &address, "").await?;
        }
        Ok::<_, anyhow::Error>(gone)
    })?;
    removed(format!("user {address}"), gone, "user")
}

/// `hisp anchor list`.
pub fn anchors(a: &DirList) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let anchors = runtime()?.block_on(store.anchors())?;
    let scope = |d: &Option<hisp_store::Direction>| d.map_or("both", |d| d.as_str());
    let items: Vec<_> = anchors
        .iter()
        .map(|x| {
            json!({ "sha256": x.sha256, "domain": x.domain, "direction": scope(&x.direction),
                    "subject": x.subject, "added": x.added })
        })
        .collect();
    let lines = anchors
        .iter()
        .map(|x| {
            let domain = x.domain.as_deref().unwrap_or("*");
            format!(
                "{}  {domain}  {}  {}",
                x.sha256,
                scope(&x.direction),
                x.subject
            )
        })
        .collect();
    print(a, json!({ "anchors": items }), lines)
}

/// `hisp anchor remove`.
pub fn remove_anchor(config: &Path, sha256: &str) -> Result<u8> {
    let (_, store) = load(config)?;
    let sha256 = fingerprint(sha256);
    let n = runtime()?.block_on(store.remove_anchor(&sha256))?;
    if n > 0 {
        crate::cmd_admin::audit_operator_now(&store, "anchor-remove", &sha256, "")?;
    }
    removed(format!("anchor {sha256}"), n > 0, "anchor")
}

/// `hisp route list`.
pub fn routes(a: &DirList) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let routes = runtime()?.block_on(store.routes())?;
    let items: Vec<_> = routes
        .iter()
        .map(|r| json!({ "domain": r.domain, "target": r.target }))
        .collect();
    let lines = routes
        .iter()
        .map(|r| format!("{} -> {}", r.domain, r.target))
        .collect();
    print(a, json!({ "routes": items }), lines)
}

/// `hisp route remove`.
pub fn remove_route(config: &Path, domain: &str) -> Result<u8> {
    let (_, store) = load(config)?;
    let domain = route_domain(domain);
    let gone = runtime()?.block_on(store.remove_route(&domain))?;
    if gone {
        crate::cmd_admin::audit_operator_now(&store, "route-remove", &domain, "")?;
    }
    removed(format!("route for {domain}"), gone, "route")
}

/// `hisp cert list`.
pub fn certs(a: &DirList) -> Result<u8> {
    let (_, store) = load(&a.config)?;
    let certs = runtime()?.block_on(store.certs())?;
    // Each certificate parsed once, for both forms.
    let subjects: Vec<String> = certs
        .iter()
        .map(|c| {
            hisp_direct::cert::ParsedCert::from_der(&c.der)
                .map(|p| p.subject)
                .unwrap_or_else(|_| "(unreadable certificate)".into())
        })
        .collect();
    let items: Vec<_> = certs
        .iter()
        .zip(&subjects)
        .map(|(c, s)| json!({ "sha256": c.sha256, "bound_to": c.bound_to, "subject": s }))
        .collect();
    let lines = certs
        .iter()
        .zip(&subjects)
        .map(|(c, s)| format!("{}  {}  {s}", c.sha256, c.bound_to))
        .collect();
    print(a, json!({ "certificates": items }), lines)
}

/// `hisp cert remove`.
pub fn remove_cert(config: &Path, sha256: &str) -> Result<u8> {
    let (_, store) = load(config)?;
    let sha256 = fingerprint(sha256);
    let n = runtime()?.block_on(store.remove_cert(&sha256))?;
    if n > 0 {
        crate::cmd_admin::audit_operator_now(&store, "cert-remove", &sha256, "")?;
    }
    removed(format!("certificate {sha256}"), n > 0, "cert")
}
