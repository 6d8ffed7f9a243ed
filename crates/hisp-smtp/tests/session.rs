//! The server session over an in-memory pipe: the RFC 5321 dialogue, pipelining
//! (RFC 2920), the sync and slowloris defences, error limits, and the accept loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{relay_config, start, start_with_early, TestHandler};
use tokio::time::Instant;

#[tokio::test]
async fn rfc5321_3_3_relay_happy_path() {
    let handler = TestHandler::new();
    let (mut w, task) = start(relay_config(), handler.clone());
    assert_eq!(w.expect(220).await, "220 mx.test ESMTP Hisp");
    let ehlo = w.cmd("EHLO client.test", 250).await;
    for kw in [
        "SIZE 52428800",
        "PIPELINING",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
    ] {
        assert!(
            ehlo.lines().any(|l| l.ends_with(kw)),
            "{kw} missing in {ehlo}"
        );
    }
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH offered on the relay port: {ehlo}"
    );
    assert!(!ehlo.contains("CHUNKING"));
    w.cmd("MAIL FROM:<a@sender.test> SIZE=40", 250).await;
    w.cmd("RCPT TO:<b@mx.test>", 250).await;
    w.cmd("RCPT TO:<c@mx.test>", 250).await;
    w.cmd("DATA", 354).await;
    w.send("Subject: hi\r\n\r\nhello\r\n.\r\n").await;
    assert_eq!(w.expect(250).await, "250 2.0.0 Ok: queued as Q1");
    w.cmd("QUIT", 221).await;
    assert!(w.closed().await);
    task.await.unwrap();
    let stored = handler.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message, b"Subject: hi\r\n\r\nhello\r\n");
    assert_eq!(stored[0].envelope.mail_from, "a@sender.test");
    assert_eq!(stored[0].envelope.rcpt_to, vec!["b@mx.test", "c@mx.test"]);
    assert_eq!(stored[0].envelope.declared_size, Some(40));
    assert_eq!(stored[0].session.helo.as_deref(), Some("client.test"));
    assert!(!stored[0].session.tls);
}

#[tokio::test]
async fn rfc5321_4_1_1_4_transaction_resets_after_data_and_null_sender() {
    let handler = TestHandler::new();
    let (mut w, _task) = start(relay_config(), handler.clone());
    w.expect(220).await;
    w.cmd("HELO client.test", 250).await;
    for body in ["one", "two"] {
        w.cmd("MAIL FROM:<>", 250).await;
        w.cmd("RCPT TO:<b@mx.test>", 250).await;
        w.cmd("DATA", 354).await;
        w.send(format!("{body}\r\n.\r\n")).await;
        w.expect(250).await;
        // After the message the transaction is closed: RCPT needs a new MAIL.
        w.cmd("RCPT TO:<b@mx.test>", 503).await;
    }
    assert_eq!(handler.stored()[1].message, b"two\r\n");
    assert_eq!(handler.stored()[1].envelope.mail_from, "");
}

// Paused: past the fifth error the replies come a second late.
#[tokio::test(start_paused = true)]
async fn rfc5321_4_1_4_sequence_errors_get_503() {
    let (mut w, _task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    w.cmd("MAIL FROM:<a@b.test>", 503).await;
    w.cmd("EHLO c", 250).await;
    w.cmd("RCPT TO:<b@mx.test>", 503).await;
    w.cmd("DATA", 503).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("MAIL FROM:<a@b.test>", 503).await;
    w.cmd("DATA", 503).await;
    w.cmd("RSET", 250).await;
    w.cmd("RCPT TO:<b@mx.test>", 503).await;
    w.cmd("NOOP", 250).await;
    w.cmd("VRFY bob", 252).await;
    w.cmd("HELP", 214).await;
    w.cmd("AUTH PLAIN AGEAYg==", 502).await;
    assert!(w.cmd("FOO", 500).await.starts_with("500 5.5.2"));
    w.cmd("MAIL FROM:<blocked@b.test>", 553).await;
}

#[tokio::test]
async fn rfc5321_4_5_3_1_8_too_many_recipients() {
    let mut cfg = relay_config();
    cfg.max_recipients = 2;
    let (mut w, _task) = start(cfg, TestHandler::new());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("RCPT TO:<1@mx.test>", 250).await;
    w.cmd("RCPT TO:<2@mx.test>", 250).await;
    assert!(w
        .cmd("RCPT TO:<3@mx.test>", 452)
        .await
        .starts_with("452 4.5.3"));
}

#[tokio::test]
async fn rfc2920_3_1_pipelined_group_replies_in_order() {
    let mut handler = TestHandler::with_user("x", "y");
    handler.refuse_rcpt.push("nobody@mx.test".into());
    let handler = Arc::new(handler);
    let (mut w, _task) = start(relay_config(), handler.clone());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<b@mx.test>\r\nRCPT TO:<nobody@mx.test>\r\nRCPT TO:<c@mx.test>\r\nDATA\r\n")
        .await;
    w.expect(250).await;
    w.expect(250).await;
    assert!(w.expect(550).await.contains("nobody@mx.test"));
    w.expect(250).await;
    w.expect(354).await;
    w.send("x\r\n.\r\nQUIT\r\n").await;
    w.expect(250).await;
    w.expect(221).await;
    assert_eq!(
        handler.stored()[0].envelope.rcpt_to,
        vec!["b@mx.test", "c@mx.test"]
    );
}

#[tokio::test]
async fn rfc2920_3_1_content_before_354_is_a_sync_error() {
    let handler = TestHandler::new();
    let (mut w, task) = start(relay_config(), handler.clone());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.send(
        "MAIL FROM:<a@b.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
    )
    .await;
    w.expect(250).await;
    w.expect(250).await;
    assert!(w.expect(554).await.starts_with("554 5.5.0"));
    assert!(w.closed().await);
    task.await.unwrap();
    assert!(handler.stored().is_empty());
}

#[tokio::test]
async fn rfc5321_4_3_1_early_talker_gets_554() {
    let (mut w, task) =
        start_with_early(relay_config(), TestHandler::new(), b"EHLO spam\r\n").await;
    assert!(w.expect(554).await.starts_with("554 5.5.0"));
    assert!(w.closed().await);
    task.await.unwrap();
}

#[tokio::test]
async fn rfc5321_4_5_3_1_4_long_command_line_is_refused_and_session_goes_on() {
    let (mut w, _task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    let long = format!("NOOP {}", "x".repeat(10_000));
    assert!(w.cmd(&long, 500).await.starts_with("500 5.5.6"));
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    // A line just under the limit (2048 with CRLF) is fine.
    w.cmd(&format!("NOOP {}", "y".repeat(2048 - 7)), 250).await;
    w.cmd(&format!("NOOP {}", "y".repeat(2048 - 6)), 500).await;
}

#[tokio::test]
async fn rfc5321_bare_lf_command_lines_are_accepted() {
    let (mut w, _task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    w.send("EHLO c\nNOOP\n").await;
    w.expect(250).await;
    w.expect(250).await;
}

#[tokio::test]
async fn too_many_errors_closes_with_421() {
    let mut cfg = relay_config();
    cfg.max_errors = 3;
    let (mut w, task) = start(cfg, TestHandler::new());
    w.expect(220).await;
    w.cmd("BOGUS", 500).await;
    w.cmd("RCPT TO:<a@b.test>", 503).await;
    w.cmd("BOGUS", 500).await;
    assert!(w.expect(421).await.starts_with("421 4.7.0"));
    assert!(w.closed().await);
    task.await.unwrap();
}

/// Directory harvesting (Postfix's smtpd_hard_error_limit): `max_refused_recipients`
/// recipients refused without a message taken since close the session with 421 4.7.0; a
/// message taken resets the count, and a temporary refusal does not count.
#[tokio::test]
async fn refused_recipients_without_mail_taken_close_the_session() {
    let mut cfg = relay_config();
    cfg.max_refused_recipients = 3;
    let mut handler = TestHandler::with_user("alice", "secret");
    handler.refuse_rcpt = (0..5).map(|i| format!("nobody{i}@mx.test")).collect();
    let (mut w, task) = start(cfg, Arc::new(handler));
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("RCPT TO:<nobody0@mx.test>", 550).await;
    w.cmd("RCPT TO:<nobody1@mx.test>", 550).await;
    w.cmd("RCPT TO:<b@mx.test>", 250).await;
    w.cmd("DATA", 354).await;
    w.cmd("hello\r\n.", 250).await;
    // The message taken reset the count: three more refusals are needed now.
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("RCPT TO:<nobody2@mx.test>", 550).await;
    w.cmd("RCPT TO:<nobody3@mx.test>", 550).await;
    w.cmd("RCPT TO:<nobody4@mx.test>", 550).await;
    assert!(w.expect(421).await.starts_with("421 4.7.0"));
    assert!(w.closed().await);
    task.await.unwrap();
}

/// How long `line` took to be answered `code`.
async fn timed(w: &mut support::Wire, line: &str, code: u16) -> Duration {
    let begun = Instant::now();
    w.cmd(line, code).await;
    begun.elapsed()
}

/// Postfix's `smtpd_soft_error_limit` and `smtpd_error_sleep_time`: the first
/// `errors_before_delay` errors (bad commands and refused recipients together) are answered
/// at once, each one after that a second late, so a client in a loop or a harvester gets
/// about one try a second; good commands are never held back.
#[tokio::test(start_paused = true)]
async fn errors_past_the_fifth_are_answered_a_second_late() {
    let mut handler = TestHandler::with_user("alice", "secret");
    handler.refuse_rcpt = (0..9).map(|i| format!("nobody{i}@mx.test")).collect();
    let (mut w, task) = start(relay_config(), Arc::new(handler));
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    assert_eq!(
        timed(&mut w, "RCPT TO:<nobody0@mx.test>", 550).await,
        Duration::ZERO
    );
    assert_eq!(timed(&mut w, "FOO", 500).await, Duration::ZERO);
    for line in ["RCPT TO:<nobody1@mx.test>", "RCPT TO:<nobody2@mx.test>"] {
        assert_eq!(timed(&mut w, line, 550).await, Duration::ZERO);
    }
    assert_eq!(timed(&mut w, "BAR", 500).await, Duration::ZERO);
    let second = Duration::from_secs(1);
    assert_eq!(
        timed(&mut w, "RCPT TO:<nobody3@mx.test>", 550).await,
        second
    );
    assert_eq!(timed(&mut w, "BAZ", 500).await, second);
    assert_eq!(timed(&mut w, "NOOP", 250).await, Duration::ZERO);
    assert_eq!(
        timed(&mut w, "RCPT TO:<b@mx.test>", 250).await,
        Duration::ZERO
    );
    // Pipelined, the delays add up: two errors in one group, two seconds.
    w.send("RCPT TO:<nobody4@mx.test>\r\nQUX\r\nNOOP\r\n").await;
    let begun = Instant::now();
    assert_eq!(w.reply().await.map(|r| r.0), Some(550));
    assert_eq!(begun.elapsed(), 2 * second);
    assert_eq!(w.reply().await.map(|r| r.0), Some(500));
    assert_eq!(w.reply().await.map(|r| r.0), Some(250));
    w.cmd("QUIT", 221).await;
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rfc5321_4_5_3_2_7_slowloris_times_out_per_line_not_per_read() {
    let (mut w, task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    let begun = Instant::now();
    let mut reply = None;
    for b in b"EHLO slow.client\r\n" {
        w.send([*b]).await;
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(240), w.reply()).await {
            reply = r;
            break;
        }
    }
    // The server answers 421 at the 5-minute mark although a byte came every 4 minutes.
    let (code, text) = reply.expect("no reply before the line was complete");
    assert_eq!(code, 421, "{text}");
    assert!(text.starts_with("421 4.4.2"));
    assert!(w.closed().await);
    let elapsed = begun.elapsed();
    assert!(
        elapsed >= Duration::from_secs(300) && elapsed < Duration::from_secs(302),
        "{elapsed:?}"
    );
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rfc5321_4_5_3_2_7_idle_client_times_out() {
    let (mut w, task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    let begun = Instant::now();
    assert!(w.expect(421).await.starts_with("421 4.4.2"));
    assert_eq!(begun.elapsed().as_secs(), 300);
    assert!(w.closed().await);
    task.await.unwrap();
}

#[tokio::test]
async fn serve_refuses_past_the_session_limit_and_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(hisp_smtp::server::serve_with_limit(
        listener,
        Arc::new(relay_config()),
        TestHandler::new(),
        rx,
        1,
    ));
    let mut w = support::Wire::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    // The one slot is taken: the next client is told 421 4.3.2 and closed.
    let mut second = support::Wire::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    assert!(second.expect(421).await.starts_with("421 4.3.2"));
    assert!(second.closed().await);
    stop.send(true).unwrap();
    // The idle session is told and closed; the accept loop returns.
    assert!(w.expect(421).await.starts_with("421 4.3.2"));
    assert!(w.closed().await);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Postfix's smtpd_client_connection_count_limit, here `max_sessions_per_ip`: past it a
/// client address is told `421 4.7.0` and closed, while the sessions it has go on; a
/// session that ends frees its place. (Loopback is exempt by default; not here.)
#[tokio::test]
async fn serve_refuses_past_the_per_address_session_limit() {
    let mut cfg = relay_config();
    cfg.max_sessions_per_ip = 2;
    cfg.exempt_loopback = false;
    let addr = support::our_server(cfg, TestHandler::new()).await;
    let connect =
        || async { support::Wire::new(tokio::net::TcpStream::connect(addr).await.unwrap()) };
    let mut first = connect().await;
    first.expect(220).await;
    let mut second = connect().await;
    second.expect(220).await;
    let mut third = connect().await;
    assert!(third.expect(421).await.starts_with("421 4.7.0"));
    assert!(third.closed().await);
    first.cmd("EHLO c", 250).await;
    first.cmd("QUIT", 221).await;
    assert!(first.closed().await);
    // The server may see the close a moment after we do.
    let mut again = connect().await;
    for _ in 0..50 {
        match again.reply().await {
            Some((220, _)) => break,
            Some((421, _)) => {
                tokio::task::yield_now().await;
                again = connect().await;
            }
            other => panic!("{other:?}"),
        }
    }
    again.cmd("EHLO c", 250).await;
    second.cmd("NOOP", 250).await;
}
