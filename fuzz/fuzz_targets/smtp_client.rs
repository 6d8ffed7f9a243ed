//! `smtp_client`: the delivery client (RFC 5321 client side, RFC 2920 pipelining, RFC 3207
//! STARTTLS, RFC 4954 AUTH) against a server that answers with arbitrary bytes. The daemon
//! delivers to whatever host a recipient domain's MX names, so those bytes are anyone's.
//! A loopback listener sends the input as its whole side of the dialogue, then closes its
//! sending side and reads whatever the client says until the client leaves. Nothing may
//! panic or hang, and:
//!
//! - a delivery reported done has one reply per recipient, in the envelope's order;
//! - content counts as taken only after a positive reply to it, and only when a
//!   recipient was accepted;
//! - with TLS required (bit 1 of the first byte), or for a submission with AUTH (bit 2),
//!   nothing is ever reported delivered without TLS (no handshake can succeed here, so
//!   nothing is delivered at all then).
#![no_main]

use hisp_smtp::client::{deliver, submit, Delivery};
use hisp_smtp::{ClientConfig, Envelope};
use libfuzzer_sys::fuzz_target;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MESSAGE: &[u8] =
    b"From: a@fuzz.hisp.example\r\nTo: b@peer.example\r\n\r\n.leading dot\r\nbody\r\n";

fn connector() -> Arc<SslConnector> {
    static TLS: OnceLock<Arc<SslConnector>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut c = SslConnector::builder(SslMethod::tls()).expect("connector");
        c.set_verify(SslVerifyMode::NONE);
        Arc::new(c.build())
    })
    .clone()
}

fn config(require_tls: bool) -> ClientConfig {
    // Only a peer that goes quiet without closing would wait this long; ours always closes.
    let second = Duration::from_secs(1);
    ClientConfig {
        helo: "mx.fuzz.hisp.example".into(),
        connect_timeout: second,
        command_timeout: second,
        data_timeout: second,
        tls: connector(),
        require_tls,
        verify_tls: false,
        bind: Vec::new(),
    }
}

/// The server's side: the input, then reading what the client sends until it leaves.
async fn serve(listener: TcpListener, said: Vec<u8>) {
    let Ok((mut s, _)) = listener.accept().await else {
        return;
    };
    let _ = s.write_all(&said).await;
    let _ = s.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let drain = async { while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

fn check(d: &Delivery, envelope: &Envelope, tls_needed: bool) {
    assert!(d.tls || !tls_needed, "delivered without the TLS required");
    let names: Vec<&str> = d.per_rcpt.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(names, envelope.rcpt_to, "one reply per recipient, in order");
    if let Some(reply) = &d.data_reply {
        assert!(reply.is_positive(), "content taken on {reply}");
        assert!(
            d.per_rcpt.iter().any(|(_, r)| r.is_positive()),
            "content sent with no recipient accepted"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, said)) = data.split_first() else {
        return;
    };
    let (require_tls, auth) = (mode & 2 != 0, mode & 4 != 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(serve(listener, said.to_vec()));
        let envelope = Envelope {
            mail_from: "a@fuzz.hisp.example".into(),
            rcpt_to: vec!["b@peer.example".into(), "c@peer.example".into()],
            body_8bit: false,
            declared_size: None,
        };
        let cfg = config(require_tls);
        let outcome = if auth {
            submit(
                &target,
                &cfg,
                "a@fuzz.hisp.example",
                "secret",
                &envelope,
                MESSAGE,
            )
            .await
        } else {
            deliver(&target, &cfg, &envelope, MESSAGE).await
        };
        // To see what a reproducer leads to: HISP_FUZZ_TRACE=1 cargo fuzz run smtp_client FILE
        if std::env::var_os("HISP_FUZZ_TRACE").is_some() {
            eprintln!("mode {mode:#04x}: {outcome:?}");
        }
        if let Ok(d) = &outcome {
            check(d, &envelope, require_tls || auth);
        }
        // The error's text and class are what the queue records: they must not panic.
        if let Err(e) = &outcome {
            let _ = (e.to_string(), e.is_permanent());
        }
        if let Err(e) = server.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    });
});
