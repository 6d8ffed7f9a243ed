//! Two (or three) real daemons on loopback with their workers and the system clock prove the
//! Direct exchange end to end (Applicability Statement 1.2, Direct IG for Delivery
//! Notification §3) through the clients operators use — swaks, Python smtplib, curl — and
//! that submission and relay policy, trust, notification de-duplication and metrics hold
//! at the daemon level (session defences and large messages: `limits.rs`; submission over
//! REST: `rest_submission.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::mdn::{parse_mdn, DispositionType};
use hisp_server::clock::{SharedClock, SystemClock};
use hisp_server::pair::{introduce, two_peers, Peer};
use hisp_smtp::client::{deliver, ClientError};
use hisp_store::{EntryKind, OutKind, RcptState, Store};
use std::sync::Arc;

/// The disposition type of every MDN in `owner`'s mailbox at `p`, oldest first.
async fn mdn_dispositions(p: &Peer, owner: &str) -> Vec<DispositionType> {
    let mut out = Vec::new();
    for e in entries(p, owner, EntryKind::Mdn).await {
        let full = p.store.mailbox_entry(owner, e.id).await.unwrap().unwrap();
        let m = parse_mdn(&full.body).unwrap_or_else(|err| panic!("entry {}: {err}", e.id));
        out.push(m.disposition.disposition_type);
    }
    out
}

/// Direct IG §3.1/§3.3: swaks submits (STARTTLS, AUTH PLAIN) a message asking for
/// final-destination delivery; bob's edge lists it over REST (curl), alice gets the
/// `processed` MDN, and bob's REST pickup (curl POST) sends `dispatched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submission_gets_processed_then_dispatched_mdn_after_curl_pickup() {
    // This one runs the pair exactly as `hisp demo` makes it (fresh keys, `two_peers`).
    let root = tempfile::tempdir().unwrap();
    let (mut a, mut b) = two_peers(root.path(), now()).await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    start(&mut a, clock.clone()).await;
    start(&mut b, clock).await;
    let sub = a.config.smtp.submission_listen.to_string();
    let out = tool(
        "swaks",
        &[
            "--server",
            &sub,
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            &a.user,
            "--auth-password",
            &a.password,
            "--from",
            &a.user,
            "--to",
            &b.user,
            "--header",
            "Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true",
            "--header",
            "Subject: Referral: cardiology consult",
            "--body",
            "Dear Dr Bob, please see the synthetic test patient.",
        ],
        None,
    )
    .await;
    let transcript = text(&out.stdout);
    assert!(
        out.status.success(),
        "swaks failed:\n{transcript}\n{}",
        text(&out.stderr)
    );
    let id = queued_id(&transcript);

    // Bob's edge sees it over REST.
    let (status, list) = eventually("the message in bob's REST listing", || {
        let b = &b;
        async move {
            let (status, body) = curl(b, "GET", "/api/v1/messages").await;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            match v["messages"].as_array() {
                Some(m) if !m.is_empty() => Ok((status, m.clone())),
                _ => Err(body),
            }
        }
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    assert_eq!(entry["kind"], "message");
    assert_eq!(entry["from"], a.user.as_str());
    assert_eq!(entry["subject"], "Referral: cardiology consult");
    assert_eq!(entry["wants_dispatched"], true);
    let entry_id = entry["id"].as_i64().unwrap();
    let (status, body) = curl(&b, "GET", &format!("/api/v1/messages/{entry_id}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("synthetic test patient"), "{body}");

    // processed: state and alice's mailbox.
    let r = wait_state(&a, &id, RcptState::Processed).await;
    assert!(r.wants_dispatched);
    wait_entries(&a, &a.user, EntryKind::Mdn, 1).await;
    assert_eq!(
        mdn_dispositions(&a, &a.user).await,
        [DispositionType::Processed]
    );

    // Pickup sends dispatched.
    let (status, body) = curl(&b, "POST", &format!("/api/v1/messages/{entry_id}/pickup")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["dispatched_mdn"], true, "{body}");
    wait_state(&a, &id, RcptState::Dispatched).await;
    wait_entries(&a, &a.user, EntryKind::Mdn, 2).await;
    assert_eq!(
        mdn_dispositions(&a, &a.user).await,
        [DispositionType::Processed, DispositionType::Dispatched]
    );
    // A second pickup is refused and sends nothing more.
    let (status, _) = curl(&b, "POST", &format!("/api/v1/messages/{entry_id}/pickup")).await;
    assert_eq!(status, 409);

    a.stop().await;
    b.stop().await;
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port, user, password, sender, rcpt = sys.argv[1:7]
message = sys.stdin.buffer.read()
s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo()
s.login(user, password)
code, text = s.mail(sender)
assert code == 250, (code, text)
code, text = s.rcpt(rcpt)
assert code == 250, (code, text)
code, text = s.data(message)
print(code, text.decode())
s.quit()
"#;

/// RFC 6409 with Python's smtplib (starttls, login, mail/rcpt/data): delivered to bob,
/// `processed` MDN back at alpha.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_submission_is_delivered_and_processed() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let msg = message(&a.user, &b.user, "Lab results", &mid, false);
    let sub = a.config.smtp.submission_listen;
    let port = sub.port().to_string();
    let host = sub.ip().to_string();
    let out = tool(
        "python3",
        &[
            "-c",
            SMTPLIB,
            &host,
            &port,
            &a.user,
            &a.password,
            &a.user,
            &b.user,
        ],
        Some(&msg),
    )
    .await;
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "smtplib failed: {said}\n{}",
        text(&out.stderr)
    );
    assert!(said.starts_with("250 "), "{said}");
    let id = queued_id(&said);

    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got[0].message_id, mid);
    assert!(!got[0].wants_dispatched);
    let r = wait_state(&a, &id, RcptState::Processed).await;
    assert_eq!(
        r.deadline, None,
        "no dispatched requested: nothing more awaited"
    );
    wait_entries(&a, &a.user, EntryKind::Mdn, 1).await;
    assert_eq!(
        mdn_dispositions(&a, &a.user).await,
        [DispositionType::Processed]
    );

    a.stop().await;
    b.stop().await;
}

/// RFC 6409 §6.1 / DESIGN §2 "policy (sender owns the address)": MAIL FROM someone else is
/// refused with 553 5.7.1, a From header naming someone else with 550 5.7.1, and nothing
/// is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_refuses_spoofed_mail_from_553_and_spoofed_from_header_550() {
    let root = tempfile::tempdir().unwrap();
    let mut a = instance(root.path(), ALPHA, "dr.alice", "alice-pw").await;
    start(&mut a, Arc::new(SystemClock)).await;
    let target = a.config.smtp.submission_listen.to_string();
    let bob = "dr.bob@direct.beta-hospital.example";
    let mallory = "dr.mallory@direct.alpha-clinic.example";
    let cfg = client_config();

    let msg = message(mallory, bob, "spoof", &message_id(&a.domain), false);
    let env = envelope(mallory, &[bob]);
    match hisp_smtp::client::submit(&target, &cfg, &a.user, &a.password, &env, &msg).await {
        Err(ClientError::Rejected { stage, reply }) => {
            assert_eq!(stage, "MAIL FROM");
            assert_eq!(
                (reply.code, reply.status),
                (553, Some((5, 7, 1))),
                "{reply}"
            );
        }
        other => panic!(
            "MAIL FROM:<{mallory}> as {} was not refused: {other:?}",
            a.user
        ),
    }

    for from in [
        mallory.to_string(),
        format!("Dr Alice <{}>, Mallory <dr.mallory@evil.example>", a.user),
        format!("\"{}\" <dr.mallory@evil.example>", a.user),
        format!("dr.mallory@evil.example (<{}>)", a.user),
        format!("Dr Alice <{}>\r\nFrom: dr.mallory@evil.example", a.user),
    ] {
        let msg = message(&from, bob, "spoof", &message_id(&a.domain), false);
        let env = envelope(&a.user, &[bob]);
        match hisp_smtp::client::submit(&target, &cfg, &a.user, &a.password, &env, &msg).await {
            Err(ClientError::Rejected { stage, reply }) => {
                assert_eq!(stage, "end of data");
                assert_eq!(
                    (reply.code, reply.status),
                    (550, Some((5, 7, 1))),
                    "{reply}"
                );
            }
            other => panic!("From: {from} as {} was not refused: {other:?}", a.user),
        }
    }
    assert!(a.store.list_outbound(10).await.unwrap().is_empty());

    // The same user, written in capitals, is the same address.
    let shout = a.user.to_uppercase();
    let msg = message(&shout, bob, "fine", &message_id(&a.domain), false);
    let d = hisp_smtp::client::submit(
        &target,
        &cfg,
        &a.user,
        &a.password,
        &envelope(&shout, &[bob]),
        &msg,
    )
    .await
    .unwrap();
    assert_eq!(d.data_reply.map(|r| r.code), Some(250));
    a.stop().await;
}

/// RFC 5321 §3.6.2 (no open relay) and §4.2.2: on the relay port a recipient outside our
/// domains gets 550 5.7.1, an unknown local user 550 5.1.1, and no DATA follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_port_refuses_foreign_domains_5_7_1_and_unknown_users_5_1_1() {
    let root = tempfile::tempdir().unwrap();
    let mut b = instance(root.path(), BETA, "dr.bob", "bob-pw").await;
    start(&mut b, Arc::new(SystemClock)).await;
    let relay = b.config.smtp.relay_listen.to_string();
    let rcpts = [
        "someone@elsewhere.example",
        "dr.alice@direct.alpha-clinic.example",
        "dr.nobody@direct.beta-hospital.example",
    ];
    let env = envelope("dr.alice@direct.alpha-clinic.example", &rcpts);
    let d = deliver(&relay, &client_config(), &env, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    let got: Vec<_> = d
        .per_rcpt
        .iter()
        .map(|(a, r)| (a.as_str(), r.code, r.status))
        .collect();
    assert_eq!(
        got,
        [
            (rcpts[0], 550, Some((5, 7, 1))),
            (rcpts[1], 550, Some((5, 7, 1))),
            (rcpts[2], 550, Some((5, 1, 1))),
        ]
    );
    assert_eq!(d.data_reply, None);
    let m = metrics(&b).await;
    assert_eq!(
        metric(&m, "hisp_messages_accepted_total{port=\"relay\"}"),
        0.0
    );
    b.stop().await;
}

/// Applicability Statement §4 (trust): a message signed under a CA that beta does not
/// anchor is quarantined with a trust reason, and no MDN goes back (Direct IG §3.1: only
/// successfully received messages are answered), so the sender's recipient stays relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_signer_is_quarantined_and_no_mdn_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let t = now();
    let mut b = instance(root.path(), BETA, "dr.bob", "bob-pw").await;
    let mut g = instance(
        root.path(),
        "direct.gamma-lab.example",
        "dr.carol",
        "carol-pw",
    )
    .await;
    // gamma knows beta (route, certificate, anchor); beta does not trust gamma's CA.
    introduce(&g, &b, t).await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    start(&mut b, clock.clone()).await;
    start(&mut g, clock).await;

    let mid = message_id(&g.domain);
    let id = submit(
        &g,
        &b.user,
        &message(&g.user, &b.user, "results", &mid, true),
    )
    .await;
    wait_state(&g, &id, RcptState::Relayed).await;
    let q = eventually("a quarantined message at beta", || {
        let b = &b;
        async move {
            let q = b.store.quarantined(10).await.unwrap();
            if q.is_empty() {
                Err("nothing quarantined".to_string())
            } else {
                Ok(q)
            }
        }
    })
    .await;
    assert_eq!(q.len(), 1);
    let reason = q[0].reason.clone().unwrap_or_default();
    assert!(reason.to_lowercase().contains("trust"), "reason: {reason}");
    assert_eq!(q[0].rcpts, [b.user.clone()]);

    // Nothing delivered, no MDN queued at beta, nothing arrived back at gamma.
    assert!(mailbox(&b, &b.user).await.is_empty());
    let queued = b.store.list_outbound(10).await.unwrap();
    assert!(queued.is_empty(), "beta queued {queued:?}");
    let m = metrics(&b).await;
    assert_eq!(metric(&m, "hisp_messages_quarantined_total"), 1.0);
    assert_eq!(metric(&m, "hisp_mdn_sent_total"), 0.0);
    // Nothing is being received now, within the default bound (1 GiB).
    assert_eq!(metric(&m, "hisp_smtp_data_memory_bytes"), 0.0);
    assert_eq!(
        metric(&m, "hisp_smtp_data_memory_limit_bytes"),
        1073741824.0
    );
    assert_eq!(metric(&m, "hisp_smtp_data_memory_refusals_total"), 0.0);
    assert_eq!(rcpt(&g, &id).await.state, RcptState::Relayed);
    assert!(mailbox(&g, &g.user).await.is_empty());

    b.stop().await;
    g.stop().await;
}

/// Applicability Statement §4 / RFC 5751 §3.1 (binding): a message signed by beta's
/// trusted domain certificate but claiming to come from another domain is quarantined with
/// a binding reason, not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_signer_not_bound_to_the_from_address_is_quarantined() {
    let (_root, mut a, mut b) = running_pair().await;
    let carol = format!("dr.carol@{GAMMA}");
    let msg = message(&carol, &a.user, "forged", &message_id(GAMMA), false);
    relay_to(&a, &carol, &a.user, &seal_for(&b, &a, &msg)).await;
    let q = eventually("the forged message quarantined at alpha", || {
        let a = &a;
        async move {
            let q = a.store.quarantined(5).await.unwrap();
            q.first()
                .cloned()
                .ok_or_else(|| "nothing quarantined".to_string())
        }
    })
    .await;
    let reason = q.reason.unwrap_or_default();
    assert!(
        reason.contains("binding") && reason.contains(&carol),
        "{reason}"
    );
    assert!(mailbox(&a, &a.user).await.is_empty());
    assert!(a.store.list_outbound(5).await.unwrap().is_empty(), "no MDN");
    a.stop().await;
    b.stop().await;
}

/// Direct IG §3.4 / DESIGN §4 "MDNs about the same message are de-duplicated": beta's own
/// sealed `processed` MDN, delivered to alpha a second time, is counted as a duplicate and
/// not put in alice's mailbox again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_processed_mdn_is_counted_and_not_delivered_twice() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let id = submit(
        &a,
        &b.user,
        &message(&a.user, &b.user, "x-ray", &mid, false),
    )
    .await;
    wait_state(&a, &id, RcptState::Processed).await;
    wait_entries(&a, &a.user, EntryKind::Mdn, 1).await;

    let notes: Vec<_> = b
        .store
        .list_outbound(20)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == OutKind::Notification)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    assert_eq!(note.recipients[0].rcpt, a.user);
    // The MDN exactly as beta queued it, sealed again by beta's key for alpha (beta keeps
    // the sealed form only for retries).
    let body = b.store.outbound_body(&note.id).await.unwrap().unwrap();
    let sealed = seal_for(&b, &a, &body);
    let before = metrics(&a).await;
    assert_eq!(metric(&before, "hisp_notifications_duplicate_total"), 0.0);
    assert_eq!(metric(&before, "hisp_mdn_received_total"), 1.0);
    relay_to(&a, &b.user, &a.user, &sealed).await;
    let after = eventually("the duplicate counted at alpha", || {
        let a = &a;
        async move {
            let m = metrics(a).await;
            match metric(&m, "hisp_notifications_duplicate_total") {
                n if n >= 1.0 => Ok(m),
                n => Err(format!("duplicates {n}")),
            }
        }
    })
    .await;
    assert_eq!(metric(&after, "hisp_notifications_duplicate_total"), 1.0);
    assert_eq!(metric(&after, "hisp_mdn_received_total"), 1.0);
    assert_eq!(entries(&a, &a.user, EntryKind::Mdn).await.len(), 1);
    assert_eq!(rcpt(&a, &id).await.state, RcptState::Processed);

    a.stop().await;
    b.stop().await;
}

/// Operations: after one exchange `/metrics` (Prometheus text 0.0.4) counts the submission,
/// the relay, the delivery and the MDNs on each side, and `/healthz` answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_exchange_and_healthz_is_200() {
    let (_root, mut a, mut b) = running_pair().await;
    let mid = message_id(&a.domain);
    let id = submit(
        &a,
        &b.user,
        &message(&a.user, &b.user, "referral", &mid, false),
    )
    .await;
    wait_state(&a, &id, RcptState::Processed).await;

    let ma = metrics(&a).await;
    assert!(metric(&ma, "hisp_messages_accepted_total{port=\"submission\"}") >= 1.0);
    assert!(metric(&ma, "hisp_recipients_relayed_total") >= 1.0);
    assert!(metric(&ma, "hisp_mdn_received_total") >= 1.0);
    assert!(metric(&ma, "hisp_messages_accepted_total{port=\"relay\"}") >= 1.0);
    let mb = eventually("beta's MDN relayed", || {
        let b = &b;
        async move {
            let m = metrics(b).await;
            if metric(&m, "hisp_recipients_relayed_total") >= 1.0 {
                Ok(m)
            } else {
                Err("not yet".into())
            }
        }
    })
    .await;
    assert!(metric(&mb, "hisp_messages_accepted_total{port=\"relay\"}") >= 1.0);
    assert!(metric(&mb, "hisp_messages_delivered_total") >= 1.0);
    assert!(metric(&mb, "hisp_mdn_sent_total") >= 1.0);
    assert!(mb.contains("# TYPE hisp_queue_depth gauge"));
    for p in [&a, &b] {
        let h = rest(p, "GET", "/healthz", b"").await;
        assert_eq!((h.status, text(&h.body).trim()), (200, "ok"));
    }

    a.stop().await;
    b.stop().await;
}

/// DESIGN §3 (durable before announced): beta announces a message on `arrivals` only once
/// its mailbox commit has returned, naming owner and Message-ID; the `processed` MDN that
/// reaches alpha is not announced there (arrivals are messages, not notifications).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrival_is_announced_after_the_mailbox_commit() {
    let (_root, mut a, mut b) = running_pair().await;
    let mut at_b = b.daemon().unwrap().ctx.arrivals.subscribe();
    let mut at_a = a.daemon().unwrap().ctx.arrivals.subscribe();
    let mid = message_id(&a.domain);
    let id = submit(&a, &b.user, &message(&a.user, &b.user, "CCD", &mid, false)).await;

    let wait = std::time::Duration::from_secs(30);
    let arrival = tokio::time::timeout(wait, at_b.recv())
        .await
        .expect("no arrival announced at beta")
        .unwrap();
    assert_eq!(
        (arrival.owner.as_str(), arrival.message_id.as_str()),
        (b.user.as_str(), mid.as_str())
    );
    let in_box = mailbox(&b, &b.user).await;
    assert!(
        in_box.iter().any(|e| e.message_id == mid),
        "announced before its commit"
    );
    assert!(arrival.at <= std::time::Instant::now());

    wait_state(&a, &id, RcptState::Processed).await;
    wait_entries(&a, &a.user, EntryKind::Mdn, 1).await;
    assert!(
        matches!(
            at_a.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty)
        ),
        "an MDN was announced as an arrival"
    );
    a.stop().await;
    b.stop().await;
}
