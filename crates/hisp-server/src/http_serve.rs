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
use hisp_smtp::per_ip::PerIp;
use hisp_smtp::TlsSlot;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
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
/// What it gets when its own address holds all the connections it may (RFC 6585 §4).
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Bounds on the connections served at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// In all (`http.max_connections`).
    pub max: usize,
    /// From one client address, IPv6 /64 (`http.max_connections_per_ip`).
    pub per_ip: usize,
    /// Loopback clients are not counted against `per_ip`.
    pub exempt_loopback: bool,
}

/// Serve `app` on `listener` (HTTPS with `tls`) within `limits`, until `stop` changes;
/// connections in flight then finish their current request, within [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsSlot>>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let per_ip = PerIp::new(limits.per_ip, limits.exempt_loopback);
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
                let Some(ip_slot) = per_ip.admit(peer.ip()) else {
                    tracing::debug!(%peer, "HTTP connection refused: too many from this address");
                    if tls.is_none() {
                        let _ = stream.try_write(TOO_MANY);
                    }
                    continue;
                };
                let (app, stop) = (app.clone(), stop.clone());
                let slots = (slot, ip_slot);
                match &tls {
                    None => conns.spawn(async move {
                        connection(stream, peer, app, stop).await;
                        drop(slots);
                    }),
                    Some(tls) => {
                        let tls = tls.clone();
                        conns.spawn(async move {
                            https(stream, peer, tls, app, stop).await;
                            drop(slots);
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
async fn https(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsSlot>,
    app: Router,
    stop: watch::Receiver<bool>,
) {
    let acceptor = tls.current();
    let handshake = hisp_smtp::tls::accept(stream, &acceptor);
    match tokio::time::timeout(HEADER_TIMEOUT, handshake).await {
        Ok(Ok(s)) => connection(s, peer, app, stop).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "HTTPS handshake failed"),
        Err(_) => tracing::debug!("HTTPS handshake timed out"),
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, app: Router, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // The client's address, for the per-address login throttle (crate::auth).
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// A listener allowing 100 connections, `per_ip` from one address.
    async fn start(per_ip: usize, exempt_loopback: bool) -> (SocketAddr, watch::Sender<bool>) {
        let limits = Limits {
            max: 100,
            per_ip,
            exempt_loopback,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
            peer.ip().to_string()
        };
        let app = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route("/peer", axum::routing::get(peer));
        let (stop, rx) = watch::channel(false);
        tokio::spawn(serve(listener, app, None, limits, rx));
        (addr, stop)
    }

    /// The whole answer to `GET path` on a new connection.
    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        // A refused client is answered before it sends; the write may then fail.
        let _ = s.write_all(req.as_bytes()).await;
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    /// The first line of the answer to `GET /` on a new connection.
    async fn status(addr: SocketAddr) -> String {
        let answer = get(addr, "/").await;
        answer.lines().next().unwrap_or_default().to_string()
    }

    /// Handlers see the client's address (the REST login throttle counts failures by it).
    #[tokio::test]
    async fn requests_carry_the_client_address() {
        let (addr, _stop) = start(10, true).await;
        assert!(get(addr, "/peer").await.ends_with("\r\n\r\n127.0.0.1"));
    }

    /// One address holding `per_ip` idle connections gets 429 with Retry-After (RFC 6585
    /// §4) for the next, while the total limit is far off; a closed one frees its place.
    #[tokio::test]
    async fn rfc6585_4_connections_past_the_per_address_limit_get_429() {
        let (addr, _stop) = start(2, false).await;
        let mut idle = Vec::new();
        for _ in 0..2 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        assert_eq!(status(addr).await, "HTTP/1.1 429 Too Many Requests");
        idle.pop();
        // The server sees the close a moment after we make it.
        let mut answer = String::new();
        for _ in 0..100 {
            answer = status(addr).await;
            if answer != "HTTP/1.1 429 Too Many Requests" {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(answer, "HTTP/1.1 200 OK");
    }

    /// Loopback is exempt by default, as for SMTP: a local edge gateway may hold many.
    #[tokio::test]
    async fn loopback_clients_are_not_counted_when_exempt() {
        let (addr, _stop) = start(1, true).await;
        let _held = TcpStream::connect(addr).await.unwrap();
        assert_eq!(status(addr).await, "HTTP/1.1 200 OK");
    }
}
