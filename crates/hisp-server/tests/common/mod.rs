//! Shared helpers for the daemon's integration tests: peered instances on loopback (made by
//! `hisp_server::pair`), polling with a deadline instead of sleeps, the REST edge, SMTP
//! submission with the hisp-smtp client, a raw synchronous SMTP client for hostile sessions,
//! and external tools (swaks, curl, python3) that must be present.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hisp_server::clock::SharedClock;
use hisp_server::config::Config;
use hisp_server::instance::{init_instance, InitOptions};
use hisp_server::pair::{free_port, introduce, Peer};
use hisp_smtp::{ClientConfig, Envelope};
use hisp_store::sqlite::SqliteStore;
use hisp_store::{EntryKind, MailboxEntry, OutRecipient, QueueId, RcptState, Store};
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any awaited outcome may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often the awaited outcome is checked.
pub const POLL: Duration = Duration::from_millis(20);

/// Unix time now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Poll `check` every [`POLL`] until it returns `Ok`, failing the test after [`DEADLINE`]
/// with `what` and the last `Err` (which describes what was seen instead).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The running daemon's context (panics when the peer is not started).
pub fn ctx(p: &Peer) -> &Arc<hisp_server::context::Context<hisp_store::sqlite::SqliteStore>> {
    &p.daemon().expect("peer not started").ctx
}

/// Start a peer with workers on `clock`.
pub async fn start(p: &mut Peer, clock: SharedClock) {
    p.start(clock)
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", p.domain));
}

/// The only recipient of outbound message `id` at `p`.
pub async fn rcpt(p: &Peer, id: &QueueId) -> OutRecipient {
    let m = p
        .store
        .outbound(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is not in {}'s queue", p.domain));
    assert_eq!(m.recipients.len(), 1, "{id}: one recipient expected");
    m.recipients[0].clone()
}

/// Wait until the recipient of `id` at `p` reaches `want`; fails at once when it reaches
/// another final state.
pub async fn wait_state(p: &Peer, id: &QueueId, want: RcptState) -> OutRecipient {
    eventually(
        &format!("{id} at {} to be {}", p.domain, want.as_str()),
        || async move {
            let r = rcpt(p, id).await;
            if r.state == want {
                return Ok(r);
            }
            assert!(
                !r.state.is_final(),
                "{id} ended {} while waiting for {}: {:?}",
                r.state.as_str(),
                want.as_str(),
                r.last_error
            );
            Err(format!("{} ({:?})", r.state.as_str(), r.last_error))
        },
    )
    .await
}

/// Every mailbox entry of `owner` at `p`, picked up or not.
pub async fn mailbox(p: &Peer, owner: &str) -> Vec<MailboxEntry> {
    p.store.mailbox(owner, true).await.unwrap()
}

/// Entries of `kind` in `owner`'s mailbox at `p`.
pub async fn entries(p: &Peer, owner: &str, kind: EntryKind) -> Vec<MailboxEntry> {
    mailbox(p, owner)
        .await
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Wait until `owner`'s mailbox at `p` holds `n` entries of `kind`; returns them.
pub async fn wait_entries(p: &Peer, owner: &str, kind: EntryKind, n: usize) -> Vec<MailboxEntry> {
    let what = format!("{n} {} entries for {owner}", kind.as_str());
    eventually(&what, || async move {
        let e = entries(p, owner, kind).await;
        if e.len() >= n {
            Ok(e)
        } else {
            let q = p.store.quarantined(5).await.unwrap();
            let why: Vec<_> = q.iter().filter_map(|m| m.reason.clone()).collect();
            Err(format!("{} entries; quarantined: {why:?}", e.len()))
        }
    })
    .await
}

/// A clinical test message, CRLF line ends, optionally asking for `dispatched`.
pub fn message(from: &str, to: &str, subject: &str, message_id: &str, dispatched: bool) -> Vec<u8> {
    let date = hisp_direct::time::format_rfc5322(now());
    let dno = if dispatched {
        "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n"
    } else {
        ""
    };
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n{dno}Content-Type: text/plain; charset=utf-8\r\n\r\nSynthetic test patient: please see the summary of care.\r\n"
    )
    .into_bytes()
}

/// A fresh Message-ID in `domain`.
pub fn message_id(domain: &str) -> String {
    format!("<{:016x}@{domain}>", rand::random::<u64>())
}

/// SMTP client settings for tests (TLS offered by our servers; their certificates are not
/// checked, as the daemon's own client does not check them either).
pub fn client_config() -> ClientConfig {
    ClientConfig {
        helo: "edge.test.example".into(),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(20),
        data_timeout: Duration::from_secs(20),
        tls: Arc::new(SslConnector::builder(SslMethod::tls()).unwrap().build()),
        require_tls: false,
        verify_tls: false,
        bind: Vec::new(),
    }
}

/// An envelope from `from` to `to`.
pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        mail_from: from.to_string(),
        rcpt_to: to.iter().map(|s| s.to_string()).collect(),
        body_8bit: false,
        declared_size: None,
    }
}

/// The queue id in a `250 … queued as <id>` reply text.
pub fn queued_id(text: &str) -> QueueId {
    let at = text
        .find("queued as ")
        .unwrap_or_else(|| panic!("no queue id in {text:?}"));
    let id: String = text[at + "queued as ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(!id.is_empty(), "no queue id in {text:?}");
    QueueId(id)
}

/// Submit `message` as the peer's user over the submission port (STARTTLS, AUTH PLAIN);
/// returns the queue id.
pub async fn submit(p: &Peer, to: &str, message: &[u8]) -> QueueId {
    let target = p.config.smtp.submission_listen.to_string();
    let env = envelope(&p.user, &[to]);
    let d = hisp_smtp::client::submit(
        &target,
        &client_config(),
        &p.user,
        &p.password,
        &env,
        message,
    )
    .await
    .unwrap_or_else(|e| panic!("submission to {target} failed: {e}"));
    let reply = d.data_reply.expect("no reply to the content");
    assert_eq!(reply.code, 250, "submission refused: {reply}");
    queued_id(&reply.to_string())
}

/// One REST request with the peer's credentials.
pub async fn rest(p: &Peer, method: &str, path: &str, body: &[u8]) -> hisp_server::edge::Response {
    let http = p.config.http.listen.to_string();
    hisp_server::edge::request(&http, method, path, (&p.user, &p.password), body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// GET `/metrics` as text.
pub async fn metrics(p: &Peer) -> String {
    let r = rest(p, "GET", "/metrics", b"").await;
    assert_eq!(r.status, 200, "/metrics answered {}", r.status);
    String::from_utf8(r.body).unwrap()
}

/// The value of one sample line (`name` includes any labels) in exposition text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in the metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Run an external tool that the tests require; fails with a clear message when missing.
pub async fn tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("{program} is required by this test and could not be run ({e}); install it (apt-get install swaks libnet-ssleay-perl curl python3)")
    });
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish in 60 s"))
        .unwrap()
}

/// `curl -s` with the peer's credentials; returns (HTTP status, body).
pub async fn curl(p: &Peer, method: &str, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", p.config.http.listen);
    let auth = format!("{}:{}", p.user, p.password);
    let out = tool(
        "curl",
        &[
            "-s",
            "-X",
            method,
            "-u",
            &auth,
            "-w",
            "\n%{http_code}",
            &url,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "curl {method} {url} failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// A raw, synchronous SMTP client speaking exact bytes (run it in `spawn_blocking`).
pub struct Raw {
    stream: Option<Box<dyn ReadWrite>>,
    plain: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A byte stream.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// One reply: the code and every line as received.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// The code of the last line.
    pub code: u16,
    /// The lines, without CRLF.
    pub text: String,
}

impl Raw {
    /// Connect and read the greeting (which must be 220).
    pub fn connect(addr: std::net::SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = Raw {
            stream: None,
            plain: Some(s),
            buf: Vec::new(),
        };
        let g = r.reply();
        assert_eq!(g.code, 220, "greeting: {}", g.text);
        r
    }

    /// Connect without reading anything (for clients that hold a connection open).
    pub fn connect_silent(addr: std::net::SocketAddr) -> TcpStream {
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// Send bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        let res = match (&mut self.stream, &mut self.plain) {
            (Some(s), _) => s.write_all(bytes).and_then(|_| s.flush()),
            (None, Some(p)) => p.write_all(bytes),
            _ => panic!("connection gone"),
        };
        res.unwrap();
    }

    fn read_more(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = match (&mut self.stream, &mut self.plain) {
            (Some(s), _) => s.read(&mut chunk),
            (None, Some(p)) => p.read(&mut chunk),
            _ => panic!("connection gone"),
        }
        .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Read one (possibly multi-line) reply.
    pub fn reply(&mut self) -> RawReply {
        let mut lines = Vec::new();
        loop {
            let Some(i) = self.buf.iter().position(|b| *b == b'\n') else {
                if self.read_more() == 0 {
                    panic!("connection closed while reading a reply; got {lines:?}");
                }
                continue;
            };
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                let code = lines.last().unwrap()[..3].parse().unwrap();
                return RawReply {
                    code,
                    text: lines.join("\n"),
                };
            }
        }
    }

    /// True when the server closed the connection (read returns 0 or fails).
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.read_more() == 0
    }

    /// Send a command line (CRLF added) and read the reply.
    pub fn cmd(&mut self, line: &str) -> RawReply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// EHLO, which must succeed.
    pub fn ehlo(&mut self) {
        let r = self.cmd("EHLO raw.test.example");
        assert_eq!(r.code, 250, "EHLO: {}", r.text);
    }

    /// EHLO, STARTTLS, handshake (certificate not checked), EHLO again.
    pub fn starttls(&mut self) {
        self.ehlo();
        let r = self.cmd("STARTTLS");
        assert_eq!(r.code, 220, "STARTTLS: {}", r.text);
        let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        let tcp = self.plain.take().unwrap();
        let tls: SslStream<TcpStream> = b
            .build()
            .connect("localhost", tcp)
            .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
        self.stream = Some(Box::new(tls));
        self.ehlo();
    }

    /// AUTH PLAIN with an initial response; returns the reply.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> RawReply {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.cmd(&format!("AUTH PLAIN {token}"))
    }
}

/// Files by name, with their contents.
type Files = Vec<(String, Vec<u8>)>;

/// The files `hisp init` writes for a domain, made once per test binary and kept in
/// memory: RSA key generation (a 3072-bit CA and two leaves) costs seconds in every test
/// otherwise, and nothing in these tests depends on the keys being unique per test.
fn template(domain: &str) -> Arc<Files> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Files>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(domain.to_string())
        .or_insert_with(|| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join(domain);
            let mut o = InitOptions::new(domain, &dir);
            o.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
            init_instance(&o, now()).unwrap();
            let files = [
                "hisp.toml",
                "ca.pem",
                "ca.key",
                "domain.pem",
                "domain.key",
                "tls.pem",
                "tls.key",
            ]
            .iter()
            .map(|n| (n.to_string(), std::fs::read(dir.join(n)).unwrap()))
            .collect();
            Arc::new(files)
        })
        .clone()
}

/// An Argon2id hash of `password`, made once per test binary.
fn password_hash(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(password.to_string())
        .or_insert_with(|| hisp_server::users::hash_password(password).unwrap())
        .clone()
}

/// What `hisp_server::pair::instance` makes (an initialised instance on loopback with one
/// user), from the cached [`template`]: fresh folder, fresh store, fresh ports.
pub async fn instance(root: &Path, domain: &str, user: &str, password: &str) -> Peer {
    let dir = root.join(domain);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for (name, bytes) in template(domain).iter() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let mut config = Config::load(&dir.join("hisp.toml")).unwrap();
    let port = || SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().unwrap()));
    config.smtp.relay_listen = port();
    config.smtp.submission_listen = port();
    config.http.listen = port();
    // Static certificates only, unless a test turns discovery on with its own DNS server.
    config.discovery.enabled = false;
    let store = Arc::new(SqliteStore::open(&config.store_path()).unwrap());
    let address = format!("{user}@{domain}");
    store
        .set_user(&address, &password_hash(password), now())
        .await
        .unwrap();
    Peer {
        domain: domain.into(),
        dir,
        user: address,
        password: password.into(),
        store,
        running: None,
        config,
    }
}

/// The alpha domain (user dr.alice).
pub const ALPHA: &str = "direct.alpha-clinic.example";
/// The beta domain (user dr.bob).
pub const BETA: &str = "direct.beta-hospital.example";

/// Two peered instances as `hisp_server::pair::two_peers` makes them (alpha with dr.alice,
/// beta with dr.bob, introduced both ways) under a fresh temporary root, not started, from
/// cached key material. Keep the root alive as long as the peers.
pub async fn pair(now: i64) -> (tempfile::TempDir, Peer, Peer) {
    let root = tempfile::tempdir().unwrap();
    let a = instance(root.path(), ALPHA, "dr.alice", "alice-demo-password").await;
    let b = instance(root.path(), BETA, "dr.bob", "bob-demo-password").await;
    introduce(&a, &b, now).await.unwrap();
    introduce(&b, &a, now).await.unwrap();
    (root, a, b)
}

/// Two peered instances, both started with workers on the system clock.
pub async fn running_pair() -> (tempfile::TempDir, Peer, Peer) {
    let (root, mut a, mut b) = pair(now()).await;
    let clock: SharedClock = Arc::new(hisp_server::clock::SystemClock);
    start(&mut a, clock.clone()).await;
    start(&mut b, clock).await;
    (root, a, b)
}

/// Queue a message from the peer's user to `to` the way the submission port does (policy
/// checks, Message-ID and Date completed), straight into the running daemon's store;
/// returns its queue id and Message-ID.
pub async fn queue_message(p: &Peer, to: &[&str], dispatched: bool) -> (QueueId, String) {
    use hisp_server::smtp_handler::{prepare_submission, queue_submission};
    let ctx = ctx(p);
    let mid = message_id(&p.domain);
    let msg = message(&p.user, &to.join(", "), "consult", &mid, dispatched);
    let s = prepare_submission(ctx, &p.user, msg).unwrap();
    let new = hisp_store::NewOutbound {
        sender: p.user.clone(),
        message_id: s.message_id,
        recipients: to.iter().map(|r| r.to_string()).collect(),
        body: s.body,
        wants_dispatched: s.wants_dispatched,
        kind: hisp_store::OutKind::Message,
        via: "test".into(),
        now: ctx.now(),
    };
    (QueueId(queue_submission(ctx, new).await.unwrap()), mid)
}

/// The recipient `addr` of outbound message `id` at `p`.
pub async fn rcpt_of(p: &Peer, id: &QueueId, addr: &str) -> OutRecipient {
    let m = p.store.outbound(id).await.unwrap().unwrap();
    m.recipients
        .into_iter()
        .find(|r| r.rcpt == addr)
        .unwrap_or_else(|| panic!("{addr} is not a recipient of {id}"))
}

/// The gamma domain (user dr.carol), for a third instance.
pub const GAMMA: &str = "direct.gamma-lab.example";

/// `report` signed with `signer`'s domain credential and encrypted for `reader`'s domain
/// certificate, as `signer`'s outbound worker would seal it.
pub fn seal_for(signer: &Peer, reader: &Peer, report: &[u8]) -> Vec<u8> {
    use hisp_direct::seal::{seal, SealOptions};
    let read = |p: &Peer, f: &str| std::fs::read(p.dir.join(f)).unwrap();
    let cred = hisp_direct::keys::load_credential(
        Some(&read(signer, "domain.pem")),
        &read(signer, "domain.key"),
        None,
    )
    .unwrap();
    let cert = hisp_direct::keys::load_cert(&read(reader, "domain.pem")).unwrap();
    seal(report, &cred, &[cert.as_ref()], &SealOptions::new(now())).unwrap()
}

/// Deliver `sealed` to `to`'s relay port from `from` to `rcpt`; the reply must be 250.
pub async fn relay_to(to: &Peer, from: &str, rcpt: &str, sealed: &[u8]) {
    let relay = to.config.smtp.relay_listen.to_string();
    let d = hisp_smtp::client::deliver(&relay, &client_config(), &envelope(from, &[rcpt]), sealed)
        .await
        .unwrap_or_else(|e| panic!("delivery to {relay} failed: {e}"));
    assert_eq!(d.data_reply.map(|r| r.code), Some(250), "{:?}", d.per_rcpt);
}

/// Bytes as text, for assertion messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
