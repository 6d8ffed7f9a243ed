//! The delivery client (RFC 5321 §3, §4.1): one message to one server, STARTTLS when
//! offered (RFC 3207), MAIL/RCPT/DATA pipelined when offered (RFC 2920), SIZE and 8BITMIME
//! declared when offered (RFC 1870, RFC 6152), per-recipient replies kept so the queue can
//! retry or bounce each recipient on its own. Where to connect is the caller's (a static
//! route, or [`resolve_mx`]); when to retry is the queue's.

mod conn;
mod mx;
mod pool;
mod transaction;
mod wire;

pub use mx::resolve_mx;
pub use pool::Pool;

use std::io;

use tracing::debug;

use crate::{ClientConfig, Envelope, Reply};
use conn::ClientConn;
use transaction::send_mail;
use wire::{DotStuffer, Extensions};

/// The outcome of a delivery that reached the end of the dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Each recipient with the server's reply to its RCPT (2xx accepted; 4xx/5xx not).
    pub per_rcpt: Vec<(String, Reply)>,
    /// The reply after the content (`None` when no recipient was accepted, so no DATA).
    /// It applies to every recipient accepted.
    pub data_reply: Option<Reply>,
    /// Whether the session ran over TLS.
    pub tls: bool,
    /// The address delivered to (`ip:port`).
    pub remote: String,
}

/// Why a delivery did not happen. [`ClientError::is_permanent`] says whether to bounce.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The host name did not resolve to an address.
    #[error("cannot resolve {name}: {source}")]
    Resolve {
        /// The name looked up.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The MX lookup failed (server failure, timeout, …).
    #[error("MX lookup for {domain} failed: {source}")]
    MxLookup {
        /// The domain.
        domain: String,
        /// The resolver's error.
        #[source]
        source: hickory_resolver::error::ResolveError,
    },
    /// The domain does not exist (NXDOMAIN).
    #[error("the domain {domain} does not exist")]
    NoSuchDomain {
        /// The domain.
        domain: String,
    },
    /// The domain publishes a null MX: it accepts no mail (RFC 7505).
    #[error("the domain {domain} accepts no mail (null MX)")]
    NullMx {
        /// The domain.
        domain: String,
    },
    /// No address of the target accepted a connection.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The `host:port` tried.
        target: String,
        /// The last address's error.
        #[source]
        source: io::Error,
    },
    /// The server did not answer in time.
    #[error("timed out at {stage}")]
    Timeout {
        /// The command waited on.
        stage: &'static str,
    },
    /// The greeting was not 220.
    #[error("the server refused the session: {0}")]
    Greeting(Reply),
    /// The server refused a command that applies to all recipients (EHLO/HELO, MAIL,
    /// DATA, the end of the content).
    #[error("{stage} refused: {reply}")]
    Rejected {
        /// The command refused.
        stage: &'static str,
        /// The server's reply.
        reply: Reply,
    },
    /// TLS is required but the server does not offer (or refused) STARTTLS.
    #[error("{target} does not offer STARTTLS and TLS is required")]
    TlsRequired {
        /// The `host:port`.
        target: String,
    },
    /// The TLS handshake failed.
    #[error("TLS with {target} failed: {source}")]
    Tls {
        /// The host name used for SNI.
        target: String,
        /// OpenSSL's error.
        #[source]
        source: openssl::ssl::Error,
    },
    /// The connection failed mid-dialogue.
    #[error("connection failed at {stage}: {source}")]
    Io {
        /// The command under way.
        stage: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server's answer was not an SMTP reply.
    #[error("malformed reply at {stage}: {line:?}")]
    BadReply {
        /// The command under way.
        stage: &'static str,
        /// The offending line (cut to 200 characters).
        line: String,
    },
}

impl ClientError {
    /// True when retrying cannot help: a 5xx reply, a domain that does not exist or takes
    /// no mail. Connection trouble, timeouts, TLS failures and 4xx are temporary.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Greeting(reply) | ClientError::Rejected { reply, .. } => {
                reply.is_permanent()
            }
            ClientError::NoSuchDomain { .. } | ClientError::NullMx { .. } => true,
            ClientError::Resolve { .. }
            | ClientError::MxLookup { .. }
            | ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::TlsRequired { .. }
            | ClientError::Tls { .. }
            | ClientError::Io { .. }
            | ClientError::BadReply { .. } => false,
        }
    }

    /// True when the failure is temporary and came before any transaction began (no
    /// address, no connection, no greeting, EHLO/HELO or STARTTLS failing): it is about the
    /// host, not the message, so every other message for that destination would meet it.
    pub fn is_host_failure(&self) -> bool {
        const SESSION_STAGES: [&str; 5] = ["greeting", "EHLO", "HELO", "STARTTLS", "TLS handshake"];
        if self.is_permanent() {
            return false;
        }
        match self {
            ClientError::Resolve { .. }
            | ClientError::MxLookup { .. }
            | ClientError::Connect { .. }
            | ClientError::Greeting(_)
            | ClientError::TlsRequired { .. }
            | ClientError::Tls { .. } => true,
            ClientError::Rejected { stage, .. }
            | ClientError::Timeout { stage }
            | ClientError::Io { stage, .. }
            | ClientError::BadReply { stage, .. } => SESSION_STAGES.contains(stage),
            ClientError::NoSuchDomain { .. } | ClientError::NullMx { .. } => false,
        }
    }

    /// Whether the connection is still in a state where QUIT makes sense.
    fn dialogue_intact(&self) -> bool {
        matches!(
            self,
            ClientError::Greeting(_)
                | ClientError::Rejected { .. }
                | ClientError::TlsRequired { .. }
        )
    }
}

/// The content of a transaction: bytes in memory, or a file read in pieces (a large
/// sealed message is sent without being held in memory).
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// In memory.
    Bytes(&'a [u8]),
    /// In a file of `len` bytes; `eight_bit` when it holds bytes above 127.
    File {
        /// The file.
        path: &'a std::path::Path,
        /// Its length (for SIZE).
        len: u64,
        /// It holds 8-bit bytes (for BODY=8BITMIME).
        eight_bit: bool,
    },
}

impl Content<'_> {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File { len, .. } => *len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn eight_bit(&self) -> bool {
        match self {
            Content::Bytes(b) => !b.is_ascii(),
            Content::File { eight_bit, .. } => *eight_bit,
        }
    }
}

/// How much content is stuffed and written at a time.
const PIECE: usize = 64 * 1024;

/// Send the content after `354`, dot-stuffed piece by piece, then flush.
async fn send_content(
    conn: &mut ClientConn,
    content: Content<'_>,
    timeout: std::time::Duration,
) -> Result<(), ClientError> {
    const STAGE: &str = "message content";
    let mut stuffer = DotStuffer::default();
    let mut out = Vec::with_capacity(PIECE + PIECE / 16 + 8);
    match content {
        Content::Bytes(bytes) => {
            for piece in bytes.chunks(PIECE) {
                stuffer.feed(piece, &mut out);
                conn.write_part(&out, timeout, STAGE).await?;
                out.clear();
            }
        }
        Content::File { path, .. } => {
            use tokio::io::AsyncReadExt;
            let io = |source| ClientError::Io {
                stage: "reading the message file",
                source,
            };
            let mut file = tokio::fs::File::open(path).await.map_err(io)?;
            let mut piece = vec![0u8; PIECE];
            loop {
                let n = file.read(&mut piece).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                stuffer.feed(piece.get(..n).unwrap_or_default(), &mut out);
                conn.write_part(&out, timeout, STAGE).await?;
                out.clear();
            }
        }
    }
    stuffer.finish(&mut out);
    conn.send(&out, timeout, STAGE).await
}

/// Delivers `message` for `envelope` to the server at `target` (`host:port`).
pub async fn deliver(
    target: &str,
    cfg: &ClientConfig,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivery, ClientError> {
    transaction(target, cfg, None, envelope, message).await
}

/// Submit a message as a user (RFC 6409): as [`deliver`], with STARTTLS required and
/// `AUTH PLAIN` (RFC 4616) before MAIL. For the demo, the benchmark and tests; the daemon
/// itself only relays.
pub async fn submit(
    target: &str,
    cfg: &ClientConfig,
    user: &str,
    password: &str,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivery, ClientError> {
    transaction(target, cfg, Some((user, password)), envelope, message).await
}

async fn transaction(
    target: &str,
    cfg: &ClientConfig,
    auth: Option<(&str, &str)>,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivery, ClientError> {
    let mut session = open_session(target, cfg, auth).await?;
    let outcome = send_mail(&mut session, cfg, envelope, Content::Bytes(message)).await;
    finish(session, cfg, &outcome, false).await;
    outcome
}

/// A connection past the greeting, EHLO, STARTTLS and AUTH: ready for transactions.
pub(crate) struct Session {
    pub(crate) conn: ClientConn,
    ext: Extensions,
}

/// Close a session after a transaction, or hand it back when `keep` and it is reusable.
pub(crate) async fn finish(
    mut session: Session,
    cfg: &ClientConfig,
    outcome: &Result<Delivery, ClientError>,
    keep: bool,
) -> Option<Session> {
    match outcome {
        Ok(d) => {
            let accepted = d.per_rcpt.iter().filter(|(_, r)| r.is_positive()).count();
            debug!(remote = %d.remote, tls = d.tls, accepted, "delivery dialogue done");
            if keep {
                return Some(session);
            }
            session.conn.quit(cfg.command_timeout).await;
        }
        Err(e) if e.dialogue_intact() => session.conn.quit(cfg.command_timeout).await,
        Err(e) => debug!(cause = %e, "delivery failed, dropping the connection"),
    }
    None
}

/// Connect, read the greeting, EHLO, STARTTLS when offered (then EHLO again), AUTH.
pub(crate) async fn open_session(
    target: &str,
    cfg: &ClientConfig,
    auth: Option<(&str, &str)>,
) -> Result<Session, ClientError> {
    let mut conn = ClientConn::connect(target, cfg.connect_timeout, &cfg.bind).await?;
    let t = cfg.command_timeout;
    let greeting = conn.read_reply(t, "greeting").await?;
    if greeting.code != 220 {
        conn.quit(t).await;
        return Err(ClientError::Greeting(greeting));
    }
    let mut ext = hello(&mut conn, cfg).await?;
    if ext.starttls {
        conn.send(b"STARTTLS\r\n", t, "STARTTLS").await?;
        let reply = conn.read_reply(t, "STARTTLS").await?;
        if reply.code == 220 {
            conn.start_tls(cfg, host_of(target)).await?;
            ext = hello(&mut conn, cfg).await?;
        } else {
            debug!(%reply, "STARTTLS refused");
        }
    }
    if (cfg.require_tls || auth.is_some()) && !conn.is_tls() {
        conn.quit(t).await;
        return Err(ClientError::TlsRequired {
            target: target.to_string(),
        });
    }
    if let Some((user, password)) = auth {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        conn.send(format!("AUTH PLAIN {token}\r\n").as_bytes(), t, "AUTH")
            .await?;
        let reply = conn.read_reply(t, "AUTH").await?;
        if reply.code != 235 {
            conn.quit(t).await;
            return Err(ClientError::Rejected {
                stage: "AUTH",
                reply,
            });
        }
    }
    Ok(Session { conn, ext })
}

/// EHLO, or HELO when EHLO is refused as unknown (RFC 5321 §3.2): the extensions offered.
async fn hello(conn: &mut ClientConn, cfg: &ClientConfig) -> Result<Extensions, ClientError> {
    let t = cfg.command_timeout;
    conn.send(format!("EHLO {}\r\n", cfg.helo).as_bytes(), t, "EHLO")
        .await?;
    let reply = conn.read_reply(t, "EHLO").await?;
    if reply.code == 250 {
        return Ok(Extensions::from_ehlo(&reply));
    }
    if !reply.is_permanent() {
        return Err(ClientError::Rejected {
            stage: "EHLO",
            reply,
        });
    }
    conn.send(format!("HELO {}\r\n", cfg.helo).as_bytes(), t, "HELO")
        .await?;
    let reply = conn.read_reply(t, "HELO").await?;
    if reply.code != 250 {
        return Err(ClientError::Rejected {
            stage: "HELO",
            reply,
        });
    }
    Ok(Extensions::default())
}

/// The host part of `host:port` (brackets of an IPv6 literal removed), for SNI.
fn host_of(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("mx.example:25"), "mx.example");
        assert_eq!(host_of("[::1]:2525"), "::1");
        assert_eq!(host_of("mx.example"), "mx.example");
    }

    #[test]
    fn rfc5321_4_2_1_permanent_only_for_5xx_and_dead_domains() {
        let rejected = |code| ClientError::Rejected {
            stage: "MAIL FROM",
            reply: Reply::new(code, None, "x"),
        };
        assert!(rejected(550).is_permanent());
        assert!(!rejected(451).is_permanent());
        assert!(ClientError::NullMx { domain: "d".into() }.is_permanent());
        assert!(!ClientError::Timeout { stage: "DATA" }.is_permanent());
    }

    #[test]
    fn host_failures_are_those_before_the_transaction() {
        let refused = |stage, code| ClientError::Rejected {
            stage,
            reply: Reply::new(code, None, "x"),
        };
        let connect = ClientError::Connect {
            target: "mx.example:25".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert!(connect.is_host_failure());
        assert!(ClientError::Greeting(Reply::new(421, None, "busy")).is_host_failure());
        assert!(ClientError::Timeout { stage: "greeting" }.is_host_failure());
        assert!(refused("EHLO", 421).is_host_failure());
        // About the message or its recipients, or final: not the host's state.
        assert!(!ClientError::Greeting(Reply::new(554, None, "no")).is_host_failure());
        assert!(!ClientError::Timeout { stage: "DATA" }.is_host_failure());
        assert!(!refused("MAIL FROM", 451).is_host_failure());
        assert!(!ClientError::NullMx { domain: "d".into() }.is_host_failure());
    }
}
