//! DATA content (RFC 5321 §4.1.1.4, §4.5.2): size limits (RFC 1870), line limits, the
//! bare-CR/LF refusal and the CRLF.CRLF-only terminator (§2.3.8, SMTP smuggling), storage
//! failure, and the whole-content timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{relay_config, start, TestHandler, Wire};

async fn open_data(w: &mut Wire) {
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("RCPT TO:<b@mx.test>", 250).await;
    w.cmd("DATA", 354).await;
}

async fn greeted(cfg: hisp_smtp::ServerConfig, handler: Arc<TestHandler>) -> Wire {
    let (mut w, _task) = start(cfg, handler);
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w
}

#[tokio::test]
async fn rfc1870_6_declared_size_over_the_limit_is_552_at_mail() {
    let mut cfg = relay_config();
    cfg.max_message_size = 1000;
    let mut w = greeted(cfg, TestHandler::new()).await;
    assert!(w
        .cmd("MAIL FROM:<a@b.test> SIZE=1001", 552)
        .await
        .starts_with("552 5.3.4"));
    w.cmd("MAIL FROM:<a@b.test> SIZE=1000", 250).await;
}

#[tokio::test]
async fn rfc1870_6_actual_size_over_the_limit_is_552_after_the_content() {
    let mut cfg = relay_config();
    cfg.max_message_size = 1000;
    let handler = TestHandler::new();
    let mut w = greeted(cfg, handler.clone()).await;
    open_data(&mut w).await;
    for _ in 0..100 {
        w.send(format!("{}\r\n", "x".repeat(78))).await;
    }
    w.send(".\r\n").await;
    assert!(w.expect(552).await.starts_with("552 5.3.4"));
    // The session goes on, and a message within the limit is taken.
    open_data(&mut w).await;
    w.send("small\r\n.\r\n").await;
    w.expect(250).await;
    assert_eq!(handler.stored().len(), 1);
}

#[tokio::test]
async fn data_line_over_the_limit_is_552_and_the_session_goes_on() {
    let mut cfg = relay_config();
    cfg.max_data_line = 100;
    let handler = TestHandler::new();
    let mut w = greeted(cfg, handler.clone()).await;
    open_data(&mut w).await;
    w.send(format!("ok\r\n{}\r\nafter\r\n.\r\n", "y".repeat(5000)))
        .await;
    let text = w.expect(552).await;
    assert!(text.contains("line too long"), "{text}");
    w.cmd("NOOP", 250).await;
    assert!(handler.stored().is_empty());
}

#[tokio::test]
async fn rfc5321_2_3_8_bare_lf_in_data_is_550_5_6_2() {
    let handler = TestHandler::new();
    let mut w = greeted(relay_config(), handler.clone()).await;
    open_data(&mut w).await;
    w.send("Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        .await;
    assert!(w.expect(550).await.starts_with("550 5.6.2"));
    w.cmd("VRFY x", 252).await;
    assert!(handler.stored().is_empty());
}

#[tokio::test]
async fn rfc5321_2_3_8_lf_dot_lf_does_not_end_the_data_smuggling() {
    let handler = TestHandler::new();
    let mut w = greeted(relay_config(), handler.clone()).await;
    for end in ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n"] {
        open_data(&mut w).await;
        // A smuggled second transaction after a non-CRLF "end of data".
        w.send(format!(
            "Subject: x\r\n\r\nhello{end}MAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n.\r\n"
        ))
        .await;
        // One reply for the whole lot: the content ended only at the real CRLF.CRLF.
        assert!(w.expect(550).await.starts_with("550 5.6.2"), "{end:?}");
        w.cmd("VRFY x", 252).await;
    }
    assert!(handler.stored().is_empty());
}

#[tokio::test]
async fn rfc5321_4_5_2_dot_unstuffing_and_8bit_body() {
    let handler = TestHandler::new();
    let mut w = greeted(relay_config(), handler.clone()).await;
    w.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME", 250).await;
    w.cmd("RCPT TO:<b@mx.test>", 250).await;
    w.cmd("DATA", 354).await;
    w.send("..one\r\n...\r\n. \r\nmid.dle\r\n\u{e9}t\u{e9}\r\n.\r\n")
        .await;
    w.expect(250).await;
    let stored = handler.stored();
    assert_eq!(
        stored[0].message,
        ".one\r\n..\r\n \r\nmid.dle\r\n\u{e9}t\u{e9}\r\n".as_bytes()
    );
    assert!(stored[0].envelope.body_8bit);
}

#[tokio::test]
async fn durable_before_250_storage_failure_is_451() {
    let mut handler = TestHandler::with_user("x", "y");
    handler.fail_storage = true;
    let mut w = greeted(relay_config(), Arc::new(handler)).await;
    open_data(&mut w).await;
    w.send("x\r\n.\r\n").await;
    assert!(w.expect(451).await.starts_with("451 4.3.0"));
}

#[tokio::test(start_paused = true)]
async fn rfc5321_4_5_3_2_6_data_timeout_bounds_the_whole_content() {
    let mut w = greeted(relay_config(), TestHandler::new()).await;
    open_data(&mut w).await;
    let begun = tokio::time::Instant::now();
    let mut reply = None;
    for _ in 0..100 {
        w.send("a line every four minutes\r\n").await;
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(240), w.reply()).await {
            reply = r;
            break;
        }
    }
    let (code, _) = reply.unwrap();
    assert_eq!(code, 421);
    assert_eq!(begun.elapsed().as_secs(), 600);
    assert!(w.closed().await);
}

/// Lets the sessions run until `budget` has at least `bytes` in use.
async fn held(budget: &hisp_smtp::DataBudget, bytes: usize) {
    until(budget, |n| n >= bytes).await;
}

/// Lets the sessions run until what `budget` has in use satisfies `want`.
async fn until(budget: &hisp_smtp::DataBudget, want: impl Fn(usize) -> bool) {
    for _ in 0..10_000 {
        if want(budget.in_use()) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{} bytes in use", budget.in_use());
}

/// RFC 5321 §4.2.2 and RFC 3463 X.3.1 ("mail system full"): messages in DATA share one
/// memory budget (`DataBudget`). While one session holds most of it, another's message
/// that does not fit is read to its end and refused with 452 4.3.1; once the first is
/// taken its share is back, and the second is taken when sent again.
#[tokio::test]
async fn rfc5321_4_2_2_messages_past_the_shared_memory_budget_get_452_4_3_1() {
    let budget = Arc::new(hisp_smtp::DataBudget::new(48 * 1024));
    let mut cfg = relay_config();
    cfg.data_budget = Some(budget.clone());
    let handler = TestHandler::new();
    let mut a = greeted(cfg.clone(), handler.clone()).await;
    let mut b = greeted(cfg, handler.clone()).await;
    let line = format!("{}\r\n", "m".repeat(98));
    let content = line.repeat(300); // 30,000 bytes: up to 32 KiB held while growing
    open_data(&mut a).await;
    a.send(&content).await;
    held(&budget, 30_000).await;
    open_data(&mut b).await;
    b.send(&content).await;
    b.send(".\r\n").await;
    assert!(b.expect(452).await.starts_with("452 4.3.1"));
    assert_eq!(budget.refusals(), 1);
    a.send(".\r\n").await;
    a.expect(250).await;
    assert_eq!(budget.in_use(), 0, "a taken message gives its share back");
    open_data(&mut b).await;
    b.send(&content).await;
    b.send(".\r\n").await;
    b.expect(250).await;
    let stored = handler.stored();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|s| s.message == content.as_bytes()));
}

/// A message refused while it still arrives (here: over the size limit) gives its share of
/// the budget back at once, not when its sender gets round to the end.
#[tokio::test]
async fn a_refused_message_gives_back_its_memory_before_it_ends() {
    let budget = Arc::new(hisp_smtp::DataBudget::new(64 * 1024));
    let mut cfg = relay_config();
    cfg.data_budget = Some(budget.clone());
    cfg.max_message_size = 20_000;
    let mut w = greeted(cfg, TestHandler::new()).await;
    open_data(&mut w).await;
    let line = format!("{}\r\n", "m".repeat(98));
    w.send(line.repeat(150)).await;
    held(&budget, 15_000).await;
    w.send(line.repeat(100)).await;
    until(&budget, |n| n == 0).await;
    w.send(".\r\n").await;
    assert!(w.expect(552).await.starts_with("552 5.3.4"));
}
