//! The SMTP server (RFC 5321 §4): the accept loop, and one `Session` per connection that
//! reads commands, keeps the transaction as an explicit `Txn`, and hands each command to
//! its file (`ehlo.rs`, `mail.rs`, `rcpt.rs`, `data.rs`, `auth.rs`, `starttls.rs`,
//! `misc.rs`). Parsing is pure (`parse.rs`); socket buffering is in `conn.rs`; what to do
//! with senders, recipients and messages is the [`Handler`]'s business.

mod auth;
mod conn;
mod data;
mod ehlo;
mod mail;
mod misc;
pub mod parse;
mod rcpt;
mod starttls;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info_span, warn, Instrument};

use crate::{Envelope, Handler, Reply, ServerConfig, SessionInfo};
use conn::{Conn, Line, ReadEnd};
use parse::{parse_command, Command};

/// Sessions served at once per listener; past this a new connection gets `421 4.3.2`.
pub const MAX_SESSIONS: usize = 1000;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` turns `true`, running a session for each (at most
/// [`MAX_SESSIONS`] at once). Then stops accepting, tells idle sessions `421`, and returns
/// once every session has ended.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    cfg: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_with_limit(listener, cfg, handler, shutdown, MAX_SESSIONS).await
}

/// [`serve`] with another bound on concurrent sessions.
pub async fn serve_with_limit<H: Handler>(
    listener: TcpListener,
    cfg: Arc<ServerConfig>,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    max_sessions: usize,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_sessions));
    let per_ip = crate::per_ip::PerIp::new(cfg.max_sessions_per_ip, cfg.exempt_loopback);
    let mut sessions = JoinSet::new();
    while !*shutdown.borrow_and_update() {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually EMFILE or a connection reset before accept: wait, go on.
                        warn!(cause = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Replies are small and come in lock-step with commands: without NODELAY,
                // Nagle and the peer's delayed ACK stall each exchange by ~40 ms.
                let _ = socket.set_nodelay(true);
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Non-blocking write: a full server must not wait on a slow peer.
                    let _ = socket.try_write(&Reply::busy(&cfg.hostname).to_bytes());
                    debug!(%peer, "refused: too many sessions");
                    continue;
                };
                let Some(ip_slot) = per_ip.admit(peer.ip()) else {
                    let _ = socket.try_write(&Reply::busy_for_client(&cfg.hostname).to_bytes());
                    debug!(%peer, "refused: too many sessions from this address");
                    continue;
                };
                let (cfg, handler, stop) = (cfg.clone(), handler.clone(), shutdown.clone());
                sessions.spawn(async move {
                    let _permits = (permit, ip_slot);
                    run_session_until(socket, peer, cfg, handler, Some(stop)).await;
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    while sessions.join_next().await.is_some() {}
    Ok(())
}

/// Runs one session over any byte stream (a TCP socket, or an in-memory duplex in tests)
/// until QUIT, a fatal error, or the peer leaving.
pub async fn run_session<H, S>(stream: S, peer: SocketAddr, cfg: Arc<ServerConfig>, handler: Arc<H>)
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_session_until(stream, peer, cfg, handler, None).await;
}

async fn run_session_until<H, S>(
    stream: S,
    peer: SocketAddr,
    cfg: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: Option<watch::Receiver<bool>>,
) where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("smtp", session = id, %peer, port = ?cfg.kind);
    let mut session = Session {
        conn: Conn::new(stream, cfg.command_timeout),
        info: SessionInfo {
            id,
            peer,
            kind: cfg.kind,
            helo: None,
            tls: false,
            user: None,
        },
        cfg,
        handler,
        txn: Txn::NoHelo,
        reading: Reading::Command,
        errors: 0,
        refused_rcpts: 0,
        auth_failures: 0,
        shutdown,
    };
    async move {
        if let Err(e) = session.run().await {
            debug!(cause = %e, "session ended by an I/O error");
        }
        session.conn.close().await;
        debug!("session closed");
    }
    .instrument(span)
    .await;
}

/// Where the transaction stands (RFC 5321 §4.1.4 ordering).
#[derive(Debug)]
pub(crate) enum Txn {
    /// No EHLO/HELO yet (also right after STARTTLS).
    NoHelo,
    /// Greeted; no transaction open.
    Ready,
    /// MAIL accepted: an envelope with no recipient yet.
    Mail(Envelope),
    /// At least one RCPT accepted.
    Rcpt(Envelope),
}

/// What the next bytes from the client are (stalwart's read-state, here as a plain enum).
#[derive(Debug)]
pub(crate) enum Reading {
    /// A command line.
    Command,
    /// Message content after `354`, for this envelope, up to `CRLF.CRLF`.
    Data(Envelope),
    /// A SASL response line after `334`.
    Sasl(auth::SaslStep),
}

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next thing.
    Continue,
    /// Flush and close.
    Close,
}

/// One SMTP session over a stream.
pub(crate) struct Session<S, H> {
    conn: Conn<S>,
    cfg: Arc<ServerConfig>,
    handler: Arc<H>,
    info: SessionInfo,
    txn: Txn,
    reading: Reading,
    /// Syntax and sequence errors so far (the session never forgets them).
    errors: u32,
    /// Recipients refused with 5xx since the last message taken (see `rcpt.rs`).
    refused_rcpts: u32,
    auth_failures: u32,
    shutdown: Option<watch::Receiver<bool>>,
}

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) -> io::Result<()> {
        if self.conn.peer_spoke_early().await {
            debug!("client talked before the greeting");
            self.conn.queue(&Reply::sync_error());
            return Ok(());
        }
        self.conn.queue(&Reply::greeting(&self.cfg.hostname));
        loop {
            let flow = match std::mem::replace(&mut self.reading, Reading::Command) {
                Reading::Command => self.read_command().await?,
                Reading::Data(envelope) => self.read_data(envelope).await?,
                Reading::Sasl(step) => self.read_sasl(step).await?,
            };
            if flow == Flow::Close {
                return Ok(());
            }
        }
    }

    async fn read_command(&mut self) -> io::Result<Flow> {
        let max = self.cfg.max_command_line;
        let line = match self.read_line(max, true).await? {
            Ok(Line::Ready(n)) => {
                let parsed = parse_command(self.conn.buffered().get(..n).unwrap_or_default());
                self.conn.consume(n);
                parsed
            }
            Ok(Line::TooLong { .. }) => Err(Reply::line_too_long(max)),
            Err(flow) => return Ok(flow),
        };
        match line {
            Ok(cmd) => {
                debug!(verb = cmd.verb(), "command");
                self.dispatch(cmd).await
            }
            Err(reply) => Ok(self.refuse(reply)),
        }
    }

    /// Reads one line for a command or SASL response, within `command_timeout` from now.
    /// `Err(flow)` when the session must end (timeout, shutdown, peer gone).
    async fn read_line(
        &mut self,
        max: usize,
        interruptible: bool,
    ) -> io::Result<Result<Line, Flow>> {
        let deadline = Instant::now() + self.cfg.command_timeout;
        let shutdown = if interruptible {
            self.shutdown.as_mut()
        } else {
            None
        };
        match self.conn.read_line(max, deadline, shutdown).await {
            Ok(line) => Ok(Ok(line)),
            Err(end) => self.line_failed(end).map(Err),
        }
    }

    /// Answers the end of input: 421 for a timeout or shutdown, nothing for a peer gone.
    fn line_failed(&mut self, end: ReadEnd) -> io::Result<Flow> {
        match end {
            ReadEnd::Eof => {
                debug!("client closed the connection");
                Ok(Flow::Close)
            }
            ReadEnd::Timeout => {
                debug!("client too slow: timeout");
                Ok(self.close_with(Reply::timeout(&self.cfg.hostname)))
            }
            ReadEnd::Shutdown => Ok(self.close_with(Reply::shutting_down(&self.cfg.hostname))),
            ReadEnd::Io(e) => Err(e),
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> io::Result<Flow> {
        match cmd {
            Command::Ehlo(name) => Ok(self.handle_ehlo(name, true)),
            Command::Helo(name) => Ok(self.handle_ehlo(name, false)),
            Command::Mail(mail) => Ok(self.handle_mail(mail).await),
            Command::Rcpt(path) => Ok(self.handle_rcpt(path).await),
            Command::Data => Ok(self.handle_data()),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.handle_auth(mechanism, initial_response).await,
            Command::StartTls => self.handle_starttls().await,
            Command::Rset => Ok(self.handle_rset()),
            Command::Noop => Ok(self.handle_noop()),
            Command::Vrfy => Ok(self.handle_vrfy()),
            Command::Help => Ok(self.handle_help()),
            Command::Quit => Ok(self.handle_quit()),
        }
    }

    /// Queues a reply; the session goes on.
    fn reply(&mut self, reply: Reply) -> Flow {
        self.conn.queue(&reply);
        Flow::Continue
    }

    /// Queues a reply; the session ends after it.
    fn close_with(&mut self, reply: Reply) -> Flow {
        self.conn.queue(&reply);
        Flow::Close
    }

    /// Queues the reply to a malformed or out-of-order command and counts it; past
    /// `max_errors` the session ends with 421 (a client in a loop, or not speaking SMTP).
    fn refuse(&mut self, reply: Reply) -> Flow {
        debug!(code = reply.code, "refused command");
        self.conn.queue(&reply);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            return self.close_with(Reply::too_many_errors(&self.cfg.hostname));
        }
        self.slow_down_after_errors();
        Flow::Continue
    }

    /// Past `errors_before_delay` bad commands and refused recipients, each one more holds
    /// the replies `error_delay` longer: a client in a loop, or a harvester trying address
    /// after address, gets one try a second, not thousands, before the limits close it.
    fn slow_down_after_errors(&mut self) {
        if self.errors + self.refused_rcpts > self.cfg.errors_before_delay {
            self.conn.delay_replies(self.cfg.error_delay);
        }
    }

    /// The `EHLO first` check shared by MAIL, AUTH and STARTTLS.
    fn require_helo(&self) -> Result<(), Reply> {
        match self.txn {
            Txn::NoHelo => Err(Reply::bad_sequence("send EHLO or HELO first")),
            _ => Ok(()),
        }
    }
}

impl Command {
    /// The verb, for logs (never the arguments: AUTH carries credentials).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy => "VRFY",
            Command::Help => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}
