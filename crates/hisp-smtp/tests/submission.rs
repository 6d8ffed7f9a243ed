//! The submission port (RFC 6409): STARTTLS (RFC 3207) before AUTH (RFC 4954) before MAIL;
//! AUTH PLAIN (RFC 4616) and LOGIN; failure delay and limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use support::{relay_config, start, submission_config, TestHandler, Wire};
use tokio::time::Instant;

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

async fn tls_session() -> (Wire, std::sync::Arc<TestHandler>) {
    let handler = TestHandler::new();
    let (mut w, _task) = start(submission_config(), handler.clone());
    w.expect(220).await;
    let ehlo = w.ehlo_tls().await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    (w, handler)
}

async fn send_one(w: &mut Wire) {
    w.cmd("MAIL FROM:<alice@hisp.test>", 250).await;
    w.cmd("RCPT TO:<bob@other.test>", 250).await;
    w.cmd("DATA", 354).await;
    w.send("Subject: s\r\n\r\nbody\r\n.\r\n").await;
    w.expect(250).await;
}

#[tokio::test]
async fn rfc4954_4_auth_plain_with_initial_response_after_starttls() {
    let (mut w, handler) = tls_session().await;
    let text = w
        .cmd(&format!("AUTH PLAIN {}", b64("\0alice\0secret")), 235)
        .await;
    assert_eq!(text, "235 2.7.0 Authentication successful");
    send_one(&mut w).await;
    let stored = handler.stored();
    assert_eq!(stored[0].session.user.as_deref(), Some("alice"));
    assert!(stored[0].session.tls);
    // No second AUTH once authenticated.
    w.cmd(&format!("AUTH PLAIN {}", b64("\0alice\0secret")), 503)
        .await;
}

#[tokio::test]
async fn rfc4954_4_auth_plain_without_initial_response_and_authzid() {
    let (mut w, _) = tls_session().await;
    assert_eq!(w.cmd("AUTH PLAIN", 334).await.trim_end(), "334");
    w.cmd(&b64("alice\0alice\0secret"), 235).await;
}

#[tokio::test]
async fn rfc4954_4_auth_login() {
    let (mut w, handler) = tls_session().await;
    assert_eq!(w.cmd("AUTH LOGIN", 334).await, "334 VXNlcm5hbWU6");
    assert_eq!(w.cmd(&b64("alice"), 334).await, "334 UGFzc3dvcmQ6");
    w.cmd(&b64("secret"), 235).await;
    send_one(&mut w).await;
    assert_eq!(handler.stored()[0].session.user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn rfc4954_4_star_cancels_and_bad_base64_is_501() {
    let (mut w, _) = tls_session().await;
    w.cmd("AUTH LOGIN", 334).await;
    assert!(w.cmd("*", 501).await.starts_with("501 5.0.0"));
    w.cmd("AUTH PLAIN", 334).await;
    assert!(w.cmd("!!!notbase64", 501).await.starts_with("501 5.5.2"));
    w.cmd("AUTH CRAM-MD5", 504).await;
    w.cmd(&format!("AUTH PLAIN {}", b64("\0alice\0secret")), 235)
        .await;
}

#[tokio::test]
async fn rfc6409_4_3_mail_before_auth_is_530() {
    let (mut w, _) = tls_session().await;
    let text = w.cmd("MAIL FROM:<alice@hisp.test>", 530).await;
    assert_eq!(text, "530 5.7.0 Authentication required");
}

#[tokio::test]
async fn rfc4954_4_auth_before_starttls_is_530() {
    let (mut w, _task) = start(submission_config(), TestHandler::new());
    w.expect(220).await;
    let ehlo = w.cmd("EHLO c", 250).await;
    assert!(!ehlo.contains("AUTH"), "AUTH offered in plaintext: {ehlo}");
    assert!(ehlo.contains("STARTTLS"));
    let text = w
        .cmd(&format!("AUTH PLAIN {}", b64("\0alice\0secret")), 530)
        .await;
    assert_eq!(text, "530 5.7.0 Must issue a STARTTLS command first");
    w.cmd("MAIL FROM:<alice@hisp.test>", 530).await;
}

#[tokio::test(start_paused = true)]
async fn rfc4954_6_wrong_password_is_535_after_the_delay_then_421() {
    let (mut w, handler) = tls_session().await;
    for attempt in 1..=3 {
        let begun = Instant::now();
        let bad = format!("AUTH PLAIN {}", b64("\0alice\0wrong"));
        let text = w.cmd(&bad, 535).await;
        assert_eq!(text, "535 5.7.8 Authentication credentials invalid");
        assert!(
            begun.elapsed() >= Duration::from_secs(2),
            "attempt {attempt}: no delay"
        );
    }
    assert!(w.expect(421).await.starts_with("421 4.7.0"));
    assert!(w.closed().await);
    assert!(handler.stored().is_empty());
}

#[tokio::test]
async fn rfc3207_4_starttls_resets_the_session() {
    let (mut w, _task) = start(relay_config(), TestHandler::new());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
    w.cmd("STARTTLS", 220).await;
    w.start_tls().await;
    // The EHLO and the transaction from before TLS are forgotten.
    w.cmd("MAIL FROM:<a@b.test>", 503).await;
    let ehlo = w.cmd("EHLO c", 250).await;
    assert!(!ehlo.contains("STARTTLS"));
    w.cmd("STARTTLS", 503).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
}

#[tokio::test]
async fn rfc3207_4_2_plaintext_pipelined_after_starttls_is_refused() {
    let handler = TestHandler::new();
    let (mut w, task) = start(submission_config(), handler.clone());
    w.expect(220).await;
    w.cmd("EHLO c", 250).await;
    // CVE-2011-0411: a man in the middle appends commands after STARTTLS.
    w.send("STARTTLS\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
        .await;
    assert!(w.expect(554).await.starts_with("554 5.5.0"));
    assert!(w.closed().await);
    task.await.unwrap();
}

#[tokio::test]
async fn rfc3207_starttls_without_tls_config_is_refused() {
    let mut cfg = relay_config();
    cfg.tls = None;
    let (mut w, _task) = start(cfg, TestHandler::new());
    w.expect(220).await;
    let ehlo = w.cmd("EHLO c", 250).await;
    assert!(!ehlo.contains("STARTTLS"));
    w.cmd("STARTTLS", 454).await;
    w.cmd("MAIL FROM:<a@b.test>", 250).await;
}
