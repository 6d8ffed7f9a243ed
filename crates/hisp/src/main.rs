//! `hisp`: the command line (DESIGN §3). It parses arguments, sets up logging, calls the
//! library crates and maps outcomes to exit statuses; the logic lives in the libraries.

mod bench;
mod bench_discovery;
mod bench_exchange;
mod bench_rss;
mod cmd_admin;
mod cmd_audit;
mod cmd_directory;
mod cmd_discover;
mod cmd_doctor;
mod cmd_explain;
mod cmd_init;
mod cmd_open;
mod cmd_publish;
mod cmd_queue;
mod cmd_seal;
mod cmd_trust;
mod demo;
mod files;
mod sealed_input;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Hisp: a Health Information Service Provider for Direct Secure Messaging.
#[derive(Parser)]
#[command(name = "hisp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Direct exchange end to end between two fresh test domains and print each step.
    Demo,
    /// Write a working hisp.toml with a local test CA and a domain certificate and key.
    Init(cmd_init::InitArgs),
    /// Wrap, sign and encrypt an RFC 5322 message (Direct Applicability Statement).
    Seal(cmd_seal::SealArgs),
    /// Decrypt, verify, check trust and binding, and unwrap a Direct message.
    Open(cmd_open::OpenArgs),
    /// Find an address's certificates (DNS CERT, then LDAP) and say which are usable and why not.
    Discover(cmd_discover::DiscoverArgs),
    /// Check a Direct domain or address: MX, DNS CERT/LDAP, certificates, SMTP STARTTLS.
    Doctor(cmd_doctor::DoctorArgs),
    /// Trust bundles and the anchors in force.
    #[command(subcommand)]
    Trust(cmd_trust::TrustCmd),
    /// Publish our certificates in DNS.
    #[command(subcommand)]
    Dns(cmd_publish::DnsCmd),
    /// Publish our certificates in LDAP.
    #[command(subcommand)]
    Ldap(cmd_publish::LdapCmd),
    /// Measure throughput and print it next to the machine's ceiling.
    Bench(bench::BenchArgs),
    /// Run the daemon (or check its configuration with --check).
    Serve(cmd_admin::ServeArgs),
    /// Manage users (Direct addresses in local domains).
    #[command(subcommand)]
    User(cmd_admin::UserCmd),
    /// Manage trust anchors.
    #[command(subcommand)]
    Anchor(cmd_admin::AnchorCmd),
    /// Manage static routes.
    #[command(subcommand)]
    Route(cmd_admin::RouteCmd),
    /// Manage static recipient certificates.
    #[command(subcommand)]
    Cert(cmd_admin::CertCmd),
    /// Show the outbound queue with per-recipient state, or make retries due now (`flush`).
    Queue(cmd_queue::QueueArgs),
    /// Show, save or release inbound messages quarantined because they failed to open.
    Quarantine(cmd_queue::QuarantineArgs),
    /// Remove the bodies nobody needs any more, and records past `keep_records` (`[retention]`), as the daemon does hourly.
    Purge(cmd_queue::PurgeArgs),
    /// Copy the store (database and body files) consistently while the daemon runs.
    Backup(cmd_queue::BackupArgs),
    /// Show the messages delivered to an address.
    Mailbox(cmd_admin::MailboxArgs),
    /// Read the access audit trail: who read, took, sent or changed what, when, from where.
    Audit(cmd_audit::AuditArgs),
}

/// Set when stderr carries JSON logs: then nothing else may be written there.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A line for the operator about the process itself (serving, stopping, a bad
/// configuration, the error it ends with): on stderr, or as an error event when stderr
/// carries JSON logs (`error`) or on stdout (`!error`), so a log collector reads only JSON.
pub(crate) fn say(error: bool, text: &str) {
    match (JSON_LOGS.get().copied().unwrap_or(false), error) {
        (false, _) => eprintln!("{text}"),
        (true, true) => tracing::error!("{text}"),
        (true, false) => println!("{text}"),
    }
}

/// Logs to stderr, filtered by `HISP_LOG` (a `tracing` filter; `warn` by default), as text
/// or, with `HISP_LOG_FORMAT=json`, one JSON object per line for a log collector.
fn init_logs() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HISP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("HISP_LOG_FORMAT").as_deref() {
        Err(_) | Ok("" | "text") => logs.init(),
        Ok("json") => {
            logs.json().init();
            let _ = JSON_LOGS.set(true);
        }
        Ok(other) => {
            return Err(format!(
                "HISP_LOG_FORMAT must be `text` or `json`, not `{other}`: unset it for text"
            ))
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = init_logs() {
        eprintln!("hisp: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::Init(a) => cmd_init::run(&a),
        Command::Seal(a) => cmd_seal::run(&a),
        Command::Open(a) => cmd_open::run(&a),
        Command::Discover(a) => cmd_discover::run(&a),
        Command::Doctor(a) => cmd_doctor::run(&a),
        Command::Trust(c) => cmd_trust::run(&c),
        Command::Dns(c) => cmd_publish::dns(&c),
        Command::Ldap(c) => cmd_publish::ldap(&c),
        Command::Bench(a) => bench::run(&a),
        Command::Serve(a) => cmd_admin::serve(&a),
        Command::User(c) => cmd_admin::user(&c),
        Command::Anchor(c) => cmd_admin::anchor(&c),
        Command::Route(c) => cmd_admin::route(&c),
        Command::Cert(c) => cmd_admin::cert(&c),
        Command::Queue(a) => cmd_queue::queue(&a),
        Command::Quarantine(a) => cmd_queue::quarantine(&a),
        Command::Purge(a) => cmd_queue::purge(&a),
        Command::Backup(a) => cmd_queue::backup(&a),
        Command::Mailbox(a) => cmd_admin::mailbox(&a),
        Command::Audit(a) => cmd_audit::audit(&a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(true, &format!("hisp: {e:#}"));
            ExitCode::from(2)
        }
    }
}
