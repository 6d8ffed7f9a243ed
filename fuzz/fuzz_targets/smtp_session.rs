//! `smtp_session`: a whole SMTP server session (RFC 5321, RFC 2920 pipelining, RFC 3207
//! STARTTLS, RFC 4954 AUTH, RFC 6409 submission) driven by arbitrary client bytes over an
//! in-memory pipe, on a paused clock so timeouts cost nothing. Nothing may panic or hang,
//! and what the session promises holds whatever the client sends:
//!
//! - every reply line is `DDD ` or `DDD-`, then text with no CR or LF, then CRLF, and fits
//!   RFC 5321 §4.5.3.1.5's 512 octets;
//! - the handler sees a message only when it is well formed: within the size limit, every
//!   line CRLF-ended and within the line limit, no bare CR or LF (RFC 5321 §2.3.8), with
//!   one to `max_recipients` recipients;
//! - on the submission port nothing reaches MAIL or DATA without TLS and a user;
//! - `250 ... queued as` is sent once for each message the handler took, and never else;
//! - the memory budget for messages in DATA (smaller than the size limit here, so both
//!   refusals happen) is all given back when the session ends.
//!
//! The first input byte picks the setting:
//!
//! - bit 0: submission port (else relay);
//! - bit 1: STARTTLS first (the harness sends `EHLO`, `STARTTLS`, completes the handshake,
//!   then sends the rest over TLS; the rest should start with EHLO again);
//! - bit 2: the client speaks before the greeting (RFC 5321 §4.3.1 sync error);
//! - bit 3: the handler refuses DATA with `451` (a store failure);
//! - bits 4–7: `0` sends the rest in one write (all of it pipelined); `n > 0` sends it a
//!   line per write with `n` yields between, so the session answers each line before the
//!   next arrives (message content then comes after the `354`, as a careful client sends).
//!
//! The handler's only user is `user@fuzz.hisp.example`, password `secret`; fuzz/seed-corpora
//! writes seed dialogues for each setting.
#![no_main]

use hisp_smtp::server::run_session;
use hisp_smtp::{
    AuthOutcome, DataBudget, Envelope, Handler, PortKind, Reply, ServerConfig, SessionInfo,
};
use libfuzzer_sys::fuzz_target;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509NameBuilder, X509};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const USER: &str = "user@fuzz.hisp.example";
const PASSWORD: &str = "secret";
const QUEUE_ID: &str = "FUZZQID";
// Small limits, so the fuzzer reaches them with short inputs.
const MAX_SIZE: usize = 2048;
const MAX_DATA_LINE: usize = 200;
const MAX_RCPTS: usize = 4;
/// Below MAX_SIZE (the budget counts whole KiB): a message of 1 to 2 KiB is refused with
/// 452 4.3.1 for want of memory.
const DATA_BUDGET: usize = 1024;

struct Tls {
    acceptor: Arc<SslAcceptor>,
    connector: SslConnector,
}

/// An ECDSA P-256 certificate, generated once per process (the handshake is then cheap).
fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let key = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256"))
                .expect("key"),
        )
        .expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "mx.fuzz.hisp.example")
            .expect("CN");
        let name = name.build();
        let mut b = X509::builder().expect("cert");
        b.set_version(2).expect("version");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let not_before = openssl::asn1::Asn1Time::days_from_now(0).expect("time");
        let not_after = openssl::asn1::Asn1Time::days_from_now(3650).expect("time");
        b.set_not_before(&not_before).expect("not before");
        b.set_not_after(&not_after).expect("not after");
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        let cert = b.build();
        let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        a.set_private_key(&key).expect("key");
        a.set_certificate(&cert).expect("cert");
        let mut c = SslConnector::builder(SslMethod::tls()).expect("connector");
        c.set_verify(SslVerifyMode::NONE);
        Tls {
            acceptor: Arc::new(a.build()),
            connector: c.build(),
        }
    })
}

struct FuzzHandler {
    refuse_data: bool,
    taken: AtomicUsize,
}

impl FuzzHandler {
    fn check_submission(session: &SessionInfo, what: &str) {
        if session.kind == PortKind::Submission {
            assert!(session.tls, "{what} on submission without TLS");
            assert_eq!(session.user.as_deref(), Some(USER), "{what} without AUTH");
        }
    }
}

impl Handler for FuzzHandler {
    async fn authenticate(&self, _: &SessionInfo, user: &str, password: &str) -> AuthOutcome {
        if user == USER && password == PASSWORD {
            AuthOutcome::Accepted(user.to_string())
        } else if user == "tempfail@fuzz.hisp.example" {
            AuthOutcome::TempFail
        } else {
            AuthOutcome::Rejected
        }
    }

    async fn mail_from(&self, session: &SessionInfo, _: &str) -> Result<(), Reply> {
        Self::check_submission(session, "MAIL");
        Ok(())
    }

    async fn rcpt_to(&self, s: &SessionInfo, env: &Envelope, to: &str) -> Result<(), Reply> {
        Self::check_submission(s, "RCPT");
        assert!(
            env.rcpt_to.len() < MAX_RCPTS,
            "RCPT past the limit reached the handler"
        );
        if to.starts_with("nobody") {
            return Err(Reply::unknown_user(to));
        }
        Ok(())
    }

    async fn data(
        &self,
        s: &SessionInfo,
        env: &Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        Self::check_submission(s, "DATA");
        assert!(
            (1..=MAX_RCPTS).contains(&env.rcpt_to.len()),
            "{} recipients",
            env.rcpt_to.len()
        );
        assert!(
            message.len() <= MAX_SIZE,
            "{} bytes passed the size limit",
            message.len()
        );
        well_formed(&message);
        if self.refuse_data {
            return Err(Reply::storage_failure());
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        Ok(QUEUE_ID.to_string())
    }
}

/// Every line ends with CRLF and fits the limit; no CR or LF elsewhere.
fn well_formed(message: &[u8]) {
    let mut rest = message;
    while !rest.is_empty() {
        let lf = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("a message line without its LF");
        assert!(
            lf > 0 && rest[lf - 1] == b'\r',
            "a bare LF reached the handler"
        );
        assert!(
            !rest[..lf - 1].contains(&b'\r'),
            "a bare CR reached the handler"
        );
        assert!(
            lf + 1 <= MAX_DATA_LINE,
            "a {}-byte line passed the limit",
            lf + 1
        );
        rest = &rest[lf + 1..];
    }
}

/// Checks the server's output and returns how many messages it said it queued.
fn replies(out: &[u8]) -> usize {
    let mut queued = 0;
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "a reply line without CRLF: {:?}",
                    String::from_utf8_lossy(rest)
                )
            });
        let line = &rest[..end];
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "CR or LF inside a reply line"
        );
        assert!(end + 2 <= 512, "a {}-byte reply line", end + 2);
        assert!(
            line.len() >= 4
                && (b'2'..=b'5').contains(&line[0])
                && line[1..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "not a reply line: {:?}",
            String::from_utf8_lossy(line)
        );
        if line == format!("250 2.0.0 Ok: queued as {QUEUE_ID}").as_bytes() {
            queued += 1;
        }
        rest = &rest[end + 2..];
    }
    queued
}

/// Reads one reply (all its lines) from `r` onto `out`; false at EOF.
async fn read_reply<R: AsyncRead + Unpin>(r: &mut R, out: &mut Vec<u8>) -> bool {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if r.read(&mut byte).await.unwrap_or(0) == 0 {
            return false;
        }
        out.push(byte[0]);
        line.push(byte[0]);
        if byte[0] == b'\n' {
            if line.get(3) == Some(&b' ') {
                return true;
            }
            line.clear();
        }
    }
}

/// The last line of a reply read by [`read_reply`] starts with `220 `.
fn last_is_220(out: &[u8]) -> bool {
    let body = out.strip_suffix(b"\r\n").unwrap_or(out);
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    last.starts_with(b"220 ")
}

/// Writes `input` (in one write, or a line per write with `yields` yields between), then
/// closes our sending side, while reading every reply onto `out` until the server closes.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    input: &[u8],
    yields: u8,
    out: &mut Vec<u8>,
) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let send = async {
        let pieces: Vec<&[u8]> = if yields == 0 {
            vec![input]
        } else {
            input.split_inclusive(|&b| b == b'\n').collect()
        };
        for piece in pieces {
            if wr.write_all(piece).await.is_err() {
                return;
            }
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        }
        let _ = wr.shutdown().await;
    };
    let receive = async {
        let _ = rd.read_to_end(out).await;
    };
    tokio::join!(send, receive);
}

/// The port (bit 0 of the mode) with small limits, STARTTLS offered.
fn config(mode: u8) -> ServerConfig {
    let kind = if mode & 1 == 1 {
        PortKind::Submission
    } else {
        PortKind::Relay
    };
    let mut cfg = ServerConfig::new("mx.fuzz.hisp.example", kind, Some(tls().acceptor.clone()));
    cfg.max_message_size = MAX_SIZE;
    cfg.max_data_line = MAX_DATA_LINE;
    cfg.max_recipients = MAX_RCPTS;
    cfg.max_command_line = 512;
    cfg.auth_failure_delay = Duration::from_secs(2);
    cfg.data_budget = Some(Arc::new(DataBudget::new(DATA_BUDGET)));
    cfg
}

/// Runs one session as the mode says; returns what the server sent and how many messages
/// the handler took.
async fn session(mode: u8, input: &[u8]) -> (Vec<u8>, usize) {
    let (starttls, early, yields) = (mode & 2 != 0, mode & 4 != 0, mode >> 4);
    let cfg = Arc::new(config(mode));
    let budget = cfg.data_budget.clone().expect("a budget");
    let handler = Arc::new(FuzzHandler {
        refuse_data: mode & 8 != 0,
        taken: AtomicUsize::new(0),
    });
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let peer = "192.0.2.1:40000".parse().expect("address");
    let task = tokio::spawn(run_session(server, peer, cfg, handler.clone()));
    let mut out = Vec::new();
    if early {
        converse(&mut client, input, yields, &mut out).await;
    } else if !read_reply(&mut client, &mut out).await {
        // Closed before the greeting: nothing else to say.
    } else if starttls {
        let _ = client.write_all(b"EHLO fuzz.example\r\nSTARTTLS\r\n").await;
        let ehlo = read_reply(&mut client, &mut out).await;
        let mark = out.len();
        if ehlo && read_reply(&mut client, &mut out).await && last_is_220(&out[mark..]) {
            let ssl = tls().connector.configure().expect("ssl");
            let ssl = ssl.into_ssl("mx.fuzz.hisp.example").expect("ssl");
            let mut s = tokio_openssl::SslStream::new(ssl, client).expect("stream");
            assert!(
                Pin::new(&mut s).connect().await.is_ok(),
                "STARTTLS handshake failed"
            );
            converse(s, input, yields, &mut out).await;
        }
    } else {
        converse(&mut client, input, yields, &mut out).await;
    }
    if let Err(e) = task.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    assert_eq!(budget.in_use(), 0, "the session ended holding DATA memory");
    (out, handler.taken.load(Ordering::Relaxed))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (out, taken) = rt.block_on(session(mode, input));
    // To see a reproducer's dialogue: HISP_FUZZ_TRACE=1 cargo fuzz run smtp_session FILE
    if std::env::var_os("HISP_FUZZ_TRACE").is_some() {
        eprintln!(
            "mode {mode:#04x}, {taken} taken; server said:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(
        replies(&out),
        taken,
        "queued replies differ from messages taken"
    );
});
