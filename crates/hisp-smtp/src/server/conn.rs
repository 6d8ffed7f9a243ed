//! The session's side of the socket: an input buffer read line by line under a deadline,
//! and an output buffer of replies flushed only when we would otherwise wait for input
//! (RFC 2920 §3.1: a server answering a pipelined group may hold its replies until then).
//! Overlong lines are thrown away as they arrive, so no peer can make the buffer grow past
//! the line limit. What the lines mean is for `mod.rs` and the command files.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::tls::{MaybeTls, Role, UpgradeError};
use crate::Reply;

/// Bytes asked for per read.
const CHUNK: usize = 16 * 1024;

/// One line found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// A complete line of this many bytes (LF included) is at the front of
    /// [`Conn::buffered`]; the caller consumes it with [`Conn::consume`].
    Ready(usize),
    /// A line longer than the limit was read to its end and thrown away; `crlf` says
    /// whether it ended with CRLF (rather than a bare LF).
    TooLong {
        /// Ended with CRLF.
        crlf: bool,
    },
}

/// Why no line came.
#[derive(Debug)]
pub(super) enum ReadEnd {
    /// The peer closed the connection.
    Eof,
    /// The deadline passed first.
    Timeout,
    /// The listener is shutting down.
    Shutdown,
    /// The socket failed.
    Io(io::Error),
}

/// The stream plus its buffers.
pub(super) struct Conn<S> {
    stream: MaybeTls<S>,
    buf: Vec<u8>,
    /// Bytes before this index are consumed.
    start: usize,
    /// No LF in `buf[start..scanned]`: the next search starts here.
    scanned: usize,
    /// We are throwing away the rest of an overlong line.
    discarding: bool,
    out: Vec<u8>,
    write_timeout: Duration,
    /// How long to hold the queued replies before the next flush (see [`Conn::delay_replies`]).
    penalty: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps a plaintext stream; `write_timeout` bounds each flush.
    pub(super) fn new(stream: S, write_timeout: Duration) -> Conn<S> {
        Conn {
            stream: MaybeTls::Plain(stream),
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            discarding: false,
            out: Vec::new(),
            write_timeout,
            penalty: Duration::ZERO,
        }
    }

    /// Whether STARTTLS has completed.
    pub(super) fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The unconsumed input.
    pub(super) fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Whether unconsumed input is waiting (pipelined after the last line).
    pub(super) fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Drops `n` bytes from the front of the input.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        self.scanned = self.start;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
    }

    /// Queues a reply; it goes out at the next flush.
    pub(super) fn queue(&mut self, reply: &Reply) {
        self.out.extend_from_slice(&reply.to_bytes());
    }

    /// Holds the queued replies `pause` longer before they go out (a client making error
    /// after error is slowed down, as by Postfix's `smtpd_error_sleep_time`). The pause is
    /// taken before the next read, not by a close.
    pub(super) fn delay_replies(&mut self, pause: Duration) {
        self.penalty = self.penalty.saturating_add(pause);
    }

    /// Sends the queued replies.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let write = async {
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer does not read",
            )),
        }
    }

    /// Flushes, then closes (TLS close_notify included), ignoring a peer already gone.
    pub(super) async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
    }

    /// Whether the peer has sent anything yet, without waiting: a client that talks before
    /// our greeting is not speaking SMTP (RFC 5321 §4.3.1; spam engines do it).
    pub(super) async fn peer_spoke_early(&mut self) -> bool {
        let mut scratch = [0u8; 64];
        poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Poll::Ready(!rb.filled().is_empty()),
                Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(false),
            }
        })
        .await
    }

    /// Runs the server side of the TLS handshake. The caller has checked that no plaintext
    /// is buffered (RFC 3207 §4.2 / CVE-2011-0411: it must never be read as if it came
    /// over TLS).
    pub(super) async fn start_tls(
        &mut self,
        acceptor: &SslAcceptor,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        let ssl = Ssl::new(acceptor.context()).map_err(UpgradeError::Setup)?;
        match tokio::time::timeout(timeout, self.stream.upgrade(ssl, Role::Server)).await {
            Ok(done) => done,
            Err(_) => {
                self.stream = MaybeTls::Gone;
                Err(UpgradeError::Timeout)
            }
        }
    }

    /// Reads until a complete line (ending in LF) is buffered, or the deadline passes, or
    /// (when `shutdown` is given) the listener stops. A line longer than `max` bytes is read
    /// to its end and thrown away as it comes.
    pub(super) async fn read_line(
        &mut self,
        max: usize,
        deadline: Instant,
        mut shutdown: Option<&mut watch::Receiver<bool>>,
    ) -> Result<Line, ReadEnd> {
        loop {
            let from = self.scanned.max(self.start);
            let unscanned = self.buf.get(from..).unwrap_or_default();
            if let Some(i) = memchr::memchr(b'\n', unscanned) {
                let end = from - self.start + i + 1;
                if self.discarding || end > max {
                    let crlf = end >= 2 && self.buffered().get(end - 2) == Some(&b'\r');
                    self.discarding = false;
                    self.consume(end);
                    return Ok(Line::TooLong { crlf });
                }
                return Ok(Line::Ready(end));
            }
            self.scanned = self.buf.len();
            let pending = self.buf.len() - self.start;
            if self.discarding || pending >= max {
                // Keep only the last byte: a CR there may pair with the LF still to come.
                self.discarding = true;
                let keep = self.buf.len().saturating_sub(1).max(self.start);
                self.buf.drain(..keep);
                self.start = 0;
                self.scanned = self.buf.len();
            } else if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
                self.scanned = self.buf.len();
            }
            if !self.penalty.is_zero() {
                let pause = tokio::time::sleep(std::mem::take(&mut self.penalty));
                match shutdown.as_deref_mut() {
                    Some(rx) => tokio::select! {
                        () = pause => {}
                        () = shutdown_signal(rx) => return Err(ReadEnd::Shutdown),
                    },
                    None => pause.await,
                }
            }
            self.flush().await.map_err(ReadEnd::Io)?;
            self.buf.reserve(CHUNK);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            let got = match shutdown.as_deref_mut() {
                Some(rx) => tokio::select! {
                    got = read => got,
                    () = shutdown_signal(rx) => return Err(ReadEnd::Shutdown),
                },
                None => read.await,
            };
            match got {
                Err(_elapsed) => return Err(ReadEnd::Timeout),
                Ok(Ok(0)) => return Err(ReadEnd::Eof),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(ReadEnd::Io(e)),
            }
        }
    }
}

/// Completes when the watch says `true`; never, if its sender is gone.
async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
