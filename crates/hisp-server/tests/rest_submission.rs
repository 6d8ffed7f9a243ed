//! Submission over the REST edge (POST /api/v1/messages) between two real daemons on
//! loopback: delivery and the `processed` MDN, the timeline over REST, envelope recipients
//! from `rcpt=` parameters, and the message size limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_server::clock::SystemClock;
use hisp_store::{EntryKind, RcptState, Store};
use std::sync::Arc;
use std::time::Duration;

/// The REST edge submits (POST /api/v1/messages, recipients from To): 202 with a queue id,
/// delivered to bob, `processed` at alpha, and the timeline is readable over REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_submission_is_delivered_and_processed() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let msg = message(&a.user, &b.user, "Discharge summary", &mid, false);
    let r = rest(&a, "POST", "/api/v1/messages", &msg).await;
    assert_eq!(r.status, 202, "{}", text(&r.body));
    let v = r.json().unwrap();
    assert_eq!(v["message_id"], mid.as_str());
    let id = hisp_store::QueueId(v["queue_id"].as_str().unwrap().to_string());

    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid);
    wait_state(&a, &id, RcptState::Processed).await;
    let t = rest(&a, "GET", &format!("/api/v1/outbound/{id}"), b"").await;
    assert_eq!(t.status, 200);
    let t = t.json().unwrap();
    assert_eq!(t["recipients"][0]["state"], "processed");
    let events: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"relayed") && events.contains(&"processed"),
        "{events:?}"
    );
    // Bob cannot read alice's outbound message.
    let other = rest(&b, "GET", &format!("/api/v1/outbound/{id}"), b"").await;
    assert_eq!(other.status, 404);

    a.stop().await;
    b.stop().await;
}

/// http.rs `SubmitQuery`: "Envelope recipients; default: the To and Cc addresses". A
/// message addressed to an undisclosed-recipients group is sent to the `rcpt=` given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_submission_takes_envelope_recipients_from_rcpt_parameters() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let msg = message(
        &a.user,
        "undisclosed-recipients:;",
        "Bcc referral",
        &mid,
        false,
    );
    let r = rest(
        &a,
        "POST",
        &format!("/api/v1/messages?rcpt={}", b.user),
        &msg,
    )
    .await;
    assert_eq!(r.status, 202, "POST ?rcpt=: {}", text(&r.body));
    let id = hisp_store::QueueId(r.json().unwrap()["queue_id"].as_str().unwrap().to_string());
    assert_eq!(rcpt(&a, &id).await.rcpt, b.user);
    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid);
    a.stop().await;
    b.stop().await;
}

/// `smtp.max_message_bytes` bounds REST submission as it bounds SMTP (http.rs `submit`
/// answers 413 "message too large" past it): with a 4 MiB limit a 3 MiB message (a
/// scanned referral) is accepted, a 5 MiB one refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_submission_accepts_messages_up_to_max_message_bytes() {
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    a.config.smtp.max_message_bytes = 4 << 20;
    start(&mut a, Arc::new(SystemClock)).await;
    let bob = format!("dr.bob@{BETA}");
    let sized = |n: usize| {
        let mut m = message(&a.user, &bob, "scan", &message_id(&a.domain), false);
        let line = format!("{}\r\n", "A".repeat(76));
        while m.len() < n {
            m.extend_from_slice(line.as_bytes());
        }
        m
    };
    let small = sized(3 << 20);
    let r = rest(&a, "POST", "/api/v1/messages", &small).await;
    assert_eq!(
        r.status,
        202,
        "3 MiB under a 4 MiB limit: {}",
        text(&r.body)
    );
    let id = hisp_store::QueueId(r.json().unwrap()["queue_id"].as_str().unwrap().to_string());
    let m = a.store.outbound(&id).await.unwrap().unwrap();
    assert!(m.size >= small.len() as u64);
    let r = rest(&a, "POST", "/api/v1/messages", &sized(5 << 20)).await;
    assert_eq!(r.status, 413, "5 MiB over a 4 MiB limit: {}", text(&r.body));
    a.stop().await;
}

/// A client that sends the whole body before it reads (Python's http.client) gets the 413
/// for a body over the limit, not a broken pipe: RFC 9112 §9.6 — the server half-closes
/// and reads what is still in flight instead of resetting the connection (http_serve.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_submission_over_the_limit_answers_413_to_a_client_that_sends_it_all() {
    const CLIENT: &str = r#"
import base64, http.client, sys
host, port, user, pw, mib = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
c = http.client.HTTPConnection(host, port, timeout=30)
try:
    c.request("POST", "/api/v1/messages", body=b"A" * (mib << 20),
              headers={"Authorization": "Basic " + auth})
    print(c.getresponse().status)
except OSError as e:
    print(type(e).__name__, e)
"#;
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    a.config.smtp.max_message_bytes = 1 << 20;
    start(&mut a, Arc::new(SystemClock)).await;
    let http = a.config.http.listen;
    let (host, port) = (http.ip().to_string(), http.port().to_string());
    for _ in 0..3 {
        let out = tool(
            "python3",
            &["-c", CLIENT, &host, &port, &a.user, &a.password, "32"],
            None,
        )
        .await;
        let said = text(&out.stdout);
        assert_eq!(said.trim(), "413", "{said}{}", text(&out.stderr));
    }
    // The connection closed cleanly and the daemon still answers.
    let r = rest(&a, "GET", "/api/v1/messages", b"").await;
    assert_eq!(r.status, 200);
    a.stop().await;
}

/// A stranger's body is never read (http.rs `submit` checks credentials first): a POST with
/// no or wrong credentials that declares 40 MiB and sends none of it gets its 401 at once,
/// where the daemon used to wait to buffer the whole body before looking. With good
/// credentials, the declared size over `max_message_bytes` gets 413, also unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_submission_checks_credentials_and_size_before_reading_the_body() {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    a.config.smtp.max_message_bytes = 1 << 20;
    start(&mut a, Arc::new(SystemClock)).await;
    let basic = |user: &str, pw: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Authorization: Basic {token}\r\n")
    };
    let cases = [
        (String::new(), "401"),
        (basic(&a.user, "not-the-password"), "401"),
        (basic(&a.user, &a.password), "413"),
    ];
    for (authorization, want) in cases {
        let mut s = tokio::net::TcpStream::connect(a.config.http.listen)
            .await
            .unwrap();
        let head = format!(
            "POST /api/v1/messages HTTP/1.1\r\nHost: hisp\r\nContent-Length: {}\r\n{authorization}\r\n",
            40 << 20
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(20), s.read(&mut answer)).await;
        let n = read
            .unwrap_or_else(|_| panic!("no answer in 20 s to a body never sent (want {want})"))
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {want} ")),
            "want {want}: {answer}"
        );
    }
    let r = rest(&a, "GET", "/api/v1/messages", b"").await;
    assert_eq!(r.status, 200);
    a.stop().await;
}
