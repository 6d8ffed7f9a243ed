//! SMTP for Hisp (RFC 5321, STARTTLS RFC 3207, AUTH RFC 4954, submission RFC 6409,
//! SIZE RFC 1870, PIPELINING RFC 2920, 8BITMIME RFC 6152, enhanced codes RFC 3463).
//!
//! - [`server`]: the listener and the session state machine for the relay port (mail from
//!   other HISPs) and the submission port (users, AUTH after STARTTLS). What happens to a
//!   message is the [`Handler`]'s business: the session answers `250` only when
//!   [`Handler::data`] says the message is durable.
//! - [`client`]: delivery to another HISP (static route, else MX then A/AAAA), STARTTLS when
//!   offered, per-recipient replies classified as temporary or permanent.
//!
//! Replies are typed ([`Reply`]); no handler writes reply text by hand.
#![warn(missing_docs)]

pub mod budget;
pub mod client;
pub mod per_ip;
pub mod reply;
pub mod server;
pub mod tls;

pub use budget::DataBudget;
pub use reply::Reply;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// Mail from other HISPs (port 25): no AUTH; STARTTLS offered.
    Relay,
    /// Mail from our users (port 587): STARTTLS, then AUTH PLAIN/LOGIN, before MAIL.
    Submission,
}

/// Limits and identity of one listener.
#[derive(Clone)]
pub struct ServerConfig {
    /// Our host name (greeting, EHLO reply).
    pub hostname: String,
    /// Relay or submission.
    pub kind: PortKind,
    /// Largest message accepted (SIZE), bytes.
    pub max_message_size: usize,
    /// Most recipients per transaction.
    pub max_recipients: usize,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 says 512; extensions more).
    pub max_command_line: usize,
    /// Longest line inside DATA. The .NET RI sends 64 KiB base64 lines, so this is generous.
    pub max_data_line: usize,
    /// Time allowed for a whole command line to arrive (RFC 5321 §4.5.3.2.7: 5 minutes).
    /// It bounds the line, not each read, so a client trickling bytes cannot hold a session.
    pub command_timeout: Duration,
    /// Time allowed for the whole DATA content (RFC 5321 §4.5.3.2.6 suggests 10 minutes).
    pub data_timeout: Duration,
    /// Bad commands tolerated before the session is closed (421).
    pub max_errors: u32,
    /// Recipients refused (5xx) without a message taken since, before the session is
    /// closed (421): a bound on directory harvesting.
    pub max_refused_recipients: u32,
    /// Bad commands and refused recipients (see `max_refused_recipients`) answered at once;
    /// each one past these is answered `error_delay` late (Postfix's
    /// `smtpd_soft_error_limit`).
    pub errors_before_delay: u32,
    /// How much later (Postfix's `smtpd_error_sleep_time`, 1 s).
    pub error_delay: Duration,
    /// Delay before answering a failed AUTH (slows password guessing).
    pub auth_failure_delay: Duration,
    /// Failed AUTH attempts allowed per session before 421.
    pub max_auth_failures: u32,
    /// TLS for STARTTLS; `None` means STARTTLS is not offered (and AUTH never possible).
    pub tls: Option<Arc<TlsSlot>>,
    /// Memory all messages in DATA may hold at once, shared by the listeners given the same
    /// one ([`DataBudget`]); `None`: no bound but the per-message size.
    pub data_budget: Option<Arc<DataBudget>>,
    /// Sessions at once from one client address (IPv6: one /64); past it `421 4.7.0`.
    pub max_sessions_per_ip: usize,
    /// Loopback clients are not counted against `max_sessions_per_ip`.
    pub exempt_loopback: bool,
}

/// A value replaceable while the server runs, such as the STARTTLS acceptor of a renewed
/// certificate: readers take the value in force ([`Swap::current`]) when they start, so a
/// session under way keeps the one it began with.
pub struct Swap<T>(std::sync::RwLock<Arc<T>>);

impl<T> Swap<T> {
    /// A slot holding `value`.
    pub fn new(value: Arc<T>) -> Swap<T> {
        Swap(std::sync::RwLock::new(value))
    }

    /// The value in force.
    pub fn current(&self) -> Arc<T> {
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put `value` in force for whoever reads from now on.
    pub fn replace(&self, value: Arc<T>) {
        match self.0.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

/// The STARTTLS acceptor, replaceable while the server runs.
pub type TlsSlot = Swap<openssl::ssl::SslAcceptor>;

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("hostname", &self.hostname)
            .field("kind", &self.kind)
            .field("max_message_size", &self.max_message_size)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults for a port: 50 MiB, 100 recipients, 2048-byte commands, 1 MiB data lines,
    /// 5 min commands, 10 min data, 10 errors, 20 refused recipients between messages, a
    /// 1 s delay per error past the fifth, 2 s auth delay, 3 auth failures, 50 sessions per
    /// client address (loopback exempt).
    pub fn new(
        hostname: &str,
        kind: PortKind,
        tls: Option<Arc<openssl::ssl::SslAcceptor>>,
    ) -> ServerConfig {
        ServerConfig {
            hostname: hostname.to_string(),
            kind,
            max_message_size: 50 << 20,
            max_recipients: 100,
            max_command_line: 2048,
            max_data_line: 1 << 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_errors: 10,
            max_refused_recipients: 20,
            errors_before_delay: 5,
            error_delay: Duration::from_secs(1),
            auth_failure_delay: Duration::from_secs(2),
            max_auth_failures: 3,
            tls: tls.map(|a| Arc::new(TlsSlot::new(a))),
            data_budget: None,
            max_sessions_per_ip: 50,
            exempt_loopback: true,
        }
    }
}

/// What the session knows about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// A number unique per session (for logs).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Which port.
    pub kind: PortKind,
    /// The EHLO/HELO name given.
    pub helo: Option<String>,
    /// Whether STARTTLS completed.
    pub tls: bool,
    /// The authenticated user (submission).
    pub user: Option<String>,
}

/// The envelope of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path without angle brackets (empty for the null sender `<>`).
    pub mail_from: String,
    /// The forward-paths accepted, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// `BODY=8BITMIME` was given.
    pub body_8bit: bool,
    /// `SIZE=` was given.
    pub declared_size: Option<u64>,
}

/// The answer to an AUTH attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Credentials valid: the session is now this user.
    Accepted(String),
    /// Wrong user or password (535 5.7.8).
    Rejected,
    /// The check could not be made now (454 4.7.0).
    TempFail,
}

/// What the daemon does with sessions. Each method may refuse with a [`Reply`], which the
/// session sends as is.
pub trait Handler: Send + Sync + 'static {
    /// Check a user's password (submission port only); `session` names the client, whose
    /// address may be throttled after repeated failures.
    fn authenticate(
        &self,
        session: &SessionInfo,
        user: &str,
        password: &str,
    ) -> impl Future<Output = AuthOutcome> + Send;
    /// Accept or refuse MAIL FROM (on submission: the sender must be the user).
    fn mail_from(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
    /// Accept or refuse one RCPT TO (on relay: the address must be ours).
    fn rcpt_to(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        forward_path: &str,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
    /// Take the message. `Ok(queue id)` only once it is durable: the session then answers
    /// `250 2.0.0 <queue id>`. An `Err` reply (e.g. `451 4.3.0`) is sent as is.
    fn data(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<String, Reply>> + Send;
}

/// How to deliver to another HISP.
#[derive(Clone)]
pub struct ClientConfig {
    /// Our EHLO name.
    pub helo: String,
    /// Connection timeout per address.
    pub connect_timeout: Duration,
    /// Timeout per command reply (RFC 5321 §4.5.3.2: 5 minutes; shorter is fine here).
    pub command_timeout: Duration,
    /// Timeout for the reply after the end of DATA (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub data_timeout: Duration,
    /// TLS for STARTTLS (used whenever the server offers it).
    pub tls: Arc<openssl::ssl::SslConnector>,
    /// Refuse to send without TLS.
    pub require_tls: bool,
    /// Verify the server's certificate and name (off by default: Direct HISPs commonly use
    /// private CAs for TLS; the message itself is S/MIME-protected).
    pub verify_tls: bool,
    /// Local addresses to connect from, at most one per family (Postfix's
    /// `smtp_bind_address` and `smtp_bind_address6`): a peer of that family is reached from
    /// it; any other from the address the system picks.
    pub bind: Vec<std::net::IpAddr>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("helo", &self.helo)
            .field("require_tls", &self.require_tls)
            .field("verify_tls", &self.verify_tls)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}
