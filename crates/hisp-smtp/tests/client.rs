//! The delivery client against our own server on loopback (byte-exact round trip through
//! dot-stuffing and unstuffing, STARTTLS, pipelining, per-recipient replies) and against
//! small scripted servers that misbehave on purpose (no EHLO, silence, refusal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hisp_smtp::client::{deliver, ClientError, Content};
use support::{client_config, envelope, our_server, relay_config, TestHandler};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A one-connection server answering each line by the first matching prefix in `script`
/// (`("", reply)` sends the greeting); returns the lines it got.
async fn scripted(
    script: Vec<(&'static str, &'static str)>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (r, mut w) = socket.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut got = Vec::new();
        if let Some((_, greeting)) = script.iter().find(|(p, _)| p.is_empty()) {
            w.write_all(greeting.as_bytes()).await.unwrap();
        }
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            got.push(line.clone());
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 stored\r\n").await.unwrap();
                }
                continue;
            }
            let upper = line.to_ascii_uppercase();
            if let Some((_, reply)) = script
                .iter()
                .find(|(p, _)| !p.is_empty() && upper.starts_with(p))
            {
                w.write_all(reply.as_bytes()).await.unwrap();
                // The last reply written decides (a pipelined group ends with DATA's).
                in_data = reply.lines().last().is_some_and(|l| l.starts_with("354"));
                if upper.starts_with("QUIT") {
                    break;
                }
            }
        }
        got
    });
    (addr, task)
}

#[tokio::test]
async fn rfc5321_4_5_2_round_trip_through_our_client_and_server_is_byte_exact() {
    let handler = TestHandler::new();
    let addr = our_server(relay_config(), handler.clone()).await;
    let message: &[u8] = b"From: a@b.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n\r\n.\r\nend \xc3\xa9\r\n";
    let env = envelope("a@b.test", &["b@mx.test", "c@mx.test"]);
    let d = deliver(&addr.to_string(), &client_config(), &env, message)
        .await
        .unwrap();
    assert!(d.tls, "STARTTLS was offered and must be used");
    assert_eq!(d.remote, addr.to_string());
    assert_eq!(d.per_rcpt.len(), 2);
    assert!(d.per_rcpt.iter().all(|(_, r)| r.code == 250));
    assert_eq!(d.data_reply.unwrap().code, 250);
    let stored = handler.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message, message);
    assert!(stored[0].session.tls);
    assert!(
        stored[0].envelope.body_8bit,
        "8-bit content goes with BODY=8BITMIME"
    );
    assert_eq!(stored[0].envelope.declared_size, Some(message.len() as u64));
    assert_eq!(stored[0].envelope.rcpt_to, env.rcpt_to);
}

/// Postfix's `smtp_bind_address`/`smtp_bind_address6`: with an address of the peer's
/// family in `bind`, the connection comes from it (the server sees it as the client).
#[tokio::test]
async fn deliveries_come_from_the_bound_address_of_the_peers_family() {
    let handler = TestHandler::new();
    let addr = our_server(relay_config(), handler.clone()).await;
    let env = envelope("a@b.test", &["b@mx.test"]);
    let mut cfg = client_config();
    cfg.bind = vec!["::1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    deliver(
        &addr.to_string(),
        &cfg,
        &env,
        b"Subject: x\r\n\r\nbound\r\n",
    )
    .await
    .unwrap();
    let from = handler.stored()[0].session.peer.ip();
    assert_eq!(from, "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
}

#[tokio::test]
async fn client_adds_the_final_crlf() {
    let handler = TestHandler::new();
    let addr = our_server(relay_config(), handler.clone()).await;
    let env = envelope("", &["b@mx.test"]);
    deliver(
        &addr.to_string(),
        &client_config(),
        &env,
        b"Subject: x\r\n\r\nno newline",
    )
    .await
    .unwrap();
    assert_eq!(
        handler.stored()[0].message,
        b"Subject: x\r\n\r\nno newline\r\n"
    );
    assert_eq!(handler.stored()[0].envelope.mail_from, "");
}

#[tokio::test]
async fn rfc5321_3_3_per_recipient_replies() {
    let mut handler = TestHandler::with_user("x", "y");
    handler.refuse_rcpt.push("nobody@mx.test".into());
    let handler = Arc::new(handler);
    let addr = our_server(relay_config(), handler.clone()).await;
    let env = envelope("a@b.test", &["nobody@mx.test", "bob@mx.test"]);
    let d = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap();
    assert_eq!(d.per_rcpt[0].0, "nobody@mx.test");
    assert_eq!(d.per_rcpt[0].1.code, 550);
    assert_eq!(d.per_rcpt[0].1.status, Some((5, 1, 1)));
    assert!(d.per_rcpt[0].1.is_permanent());
    assert_eq!(d.per_rcpt[1].1.code, 250);
    assert!(d.data_reply.is_some());
    assert_eq!(handler.stored()[0].envelope.rcpt_to, vec!["bob@mx.test"]);

    // No recipient accepted: no DATA.
    let env = envelope("a@b.test", &["nobody@mx.test"]);
    let d = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap();
    assert!(d.data_reply.is_none());
    assert_eq!(handler.stored().len(), 1);
}

#[tokio::test]
async fn refusals_5xx_are_permanent_4xx_temporary() {
    let addr = our_server(relay_config(), TestHandler::new()).await;
    let env = envelope("blocked@b.test", &["bob@mx.test"]);
    let err = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rejected {
                stage: "MAIL FROM",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_permanent());

    let mut handler = TestHandler::with_user("x", "y");
    handler.fail_storage = true;
    let addr = our_server(relay_config(), Arc::new(handler)).await;
    let env = envelope("a@b.test", &["bob@mx.test"]);
    let err = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rejected {
                stage: "end of data",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn connect_failure_is_temporary() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let env = envelope("a@b.test", &["bob@mx.test"]);
    let err = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn require_tls_against_a_server_without_starttls() {
    let mut cfg = relay_config();
    cfg.tls = None;
    let addr = our_server(cfg, TestHandler::new()).await;
    let mut client = client_config();
    client.require_tls = true;
    let env = envelope("a@b.test", &["bob@mx.test"]);
    let err = deliver(&addr.to_string(), &client, &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
    // Without the requirement the same server takes the message in plaintext.
    let d = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap();
    assert!(!d.tls);
}

#[tokio::test]
async fn rfc5321_3_2_helo_fallback_without_pipelining() {
    let (addr, task) = scripted(vec![
        ("", "220 stub ready\r\n"),
        ("EHLO", "500 5.5.1 what?\r\n"),
        ("HELO", "250 stub\r\n"),
        ("MAIL", "250 ok\r\n"),
        ("RCPT", "250 ok\r\n"),
        ("DATA", "354 go\r\n"),
        ("QUIT", "221 bye\r\n"),
    ])
    .await;
    let env = envelope("a@b.test", &["b@stub.test", "c@stub.test"]);
    let d = deliver(&addr.to_string(), &client_config(), &env, b".x\r\n")
        .await
        .unwrap();
    assert!(!d.tls);
    assert_eq!(d.data_reply.unwrap().lines, vec!["stored"]);
    let got = task.await.unwrap();
    assert_eq!(
        got,
        vec![
            "EHLO client.test",
            "HELO client.test",
            "MAIL FROM:<a@b.test>",
            "RCPT TO:<b@stub.test>",
            "RCPT TO:<c@stub.test>",
            "DATA",
            "..x",
            ".",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn greeting_554_is_permanent_and_silence_times_out() {
    let (addr, _task) =
        scripted(vec![("", "554 5.7.1 go away\r\n"), ("QUIT", "221 bye\r\n")]).await;
    let env = envelope("a@b.test", &["b@stub.test"]);
    let err = deliver(&addr.to_string(), &client_config(), &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Greeting(_)), "{err}");
    assert!(err.is_permanent());

    let (addr, _task) = scripted(vec![]).await;
    let mut client = client_config();
    client.command_timeout = Duration::from_millis(200);
    let err = deliver(&addr.to_string(), &client, &env, b"x\r\n")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { stage: "greeting" }),
        "{err}"
    );
    assert!(!err.is_permanent());
}

/// RFC 5321 §4.1.4: several transactions per session. The pool carries the second delivery
/// on the first one's session, and replaces a session the server has closed.
#[tokio::test]
async fn rfc5321_4_1_4_pooled_sessions_carry_several_transactions() {
    let mut h = TestHandler::with_user("u", "p");
    h.refuse_rcpt.push("nobody@mx.test".into());
    let handler = std::sync::Arc::new(h);
    let addr = our_server(relay_config(), handler.clone()).await;
    let pool = hisp_smtp::client::Pool::new(4, std::time::Duration::from_secs(30));
    let env = envelope("a@b.test", &["b@mx.test"]);
    for i in 0..3 {
        let msg = format!("Subject: {i}\r\n\r\nbody\r\n");
        let d = pool
            .deliver(
                &addr.to_string(),
                &client_config(),
                &env,
                Content::Bytes(msg.as_bytes()),
            )
            .await
            .unwrap();
        assert_eq!(d.data_reply.unwrap().code, 250);
    }
    let stored = handler.stored();
    assert_eq!(stored.len(), 3);
    assert!(
        stored.iter().all(|s| s.session.id == stored[0].session.id),
        "one session for all three"
    );
    // A recipient refused: the transaction is reset and the session stays usable.
    let none = envelope("a@b.test", &["nobody@mx.test"]);
    let refused = pool
        .deliver(
            &addr.to_string(),
            &client_config(),
            &none,
            Content::Bytes(b"x\r\n"),
        )
        .await
        .unwrap();
    assert_eq!(
        (refused.per_rcpt[0].1.code, refused.data_reply),
        (550, None)
    );
    pool.deliver(
        &addr.to_string(),
        &client_config(),
        &env,
        Content::Bytes(b"Subject: after\r\n\r\nx\r\n"),
    )
    .await
    .unwrap();
    let stored = handler.stored();
    assert_eq!(stored.len(), 4);
    assert_eq!(
        stored[3].session.id, stored[0].session.id,
        "still the same session after RSET"
    );
}

/// RFC 2920 §3.1: with PIPELINING, MAIL, RCPT and DATA leave as one group. This server
/// answers nothing until DATA has arrived, so a client that waited for the MAIL or RCPT
/// reply before sending DATA would stall here until its timeout.
#[tokio::test]
async fn rfc2920_3_1_mail_rcpt_and_data_go_as_one_group() {
    let (addr, server) = scripted(vec![
        ("", "220 ready\r\n"),
        ("EHLO", "250-mx\r\n250 PIPELINING\r\n"),
        ("MAIL", ""),
        ("RCPT", ""),
        ("DATA", "250 sender ok\r\n250 rcpt ok\r\n354 go ahead\r\n"),
        ("QUIT", "221 bye\r\n"),
    ])
    .await;
    let mut cfg = client_config();
    cfg.command_timeout = Duration::from_secs(5);
    let env = envelope("a@b.test", &["bob@mx.test"]);
    let d = deliver(&addr.to_string(), &cfg, &env, b"Subject: x\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert_eq!(d.per_rcpt[0].1.code, 250);
    assert_eq!(d.data_reply.unwrap().code, 250);
    let got = server.await.unwrap();
    let at = got.iter().position(|l| l.starts_with("MAIL FROM")).unwrap();
    assert_eq!(
        &got[at..at + 3],
        ["MAIL FROM:<a@b.test>", "RCPT TO:<bob@mx.test>", "DATA"]
    );
}

/// RFC 2920 §3.1: a pipelining client cannot assume DATA fails because every RCPT did;
/// when the server says 354 anyway, the client sends a lone dot, and no content.
#[tokio::test]
async fn rfc2920_3_1_a_354_after_every_rcpt_refused_gets_a_lone_dot() {
    let (addr, task) = scripted(vec![
        ("", "220 ready\r\n"),
        ("EHLO", "250-mx\r\n250 PIPELINING\r\n"),
        ("MAIL", "250 ok\r\n"),
        ("RCPT", "550 5.1.1 no such user\r\n"),
        ("DATA", "354 go ahead\r\n"),
        ("QUIT", "221 bye\r\n"),
    ])
    .await;
    let env = envelope("a@b.test", &["nobody@mx.test"]);
    let d = deliver(&addr.to_string(), &client_config(), &env, b"secret\r\n")
        .await
        .unwrap();
    assert_eq!(d.per_rcpt[0].1.code, 550);
    assert!(d.data_reply.is_none());
    let got = task.await.unwrap();
    let at = got.iter().position(|l| l == "DATA").unwrap();
    assert_eq!(got[at + 1], ".");
    assert!(!got.iter().any(|l| l == "secret"), "no content was sent");
}
