//! What every part of the daemon shares: configuration, store, clock, metrics, the current
//! directory snapshot, the SMTP client settings, and the wake-ups between workers.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::directory::{Directory, DirectoryError};
use crate::metrics::Metrics;
use hisp_direct::alg::Profile;
use hisp_direct::cert::{CertCache, ParsedCert};
use hisp_discovery::cache::CachedDiscovery;
use hisp_discovery::dns::DnsCerts;
use hisp_discovery::select::Policy;
use hisp_discovery::Discovery;
use hisp_store::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, Semaphore};

/// Shared daemon state.
pub struct Context<S: Store> {
    /// The configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<S>,
    /// "Now".
    pub clock: SharedClock,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Password checks: how many at once, and accounts locked after repeated failures.
    pub auth: crate::auth::AuthGuard,
    /// Recipients refused per client address on the relay port (directory harvesting).
    pub harvest: crate::harvest::HarvestGuard,
    /// Parsed peer certificates, kept across messages.
    pub cert_cache: Arc<CertCache>,
    /// How we deliver to other HISPs.
    pub client: hisp_smtp::ClientConfig,
    /// Idle SMTP sessions to peers, reused across deliveries.
    pub pool: hisp_smtp::client::Pool,
    /// Destination domains suspended after a host failure.
    pub destinations: crate::suspend::Destinations,
    /// The queue flush count last seen (`hisp queue flush` lifts the suspensions).
    flushes_seen: AtomicU64,
    /// When the STARTTLS certificate in force stops being valid (0: unknown), for
    /// `/metrics`; set at start and at each SIGHUP.
    pub tls_expiry: std::sync::atomic::AtomicI64,
    /// The profile for received mail.
    pub profile: Profile,
    /// Where our relay port actually listens (local domains route here).
    pub relay_addr: SocketAddr,
    /// This node's lease owner name (the configured host name).
    pub node: String,
    /// Wakes the delivery workers (new outbound work).
    pub wake_outbound: Notify,
    /// Wakes the inbound workers (new spooled mail).
    pub wake_inbound: Notify,
    /// Delivery slots (`queue.delivery_workers`), shared by the queue workers and the
    /// deliveries started the moment a message is queued.
    pub delivery_slots: Arc<Semaphore>,
    /// The workers run: relayed mail is opened before `250` and new work is delivered at
    /// once. Off when a test steps the queue by hand.
    pub immediate: bool,
    /// The last lease batch was full: more work may be due when a slot frees.
    pub backlog: AtomicBool,
    /// DNS CERT discovery for recipients without a static certificate (`None` when off).
    pub discovery: Option<CachedDiscovery>,
    /// Each message delivered into a mailbox, sent the moment its commit returns (see
    /// [`Arrival`]).
    pub arrivals: tokio::sync::broadcast::Sender<Arrival>,
    /// The memory all messages being received may hold at once (`smtp.data_memory`),
    /// shared by both SMTP ports.
    pub data_budget: Arc<hisp_smtp::DataBudget>,
    directory: RwLock<Arc<Directory>>,
}

/// A message committed to a local mailbox. In-process observers (the exchange benchmark)
/// subscribe to [`Context::arrivals`] to time a hop to the commit itself rather than to
/// when a poll happens to see it. Sent only while someone listens; a listener that falls
/// more than [`ARRIVALS_KEPT`] behind misses the oldest (`RecvError::Lagged`).
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The mailbox's owner.
    pub owner: String,
    /// The message's Message-ID.
    pub message_id: String,
    /// When the commit returned.
    pub at: std::time::Instant,
}

/// How many arrivals a slow listener may fall behind.
pub const ARRIVALS_KEPT: usize = 8192;

/// What is known of a recipient's certificates.
pub enum RecipientCerts {
    /// Certificates to encrypt to.
    Found(Vec<Arc<ParsedCert>>),
    /// None usable, with every reason (a permanent failure: the sender's DSN names them).
    None(Vec<String>),
    /// Discovery got no answer (DNS failure): try again later.
    Unknown(String),
}

impl<S: Store> Context<S> {
    /// Assemble the context around a loaded directory.
    pub fn new(
        config: Config,
        store: Arc<S>,
        clock: SharedClock,
        directory: Directory,
        client: hisp_smtp::ClientConfig,
        relay_addr: SocketAddr,
        immediate: bool,
    ) -> Context<S> {
        let profile = config.crypto.profile();
        let node = config.server.hostname.clone();
        let idle_sessions = config.queue.delivery_workers;
        let data_budget = Arc::new(hisp_smtp::DataBudget::new(config.smtp.data_memory()));
        let discovery = discovery(&config);
        let harvest = crate::harvest::HarvestGuard::new(config.smtp.max_refused_recipients_per_ip);
        Context {
            config,
            store,
            clock,
            metrics: Metrics::default(),
            auth: crate::auth::AuthGuard::new(),
            harvest,
            cert_cache: Arc::new(CertCache::new(4096)),
            client,
            pool: hisp_smtp::client::Pool::new(idle_sessions, std::time::Duration::from_secs(30)),
            destinations: crate::suspend::Destinations::default(),
            flushes_seen: AtomicU64::new(0),
            tls_expiry: std::sync::atomic::AtomicI64::new(0),
            profile,
            relay_addr,
            // Stable across restarts, so a restarted daemon can take back its own leases.
            node,
            wake_outbound: Notify::new(),
            wake_inbound: Notify::new(),
            delivery_slots: Arc::new(Semaphore::new(idle_sessions)),
            immediate,
            backlog: AtomicBool::new(false),
            discovery,
            arrivals: tokio::sync::broadcast::channel(ARRIVALS_KEPT).0,
            data_budget,
            directory: RwLock::new(Arc::new(directory)),
        }
    }

    /// Now, per the daemon's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The current directory snapshot.
    pub fn directory(&self) -> Arc<Directory> {
        match self.directory.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuild the directory if the store says it changed; true when it did.
    pub async fn refresh_directory(&self) -> Result<bool, DirectoryError> {
        let version = self.store.directory_version().await?;
        if version == self.directory().version {
            return Ok(false);
        }
        self.reload_directory().await?;
        // The operator acted (perhaps a new password for a locked account, or a route to a
        // destination that could not be reached): start afresh.
        self.auth.clear();
        self.harvest.clear();
        self.destinations.clear();
        Ok(true)
    }

    /// Load the directory again whatever changed: the store, and the certificate, key and
    /// anchor files the configuration names (renewed in place). The old one stays in force
    /// when this fails.
    pub async fn reload_directory(&self) -> Result<(), DirectoryError> {
        let fresh = Arc::new(Directory::load(&self.config, self.store.as_ref()).await?);
        match self.directory.write() {
            Ok(mut d) => *d = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Reload the directory if the operator changed it, saying so in the log; true when it
    /// was reloaded. The daemon does this every two seconds, and the workers before work
    /// that may depend on a change (a message released from quarantine after `hisp anchor
    /// add`, a retry flushed after `hisp route add`).
    pub async fn reload_directory_if_changed(&self) -> bool {
        match self.refresh_directory().await {
            Ok(reloaded) => {
                if reloaded {
                    tracing::info!("directory reloaded");
                }
                reloaded
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the directory; keeping the previous one");
                false
            }
        }
    }

    /// Lift the destination suspensions if the operator flushed the queue since the last
    /// look (`hisp queue flush`: deliver now, as Postfix's flush revives dead destinations).
    pub async fn notice_flush(&self) {
        match self.store.queue_flushes().await {
            Ok(n) if self.flushes_seen.swap(n, Ordering::Relaxed) != n => {
                self.destinations.clear();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the queue flush count"),
        }
    }

    /// Whether `address` is one of our users (asked of the store once per directory
    /// snapshot).
    pub async fn is_user(&self, address: &str) -> Result<bool, hisp_store::StoreError> {
        let address = address.to_ascii_lowercase();
        let dir = self.directory();
        if dir.known_user(&address) {
            return Ok(true);
        }
        let found = self.store.user_password_hash(&address).await?.is_some();
        if found {
            dir.remember_user(address);
        }
        Ok(found)
    }

    /// Certificates to encrypt to `address` for `sender`: the static directory when it has
    /// any for the address or its domain (an operator's override), else DNS discovery,
    /// judged against the sender's domain's anchors.
    pub async fn recipient_certs(&self, sender: &str, address: &str) -> RecipientCerts {
        let dir = self.directory();
        let now = self.now();
        let (found, rejected) = dir.static_certs_for(address, now);
        if !found.is_empty() {
            return RecipientCerts::Found(found);
        }
        let Some(discovery) = self.discovery.as_ref().filter(|_| rejected.is_empty()) else {
            return RecipientCerts::None(rejected);
        };
        let Some(domain) = dir.local_domain(sender) else {
            return RecipientCerts::None(vec![format!("{sender} is not in a local domain")]);
        };
        let policy = Policy {
            anchors: &domain.anchors_out,
            intermediates: &[],
            crls: &[],
            at: now,
            profile: &self.profile,
        };
        let started = std::time::Instant::now();
        let result = discovery.discover(address, &policy).await;
        self.metrics
            .discovery_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(f) if !f.usable.is_empty() => {
                RecipientCerts::Found(f.usable.iter().map(|u| u.cert.clone()).collect())
            }
            Ok(f) => {
                let mut why: Vec<String> = f
                    .rejected
                    .iter()
                    .map(|r| format!("{} ({}): {}", r.sha256, r.source.as_str(), r.reason))
                    .collect();
                if why.is_empty() {
                    why.push(format!("none published ({})", f.trail.join("; ")));
                }
                RecipientCerts::None(why)
            }
            Err(e) => RecipientCerts::Unknown(e.to_string()),
        }
    }

    /// Where to deliver mail for `domain`: its static route, our own relay port for a local
    /// domain, else `None` (MX lookup).
    pub fn route_for(&self, domain: &str) -> Option<String> {
        let dir = self.directory();
        if let Some(r) = dir.route(domain) {
            return Some(r.to_string());
        }
        let local = dir
            .domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(domain));
        local.then(|| self.relay_addr.to_string())
    }
}

/// Discovery as configured; off (with a warning) when the system resolver is unusable.
fn discovery(config: &Config) -> Option<CachedDiscovery> {
    let c = &config.discovery;
    if !c.enabled {
        return None;
    }
    let dns = match c.dns {
        Some(addr) => DnsCerts::at(addr, c.timeout),
        None => match DnsCerts::system(c.timeout) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "certificate discovery is off: set discovery.dns");
                return None;
            }
        },
    };
    let d = Discovery::new(dns, c.timeout).allow_unreachable_crl(c.allow_unreachable_crl);
    Some(CachedDiscovery::new(d, 100_000))
}

/// Messages up to this size are sealed and opened on the reactor thread that has them.
const INLINE_CPU_BYTES: usize = 256 * 1024;

/// Run crypto for a message of `bytes`: small ones right here (a fraction of a
/// millisecond, and the runtime has one thread per core, so handing the work to another
/// thread only adds two context switches), larger ones on the blocking pool so they do
/// not stall the other sessions on this thread. `None` if the work panicked.
pub async fn crypto<T, F>(bytes: usize, work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if bytes <= INLINE_CPU_BYTES {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok();
    }
    tokio::task::spawn_blocking(work).await.ok()
}
