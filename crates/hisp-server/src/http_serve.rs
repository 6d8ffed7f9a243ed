//! The HTTP listener: HTTP/1.1 connections (hyper) serving the REST router, with a bound on
//! how long a client may take to send its request head, and a lingering close.
//!
//! The lingering close is why this is not `axum::serve`: a request refused before its body
//! is read (413 when the declared length is over the limit) leaves the rest of the body
//! arriving after the response. Closing a socket with unread data makes the kernel answer
//! with a reset, which can destroy the response before the client reads it: curl then
//! fails with "send failure" instead of showing the 413. So the connection is half-closed
//! and what the client still sends is read and dropped for a short while, as Apache and
//! nginx do.
//!
//! With `[http] tls`, each connection is HTTPS: the TLS handshake (bounded by the same time
//! a client has for its request head) with the certificate in force for STARTTLS.

use axum::Router;
use hisp_smtp::TlsSlot;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// After the response, how long to wait for more of the client's bytes before closing.
const LINGER_IDLE: Duration = Duration::from_secs(2);
/// The longest a closing connection lingers in all.
const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// At shutdown, how long connections in flight may take to finish before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a plain HTTP client gets when every connection slot is taken.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serve `app` on `listener` (HTTPS with `tls`), at most `max` connections at once, until
/// `stop` changes; connections in flight then finish their current request, within
/// [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsSlot>>,
    max: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "HTTP connection refused: too many connections");
                    if tls.is_none() {
                        // Non-blocking: a full server must not wait on this client.
                        let _ = stream.try_write(BUSY);
                    }
                    continue;
                };
                let (app, stop) = (app.clone(), stop.clone());
                match &tls {
                    None => conns.spawn(async move {
                        connection(stream, app, stop).await;
                        drop(slot);
                    }),
                    Some(tls) => {
                        let tls = tls.clone();
                        conns.spawn(async move {
                            https(stream, tls, app, stop).await;
                            drop(slot);
                        })
                    }
                };
            }
            // Out of descriptors and the like: the listener itself is fine, so wait a
            // little rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
    let finished = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, finished)
        .await
        .is_err()
    {
        tracing::info!(cut = conns.len(), "HTTP connections cut at shutdown");
    }
}

/// The TLS handshake, then HTTP over it; a client that does not finish the handshake in
/// [`HEADER_TIMEOUT`], or speaks plain HTTP, is dropped.
async fn https(stream: TcpStream, tls: Arc<TlsSlot>, app: Router, stop: watch::Receiver<bool>) {
    let acceptor = tls.current();
    let handshake = hisp_smtp::tls::accept(stream, &acceptor);
    match tokio::time::timeout(HEADER_TIMEOUT, handshake).await {
        Ok(Ok(s)) => connection(s, app, stop).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "HTTPS handshake failed"),
        Err(_) => tracing::debug!("HTTPS handshake timed out"),
    }
}

async fn connection<S>(stream: S, app: Router, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut app = app.clone();
        Box::pin(async move { tower_service::Service::call(&mut app, req).await })
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    let mut stopping = false;
    let done = loop {
        let poll = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx));
        tokio::select! {
            r = poll => break r,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                std::pin::Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
        return;
    }
    linger(conn.into_parts().io.into_inner()).await;
}

/// Half-close, then drop what the client still sends until it closes or goes quiet.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let end = tokio::time::Instant::now() + LINGER_TOTAL;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let wait = LINGER_IDLE.min(end.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}
