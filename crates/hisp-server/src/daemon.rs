//! Starting and stopping the daemon: open the store, load the directory, bind the relay,
//! submission and HTTP listeners, and run the workers (delivery, inbound, tracker,
//! directory refresh) until asked to stop.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::context::Context;
use crate::directory::{Directory, DirectoryError};
use crate::smtp_handler::{Relay, Submission};
use hisp_smtp::{PortKind, ServerConfig};
use hisp_store::sqlite::SqliteStore;
use hisp_store::{Store, StoreError};
use openssl::ssl::{SslAcceptor, SslConnector, SslFiletype, SslMethod};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The store would not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys or anchors would not load.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A running daemon.
pub struct Running<S: Store> {
    /// Shared state (tests reach the store and metrics through it).
    pub ctx: Arc<Context<S>>,
    /// Where the relay port listens.
    pub relay: SocketAddr,
    /// Where the submission port listens.
    pub submission: SocketAddr,
    /// Where HTTP listens.
    pub http: SocketAddr,
    /// The STARTTLS acceptor both SMTP ports use (replaced by [`Running::reload`]).
    pub(crate) tls: Arc<hisp_smtp::TlsSlot>,
    /// The DNS zone served with `[dns] listen` (rebuilt by [`Running::reload`]).
    pub(crate) zone: Option<Arc<crate::dns_server::ZoneSlot>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl<S: Store> Running<S> {
    /// Stop accepting, let work in hand finish, and return.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// Start with the embedded SQLite store at the configured path.
pub async fn start(
    config: Config,
    clock: SharedClock,
) -> Result<Running<SqliteStore>, DaemonError> {
    let store = SqliteStore::open(&config.store_path())?;
    start_with(config, Arc::new(store), clock).await
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { what, addr, source })
}

/// Start with a given store.
pub async fn start_with<S: Store>(
    config: Config,
    store: Arc<S>,
    clock: SharedClock,
) -> Result<Running<S>, DaemonError> {
    start_with_options(config, store, clock, true).await
}

/// Start with a given store; without `workers` only the listeners run, and the queue moves
/// when a test calls [`crate::outbound::tick`], [`crate::inbound::tick`] and
/// [`crate::tracker::sweep_overdue`] (with a manual clock, for retries and timeouts).
pub async fn start_with_options<S: Store>(
    config: Config,
    store: Arc<S>,
    clock: SharedClock,
    workers: bool,
) -> Result<Running<S>, DaemonError> {
    let directory = Directory::load(&config, store.as_ref()).await?;
    directory.warn_expiring(clock.now());
    let acceptor = tls_acceptor(&config)?;
    let tls_expiry = cert_expiry(&acceptor);
    let tls = Arc::new(hisp_smtp::TlsSlot::new(Arc::new(acceptor)));
    let relay_l = bind("smtp.relay_listen", config.smtp.relay_listen).await?;
    let sub_l = bind("smtp.submission_listen", config.smtp.submission_listen).await?;
    let http_l = bind("http.listen", config.http.listen).await?;
    let local = |l: &TcpListener, a: SocketAddr| l.local_addr().unwrap_or(a);
    let (relay, submission, http) = (
        local(&relay_l, config.smtp.relay_listen),
        local(&sub_l, config.smtp.submission_listen),
        local(&http_l, config.http.listen),
    );
    let client = client_config(&config)?;
    let ctx = Arc::new(Context::new(
        config, store, clock, directory, client, relay, workers,
    ));
    ctx.tls_expiry.store(tls_expiry, Ordering::Relaxed);
    // Work a killed predecessor had leased is ours again now, not in ten minutes.
    match ctx.store.release_leases(&ctx.node).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "took back leases held before a restart"),
        Err(e) => return Err(e.into()),
    }
    let tmp = crate::spill::dir(&ctx.config.server.data_dir);
    match crate::spill::clean(&tmp) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed temporary files of a previous run"),
        Err(e) => tracing::warn!(dir = %tmp.display(), error = %e, "cannot clean temporary files"),
    }
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let host = ctx.config.server.hostname.clone();
    let smtp_cfg = |kind| {
        let mut c = ServerConfig::new(&host, kind, None);
        c.tls = Some(tls.clone());
        // One budget for both ports: what matters is the memory of the whole process.
        c.data_budget = Some(ctx.data_budget.clone());
        c.max_sessions_per_ip = ctx.config.smtp.max_connections_per_ip;
        c.max_message_size = ctx.config.smtp.max_message_bytes;
        c.max_recipients = ctx.config.smtp.max_recipients;
        Arc::new(c)
    };
    let (relay_cfg, sub_cfg) = (smtp_cfg(PortKind::Relay), smtp_cfg(PortKind::Submission));
    let (c1, s1) = (ctx.clone(), stop_rx.clone());
    tasks.spawn(async move {
        if let Err(e) = hisp_smtp::server::serve(relay_l, relay_cfg, Arc::new(Relay(c1)), s1).await
        {
            tracing::error!(error = %e, "relay listener failed");
        }
    });
    let (c2, s2) = (ctx.clone(), stop_rx.clone());
    tasks.spawn(async move {
        if let Err(e) = hisp_smtp::server::serve(sub_l, sub_cfg, Arc::new(Submission(c2)), s2).await
        {
            tracing::error!(error = %e, "submission listener failed");
        }
    });
    let app = crate::http::router(ctx.clone());
    let http_tls = ctx.config.http.tls.then(|| tls.clone());
    let limits = crate::http_serve::Limits {
        max: ctx.config.http.max_connections,
        per_ip: ctx.config.http.max_connections_per_ip,
        exempt_loopback: true,
    };
    tasks.spawn(crate::http_serve::serve(
        http_l,
        app,
        http_tls,
        limits,
        stop_rx.clone(),
    ));
    if workers {
        tasks.spawn(crate::outbound::run(ctx.clone(), stop_rx.clone()));
        tasks.spawn(crate::inbound::run(ctx.clone(), stop_rx.clone()));
        tasks.spawn(crate::tracker::run(ctx.clone(), stop_rx.clone()));
        tasks.spawn(refresh_bundles(ctx.clone(), stop_rx.clone()));
        tasks.spawn(crate::retention::run(ctx.clone(), stop_rx.clone()));
    }
    let zone = ctx.config.dns.listen.map(|_| {
        Arc::new(crate::dns_server::ZoneSlot::new(Arc::new(
            crate::dns_server::Zone::from_directory(&ctx.directory(), ctx.config.dns.ttl),
        )))
    });
    let dns = match (ctx.config.dns.listen, zone.clone()) {
        (Some(addr), Some(zone)) => {
            let udp =
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Bind {
                        what: "dns.listen",
                        addr,
                        source,
                    })?;
            let tcp = bind("dns.listen", addr).await?;
            let bound = udp.local_addr().unwrap_or(addr);
            tasks.spawn(crate::dns_server::serve_udp(
                udp,
                zone.clone(),
                stop_rx.clone(),
            ));
            tasks.spawn(crate::dns_server::serve_tcp(tcp, zone, stop_rx.clone()));
            Some(bound)
        }
        _ => None,
    };
    tasks.spawn(refresh_directory(ctx.clone(), stop_rx));
    tracing::info!(%relay, %submission, %http, dns = ?dns, "hisp started");
    Ok(Running {
        ctx,
        relay,
        submission,
        http,
        tls,
        zone,
        stop,
        tasks,
    })
}

/// Fetch the trust bundles that are due, once a minute (at once at start).
async fn refresh_bundles<S: Store>(ctx: Arc<Context<S>>, mut stop: watch::Receiver<bool>) {
    let fetcher = hisp_discovery::fetch::Fetcher::new(
        ctx.config.discovery.timeout.max(Duration::from_secs(10)),
    );
    loop {
        crate::bundles::refresh_due(ctx.store.as_ref(), &fetcher, ctx.now(), &ctx.profile).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Notice operator changes (users, anchors, routes, certificates, a queue flush) within
/// two seconds.
async fn refresh_directory<S: Store>(ctx: Arc<Context<S>>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
        if ctx.reload_directory_if_changed().await {
            ctx.wake_outbound.notify_one();
        }
        ctx.notice_flush().await;
    }
}

/// The STARTTLS acceptor from `smtp.tls_cert` and `smtp.tls_key`.
pub(crate) fn tls_acceptor(config: &Config) -> Result<SslAcceptor, DaemonError> {
    let e =
        |what: &str, err: openssl::error::ErrorStack| DaemonError::Tls(format!("{what}: {err}"));
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(|x| e("acceptor", x))?;
    b.set_certificate_chain_file(&config.smtp.tls_cert)
        .map_err(|x| e("smtp.tls_cert", x))?;
    b.set_private_key_file(&config.smtp.tls_key, SslFiletype::PEM)
        .map_err(|x| e("smtp.tls_key", x))?;
    b.check_private_key()
        .map_err(|x| e("smtp.tls_key does not match smtp.tls_cert", x))?;
    Ok(b.build())
}

/// When the certificate an acceptor presents stops being valid (0 when it has none).
pub(crate) fn cert_expiry(acceptor: &SslAcceptor) -> i64 {
    acceptor
        .context()
        .certificate()
        .and_then(|c| hisp_direct::time::from_asn1(c.not_after()))
        .unwrap_or(0)
}

fn client_config(config: &Config) -> Result<hisp_smtp::ClientConfig, DaemonError> {
    let connector = SslConnector::builder(SslMethod::tls())
        .map_err(|x| DaemonError::Tls(format!("connector: {x}")))?
        .build();
    Ok(hisp_smtp::ClientConfig {
        helo: config.server.hostname.clone(),
        connect_timeout: Duration::from_secs(30),
        command_timeout: Duration::from_secs(120),
        data_timeout: Duration::from_secs(600),
        tls: Arc::new(connector),
        require_tls: config.smtp.require_tls_outbound,
        verify_tls: false,
        bind: config.smtp.outbound_addresses.clone(),
    })
}
