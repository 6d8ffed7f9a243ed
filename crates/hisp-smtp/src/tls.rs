//! A stream that starts in plaintext and may switch to TLS in place (STARTTLS, RFC 3207).
//! Shared by the server session and the delivery client; the handshakes themselves (and
//! what to do with bytes buffered before them) are decided by the callers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::ssl::Ssl;
use tokio::io::{AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio_openssl::SslStream;

/// The socket under a STARTTLS session, buffered both ways: OpenSSL reads a record's
/// 5-byte header and then its body, and writes each record of at most 16 KiB on its own,
/// so a 1 MiB message cost about 85 writes and 170 reads on the socket (perf: 100 sendto
/// and 214 recvfrom per 1 MiB exchange). Records written between two flushes leave
/// together, and reads take what has arrived. Every write the sessions make is followed
/// by a flush before they wait for the peer (OpenSSL flushes its own handshake flights).
type Wire<S> = BufStream<S>;

/// Bytes read ahead under TLS, per session: two full records.
const WIRE_READ: usize = 32 * 1024;

/// Bytes of records gathered before a write, per session: three full records (a record
/// that would overflow the buffer sends what is gathered first).
const WIRE_WRITE: usize = 64 * 1024;

/// Buffer `plain` for TLS (see [`Wire`]).
fn wire<S: AsyncRead + AsyncWrite>(plain: S) -> Wire<S> {
    BufStream::with_capacity(WIRE_READ, WIRE_WRITE, plain)
}

/// Plaintext, TLS, or (briefly, during the upgrade or after a failed one) nothing.
pub(crate) enum MaybeTls<S> {
    /// Before STARTTLS.
    Plain(S),
    /// After a completed handshake.
    Tls(Pin<Box<SslStream<Wire<S>>>>),
    /// The stream was handed to a handshake that failed.
    Gone,
}

/// Which side of the handshake we play.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Server,
    Client,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeTls<S> {
    /// Whether the handshake has completed.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// Runs the TLS handshake over the plaintext stream. On failure the stream is gone and
    /// the connection must be dropped (there is no plaintext to fall back to mid-handshake).
    pub(crate) async fn upgrade(&mut self, ssl: Ssl, role: Role) -> Result<(), UpgradeError> {
        let plain = match std::mem::replace(self, MaybeTls::Gone) {
            MaybeTls::Plain(s) => s,
            other => {
                *self = other;
                return Err(UpgradeError::NotPlain);
            }
        };
        *self = MaybeTls::Tls(handshake(wire(plain), ssl, role).await?);
        Ok(())
    }
}

/// The TLS handshake over a plaintext stream, as server or client.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    plain: S,
    ssl: Ssl,
    role: Role,
) -> Result<Pin<Box<SslStream<S>>>, UpgradeError> {
    let mut tls = Box::pin(SslStream::new(ssl, plain).map_err(UpgradeError::Setup)?);
    let done = match role {
        Role::Server => tls.as_mut().accept().await,
        Role::Client => tls.as_mut().connect().await,
    };
    done.map_err(UpgradeError::Handshake)?;
    Ok(tls)
}

/// The server side of a TLS handshake from the first byte (HTTPS), with `acceptor`'s
/// certificate: the same handshake STARTTLS runs, for other listeners of the daemon.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    plain: S,
    acceptor: &openssl::ssl::SslAcceptor,
) -> io::Result<Pin<Box<SslStream<S>>>> {
    let ssl = Ssl::new(acceptor.context()).map_err(io::Error::other)?;
    handshake(plain, ssl, Role::Server)
        .await
        .map_err(io::Error::other)
}

/// Why a STARTTLS upgrade failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    #[error("the stream is already TLS (or closed)")]
    NotPlain,
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] openssl::error::ErrorStack),
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] openssl::ssl::Error),
    #[error("TLS handshake timed out")]
    Timeout,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "stream lost in a failed TLS upgrade",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => s.as_mut().poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => s.as_mut().poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => s.as_mut().poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => s.as_mut().poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}
