//! Shared fixtures for the hisp-smtp integration tests: an in-memory [`Handler`], a
//! self-signed TLS certificate made on the fly, configs, and a raw line-level SMTP client
//! ([`Wire`]) that can misbehave on purpose (pipeline, trickle, talk early).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use hisp_smtp::{
    AuthOutcome, ClientConfig, Envelope, Handler, PortKind, Reply, ServerConfig, SessionInfo,
};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_openssl::SslStream;

/// One message the handler took.
#[derive(Debug, Clone)]
pub struct Stored {
    pub session: SessionInfo,
    pub envelope: Envelope,
    pub message: Vec<u8>,
}

/// An in-memory handler: a users map, recipients to refuse, a switch to fail storage.
#[derive(Default)]
pub struct TestHandler {
    pub users: HashMap<String, String>,
    /// RCPT TO addresses answered `550 5.1.1`.
    pub refuse_rcpt: Vec<String>,
    /// Answer `451 4.3.0` to every DATA.
    pub fail_storage: bool,
    pub messages: Mutex<Vec<Stored>>,
}

impl TestHandler {
    pub fn new() -> Arc<TestHandler> {
        Arc::new(TestHandler::with_user("alice", "secret"))
    }

    pub fn with_user(user: &str, password: &str) -> TestHandler {
        let mut h = TestHandler::default();
        h.users.insert(user.into(), password.into());
        h
    }

    pub fn stored(&self) -> Vec<Stored> {
        self.messages.lock().unwrap().clone()
    }
}

impl Handler for TestHandler {
    async fn authenticate(&self, _: &SessionInfo, user: &str, password: &str) -> AuthOutcome {
        match self.users.get(user) {
            Some(p) if p == password => AuthOutcome::Accepted(user.to_string()),
            _ => AuthOutcome::Rejected,
        }
    }

    async fn mail_from(&self, _session: &SessionInfo, reverse_path: &str) -> Result<(), Reply> {
        if reverse_path.starts_with("blocked@") {
            return Err(Reply::sender_not_owned(reverse_path));
        }
        Ok(())
    }

    async fn rcpt_to(
        &self,
        _s: &SessionInfo,
        _e: &Envelope,
        forward_path: &str,
    ) -> Result<(), Reply> {
        if self.refuse_rcpt.iter().any(|r| r == forward_path) {
            return Err(Reply::unknown_user(forward_path));
        }
        Ok(())
    }

    async fn data(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        if self.fail_storage {
            return Err(Reply::storage_failure());
        }
        let mut messages = self.messages.lock().unwrap();
        messages.push(Stored {
            session: session.clone(),
            envelope: envelope.clone(),
            message,
        });
        Ok(format!("Q{}", messages.len()))
    }
}

/// A self-signed P-256 certificate for `localhost` / 127.0.0.1, made once per process.
pub fn cert() -> &'static (X509, PKey<Private>) {
    static CERT: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "localhost")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    })
}

pub fn acceptor() -> Arc<SslAcceptor> {
    let (cert, key) = cert();
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key(key).unwrap();
    b.set_certificate(cert).unwrap();
    b.check_private_key().unwrap();
    Arc::new(b.build())
}

pub fn relay_config() -> ServerConfig {
    ServerConfig::new("mx.test", PortKind::Relay, Some(acceptor()))
}

pub fn submission_config() -> ServerConfig {
    ServerConfig::new("submit.test", PortKind::Submission, Some(acceptor()))
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        helo: "client.test".into(),
        connect_timeout: std::time::Duration::from_secs(5),
        command_timeout: std::time::Duration::from_secs(30),
        data_timeout: std::time::Duration::from_secs(60),
        tls: Arc::new(SslConnector::builder(SslMethod::tls()).unwrap().build()),
        require_tls: false,
        verify_tls: false,
        bind: Vec::new(),
    }
}

pub fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        mail_from: from.into(),
        rcpt_to: to.iter().map(|s| s.to_string()).collect(),
        body_8bit: false,
        declared_size: None,
    }
}

pub fn peer() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

/// Any byte stream the test client can speak over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A raw SMTP client speaking lines, for driving the server exactly.
pub struct Wire {
    io: Option<Pin<Box<dyn Io>>>,
    buf: Vec<u8>,
}

/// Starts a session over an in-memory pipe; returns our end and the session task.
pub fn start(cfg: ServerConfig, handler: Arc<TestHandler>) -> (Wire, JoinHandle<()>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(hisp_smtp::server::run_session(
        theirs,
        peer(),
        Arc::new(cfg),
        handler,
    ));
    (Wire::new(ours), task)
}

/// Like [`start`], but `early` is already in the pipe when the session starts.
pub async fn start_with_early(
    cfg: ServerConfig,
    handler: Arc<TestHandler>,
    early: &[u8],
) -> (Wire, JoinHandle<()>) {
    let (mut ours, theirs) = tokio::io::duplex(1 << 16);
    ours.write_all(early).await.unwrap();
    let task = tokio::spawn(hisp_smtp::server::run_session(
        theirs,
        peer(),
        Arc::new(cfg),
        handler,
    ));
    (Wire::new(ours), task)
}

impl Wire {
    pub fn new(io: impl Io + 'static) -> Wire {
        Wire {
            io: Some(Box::pin(io)),
            buf: Vec::new(),
        }
    }

    fn io(&mut self) -> Pin<&mut dyn Io> {
        self.io.as_mut().unwrap().as_mut()
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref().to_vec();
        self.io().write_all(&bytes).await.unwrap();
        self.io().flush().await.unwrap();
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(line).unwrap().trim_end().to_string());
            }
            let mut chunk = [0u8; 4096];
            let n = self.io().read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One whole reply: (code, all lines joined by '\n'); `None` at EOF.
    pub async fn reply(&mut self) -> Option<(u16, String)> {
        let mut text = Vec::new();
        loop {
            let line = self.line().await?;
            let code: u16 = line[..3].parse().unwrap();
            let last = line.as_bytes().get(3) != Some(&b'-');
            text.push(line);
            if last {
                return Some((code, text.join("\n")));
            }
        }
    }

    /// Reads a reply and checks its code; returns its text.
    pub async fn expect(&mut self, code: u16) -> String {
        let got = self.reply().await;
        match got {
            Some((c, text)) if c == code => text,
            other => panic!("expected {code}, got {other:?}"),
        }
    }

    /// Sends a command line (CRLF added) and checks the reply's code.
    pub async fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(format!("{line}\r\n")).await;
        self.expect(code).await
    }

    /// True when the server has closed (EOF before any further reply).
    pub async fn closed(&mut self) -> bool {
        self.line().await.is_none()
    }

    /// Runs the client side of TLS after a `220` to STARTTLS (no verification).
    pub async fn start_tls(&mut self) {
        assert!(self.buf.is_empty(), "bytes after the 220 to STARTTLS");
        let mut c = SslConnector::builder(SslMethod::tls()).unwrap();
        c.set_verify(SslVerifyMode::NONE);
        let ssl = c
            .build()
            .configure()
            .unwrap()
            .into_ssl("localhost")
            .unwrap();
        let plain = self.io.take().unwrap();
        let mut tls = SslStream::new(ssl, plain).unwrap();
        Pin::new(&mut tls).connect().await.unwrap();
        self.io = Some(Box::pin(tls));
    }

    /// EHLO, STARTTLS, handshake, EHLO again: returns the second EHLO reply.
    pub async fn ehlo_tls(&mut self) -> String {
        self.cmd("EHLO client.test", 250).await;
        self.cmd("STARTTLS", 220).await;
        self.start_tls().await;
        self.cmd("EHLO client.test", 250).await
    }
}

/// Runs our server (the real accept loop) on 127.0.0.1:0 until the test's runtime ends.
pub async fn our_server(cfg: ServerConfig, handler: Arc<TestHandler>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _stop = stop;
        hisp_smtp::server::serve(listener, Arc::new(cfg), handler, rx).await
    });
    addr
}
