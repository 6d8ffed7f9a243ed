//! Two peered HISPs on loopback, each made the way an operator would (`hisp init`, a user,
//! the peer's CA as anchor, a static route, the peer's certificate): what `hisp demo`, the
//! exchange benchmark and the integration tests run.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::daemon::{start_with, DaemonError, Running};
use crate::instance::{init_instance, InitError, InitOptions};
use hisp_store::sqlite::SqliteStore;
use hisp_store::{NewAnchor, NewStaticCert, Store, StoreError};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One side of the pair.
pub struct Peer {
    /// Its domain.
    pub domain: String,
    /// Its instance folder.
    pub dir: PathBuf,
    /// Its user.
    pub user: String,
    /// The user's password.
    pub password: String,
    /// The store (also reachable through `running`).
    pub store: Arc<SqliteStore>,
    /// The running daemon (`None` when set up but not started).
    pub running: Option<Running<SqliteStore>>,
    /// Its configuration.
    pub config: Config,
}

impl Peer {
    /// The running daemon.
    pub fn daemon(&self) -> Option<&Running<SqliteStore>> {
        self.running.as_ref()
    }

    /// Start (or restart) the daemon.
    pub async fn start(&mut self, clock: SharedClock) -> Result<(), PairError> {
        let r = start_with(self.config.clone(), self.store.clone(), clock).await?;
        self.running = Some(r);
        Ok(())
    }

    /// Start only the listeners: the queue moves when the caller ticks it.
    pub async fn start_listeners(&mut self, clock: SharedClock) -> Result<(), PairError> {
        let r = crate::daemon::start_with_options(
            self.config.clone(),
            self.store.clone(),
            clock,
            false,
        )
        .await?;
        self.running = Some(r);
        Ok(())
    }

    /// Stop the daemon.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// Why the pair could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// Making an instance failed.
    #[error(transparent)]
    Init(#[from] InitError),
    /// The configuration did not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A daemon did not start.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Files or ports.
    #[error("{0}")]
    Io(String),
}

/// A free loopback port for a listener, below the kernel's ephemeral range (32768 and up
/// on Linux), so the local end of some outgoing connection cannot be holding it when a
/// stopped daemon binds it again. Bound and released: a tiny race with another process is
/// acceptable for tests and demos; within this process a port is handed out once.
pub fn free_port() -> Result<u16, PairError> {
    // Never the same port twice in one process: two instances made before either binds
    // would otherwise both be handed a port that was free when each asked.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..200 {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| PairError::Io(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| PairError::Io(e.to_string()))
}

/// Make an instance for `domain` under `root` with one user.
pub async fn instance(
    root: &Path,
    domain: &str,
    user: &str,
    password: &str,
    now: i64,
) -> Result<Peer, PairError> {
    let dir = root.join(domain);
    let mut o = InitOptions::new(domain, &dir);
    o.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    o.smtp_port = free_port()?;
    o.submission_port = free_port()?;
    o.http_port = free_port()?;
    let report = init_instance(&o, now)?;
    let mut config = Config::load(&report.config)?;
    // Peers on loopback know each other's certificates (`introduce`); nothing to discover.
    config.discovery.enabled = false;
    let store = Arc::new(SqliteStore::open(&config.store_path())?);
    let hash = crate::users::hash_password(password).map_err(|e| PairError::Io(e.to_string()))?;
    let address = format!("{user}@{domain}");
    store.set_user(&address, &hash, now).await?;
    Ok(Peer {
        domain: domain.into(),
        dir,
        user: address,
        password: password.into(),
        store,
        running: None,
        config,
    })
}

/// Introduce `a` to `b`: `a` trusts `b`'s CA, routes `b`'s domain to `b`'s relay port, and
/// knows `b`'s domain certificate (until discovery does that).
pub async fn introduce(a: &Peer, b: &Peer, now: i64) -> Result<(), PairError> {
    let read =
        |p: PathBuf| std::fs::read(&p).map_err(|e| PairError::Io(format!("{}: {e}", p.display())));
    let ca = hisp_direct::keys::load_cert(&read(b.dir.join("ca.pem"))?)
        .map_err(|e| PairError::Io(e.to_string()))?;
    let ca =
        hisp_direct::cert::ParsedCert::from_x509(ca).map_err(|e| PairError::Io(e.to_string()))?;
    let anchor = NewAnchor {
        domain: None,
        direction: None,
        der: ca.der.clone(),
        sha256: ca.sha256_hex(),
        subject: ca.subject.clone(),
    };
    a.store.add_anchor(anchor, now).await?;
    a.store
        .set_route(&b.domain, &b.config.smtp.relay_listen.to_string(), now)
        .await?;
    let cert = hisp_direct::keys::load_cert(&read(b.dir.join("domain.pem"))?)
        .map_err(|e| PairError::Io(e.to_string()))?;
    let cert =
        hisp_direct::cert::ParsedCert::from_x509(cert).map_err(|e| PairError::Io(e.to_string()))?;
    let new = NewStaticCert {
        bound_to: b.domain.clone(),
        der: cert.der.clone(),
        sha256: cert.sha256_hex(),
    };
    a.store.add_cert(new, now).await?;
    Ok(())
}

/// Two introduced instances (not started): `direct.alpha-clinic.example` with
/// `dr.alice` and `direct.beta-hospital.example` with `dr.bob`.
pub async fn two_peers(root: &Path, now: i64) -> Result<(Peer, Peer), PairError> {
    let a = instance(
        root,
        "direct.alpha-clinic.example",
        "dr.alice",
        "alice-demo-password",
        now,
    )
    .await?;
    let b = instance(
        root,
        "direct.beta-hospital.example",
        "dr.bob",
        "bob-demo-password",
        now,
    )
    .await?;
    introduce(&a, &b, now).await?;
    introduce(&b, &a, now).await?;
    Ok((a, b))
}
