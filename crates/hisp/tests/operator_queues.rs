//! The operator's hand on the queues (issue 4: "what an operator of Postfix-class mail
//! software would expect"), with two real `hisp serve` daemons on loopback:
//! - `hisp quarantine` lists a message that failed to open (its signer's CA is not yet an
//!   anchor at the receiving HISP) with the reason; `quarantine show` saves it as received,
//!   and `hisp open` with the right anchor opens that file; after `hisp anchor add`,
//!   `quarantine release` has the running daemon open it again: Bob gets it and Alice's
//!   HISP the `processed` MDN (Delivery Notification IG: one MDN per successful receipt);
//!   each daemon logs a line per delivery attempt and inbound message, by queue id.
//! - `hisp queue flush` (as `postqueue -f`): a recipient deferred by a peer that was down
//!   is retried at once, before its scheduled retry.
//! - `hisp queue hold` / `release` (as `postsuper -h` / `-H`), of a destination or a
//!   message: a held message is not sent when its peer is back and the queue flushed;
//!   released, it goes at once.
//! - `hisp queue summary` (as `qshape`) counts the deferred recipient under its domain.
//! - `hisp queue delete` (as `postsuper -d`): a deferred message's recipient fails, the
//!   sender gets a DSN (RFC 3464) naming the reason, and nothing is sent when the peer is
//!   back; a second delete is refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use daemon_support::*;
use serde_json::Value;
use std::time::Duration;

fn quarantine_json(inst: &Instance) -> Vec<Value> {
    let r = hisp_at(inst, &["quarantine", "--json"]);
    assert_eq!(r.code, 0, "hisp quarantine: {}", r.stderr);
    json_of(&r)["messages"].as_array().unwrap().clone()
}

/// Bob's recipient entry of the message `id` in Alice's `hisp queue --json`.
fn bob_at_alpha(alpha: &Instance, id: &str) -> Option<Value> {
    let q = alpha.queue_json();
    q["messages"]
        .as_array()?
        .iter()
        .find(|m| m["message_id"] == id)
        .and_then(|m| m["recipients"].as_array()?.first().cloned())
}

fn bob_has(beta: &Instance, id: &str) -> bool {
    beta.mailbox_json(BOB)["messages"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["message_id"] == id))
}

#[test]
fn quarantined_mail_is_listed_saved_and_released_once_its_anchor_is_added() {
    let tmp = common::workdir();
    let alpha = Instance::init(tmp.path(), "alpha", "direct.alpha.example");
    let beta = Instance::init(tmp.path(), "beta", "direct.beta.example");
    alpha.add_user(ALICE, ALICE_PASSWORD);
    beta.add_user(BOB, BOB_PASSWORD);
    for (me, peer) in [(&alpha, &beta), (&beta, &alpha)] {
        me.route_to(peer);
        me.know_cert_of(peer);
    }
    // Beta does not trust alpha's CA yet: the message is quarantined, not delivered.
    alpha.trust(&beta);
    let a = Daemon::start(&alpha);
    let b = Daemon::start(&beta);
    let logs = || format!("{}\n{}", a.all_logs(6000), b.all_logs(6000));
    let id = format!("<quarantine-{}@direct.alpha.example>", std::process::id());
    submit_referral(&alpha, &id);

    let mut listed = Vec::new();
    let quarantined = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        listed = quarantine_json(&beta);
        !listed.is_empty()
    });
    assert!(quarantined, "nothing quarantined at beta\n{}", logs());
    assert_eq!(listed.len(), 1, "{listed:?}");
    let qid = listed[0]["id"].as_str().unwrap().to_string();
    let reason = listed[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("trust"),
        "reason names the trust failure: {reason}"
    );
    assert_eq!(listed[0]["mail_from"], ALICE);
    assert_eq!(listed[0]["rcpts"][0], BOB);
    assert!(!bob_has(&beta, &id));
    let text = hisp_at(&beta, &["quarantine"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&qid),
        "text listing: {}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Saved as received: `hisp open` with alpha's CA as anchor opens it.
    let saved = tmp.path().join("quarantined.eml");
    let show = hisp_at(
        &beta,
        &["quarantine", "show", &qid, "--out", saved.to_str().unwrap()],
    );
    assert_eq!(show.code, 0, "quarantine show: {}", show.stderr);
    let dir = |i: &Instance, f: &str| i.dir.join(f).to_str().unwrap().to_string();
    let open = common::run(
        common::hisp().args([
            "open",
            "--cert",
            &dir(&beta, "domain.pem"),
            "--key",
            &dir(&beta, "domain.key"),
            "--anchor",
            &dir(&alpha, "ca.pem"),
            "--in",
            saved.to_str().unwrap(),
            "--json",
        ]),
        None,
    );
    assert_eq!(
        open.code, 0,
        "hisp open of the saved message: {}",
        open.stderr
    );
    assert_eq!(json_of(&open)["trusted"], true);

    // Trust alpha, release: the running daemon opens it again and delivers it.
    beta.trust(&alpha);
    let release = hisp_at(&beta, &["quarantine", "release", &qid]);
    assert_eq!(release.code, 0, "quarantine release: {}", release.stderr);
    let delivered = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        bob_has(&beta, &id)
    });
    assert!(delivered, "released message not delivered\n{}", logs());
    let processed = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        bob_at_alpha(&alpha, &id).is_some_and(|r| r["state"] == "processed")
    });
    assert!(processed, "no processed MDN at alpha\n{}", logs());
    assert!(quarantine_json(&beta).is_empty());

    // The daemons' info lines (docs/operations.md: one per message and delivery) name
    // the queue ids, and no recipient address (it may name a patient).
    let out_id = queue_id_at(&alpha, &id);
    let (alog, blog) = (a.log_text(), b.log_text());
    let line_with =
        |log: &str, words: &[&str]| log.lines().any(|l| words.iter().all(|w| l.contains(w)));
    assert!(
        line_with(&alog, &["delivery attempt", &out_id, "relayed=1"]),
        "{alog}"
    );
    assert!(
        line_with(
            &alog,
            &["notification about a recipient", &out_id, "processed"]
        ),
        "{alog}"
    );
    assert!(
        line_with(&blog, &["inbound message done", &qid, "delivered=1"]),
        "{blog}"
    );
    assert!(
        !alog.contains("bob@") && !blog.contains("bob@"),
        "{alog}\n{blog}"
    );
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("ALOG\n{alog}\nBLOG\n{blog}");
    }

    // Released once: a second release, and an unknown id, are refused by name.
    let again = hisp_at(&beta, &["quarantine", "release", &qid]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("not quarantined"), "{}", again.stderr);
    let unknown = hisp_at(&beta, &["quarantine", "show", "i-0000000000000000"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no inbound message"),
        "{}",
        unknown.stderr
    );
}

/// Wait (90 s at most) until Bob has the message `id` at beta, else fail naming `what`,
/// with the daemons' logs.
fn assert_delivered(beta: &Instance, id: &str, what: &str, daemons: &[&Daemon]) {
    let delivered = wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
        bob_has(beta, id)
    });
    let logs: Vec<String> = daemons.iter().map(|d| d.all_logs(6000)).collect();
    assert!(delivered, "{what} was not delivered\n{}", logs.join("\n"));
}

/// The message `id` in `inst`'s `hisp queue --json`.
fn message_at(inst: &Instance, id: &str) -> Value {
    inst.queue_json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == id)
        .cloned()
        .unwrap()
}

/// The queue id of the message `id` in `inst`'s queue.
fn queue_id_at(inst: &Instance, id: &str) -> String {
    message_at(inst, id)["queue_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Two instances with a 30-minute first retry at alpha, alpha running and beta down, and
/// a referral (Message-ID tagged `tag`) deferred at alpha: (its folder, the pair, alpha's
/// daemon, the Message-ID, when its retry is due).
fn deferred_at_alpha(tag: &str) -> (tempfile::TempDir, Pair, Daemon, String, String) {
    let tmp = common::workdir();
    let pair = Pair::init(tmp.path());
    pair.alpha.set("queue", "retry_first", "\"30m\"");
    let a = Daemon::start(&pair.alpha);
    let id = format!("<{tag}-{}@direct.alpha.example>", std::process::id());
    let scheduled = deferred_referral(&pair, &a, &id);
    (tmp, pair, a, id, scheduled)
}

/// Submit a referral at alpha while beta is down, and wait until its first attempt failed
/// and the next is scheduled (`queue.retry_first`, 30 minutes); returns when it is due.
fn deferred_referral(pair: &Pair, a: &Daemon, id: &str) -> String {
    submit_referral(&pair.alpha, id);
    let mut bob = None;
    let deferred = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        bob = bob_at_alpha(&pair.alpha, id);
        bob.as_ref()
            .is_some_and(|r| r["state"] == "queued" && r["attempts"].as_u64() >= Some(1))
    });
    assert!(deferred, "not deferred: {bob:?}\n{}", a.all_logs(6000));
    bob.unwrap()["next_attempt"].as_str().unwrap().to_string()
}

#[test]
fn queue_flush_retries_a_deferred_recipient_before_its_scheduled_retry() {
    let (_tmp, pair, a, id, scheduled) = deferred_at_alpha("flush");

    let b = Daemon::start(&pair.beta);
    let flush = hisp_at(&pair.alpha, &["queue", "flush"]);
    assert_eq!(flush.code, 0, "queue flush: {}", flush.stderr);
    assert!(
        String::from_utf8_lossy(&flush.stdout).starts_with("1 recipient"),
        "{}",
        String::from_utf8_lossy(&flush.stdout)
    );
    let what = format!("the flushed message (its retry was due {scheduled})");
    assert_delivered(&pair.beta, &id, &what, &[&a, &b]);
    let m = message_at(&pair.alpha, &id);
    let events: Vec<&str> = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let flushed = events.iter().position(|e| *e == "flushed");
    let relayed_at = events.iter().position(|e| *e == "relayed");
    assert!(
        flushed.is_some() && relayed_at > flushed,
        "timeline: {events:?}"
    );
}

#[test]
fn queue_hold_keeps_a_deferred_message_until_released() {
    let (_tmp, pair, a, id, _) = deferred_at_alpha("hold");
    let queue_id = queue_id_at(&pair.alpha, &id);

    // A whole destination, then one message.
    let out = |r: &common::Run| String::from_utf8_lossy(&r.stdout).into_owned();
    let all = hisp_at(
        &pair.alpha,
        &["queue", "hold", "--domain", "direct.beta.example"],
    );
    assert!(
        out(&all).contains("1 recipient(s) for direct.beta.example held"),
        "{}",
        all.stderr
    );
    let all = hisp_at(
        &pair.alpha,
        &["queue", "release", "--domain", "direct.beta.example"],
    );
    assert!(out(&all).contains("1 recipient(s)"), "{}", all.stderr);
    assert_eq!(bob_at_alpha(&pair.alpha, &id).unwrap()["state"], "queued");
    assert_eq!(
        hisp_at(&pair.alpha, &["queue", "hold"]).code,
        2,
        "what to hold?"
    );
    let hold = hisp_at(&pair.alpha, &["queue", "hold", &queue_id]);
    assert_eq!(hold.code, 0, "queue hold: {}", hold.stderr);
    assert_eq!(bob_at_alpha(&pair.alpha, &id).unwrap()["state"], "held");
    let again = hisp_at(&pair.alpha, &["queue", "hold", &queue_id]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("bob@direct.beta.example held"),
        "{}",
        again.stderr
    );

    // Beta is back and the queue flushed: a held message still does not go.
    let b = Daemon::start(&pair.beta);
    let flush = hisp_at(&pair.alpha, &["queue", "flush"]);
    assert!(String::from_utf8_lossy(&flush.stdout).starts_with("0 recipient"));
    let went = wait_until(Duration::from_secs(3), Duration::from_millis(200), || {
        bob_has(&pair.beta, &id)
    });
    assert!(!went, "a held message was delivered");

    let release = hisp_at(&pair.alpha, &["queue", "release", &queue_id]);
    assert_eq!(release.code, 0, "queue release: {}", release.stderr);
    assert_delivered(&pair.beta, &id, "the released message", &[&a, &b]);
    let events: Vec<String> = message_at(&pair.alpha, &id)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    let at = |k: &str| events.iter().position(|e| e == k);
    assert!(
        at("held") < at("released") && at("released") < at("relayed") && at("held").is_some(),
        "timeline: {events:?}"
    );
    let again = hisp_at(&pair.alpha, &["queue", "release", &queue_id]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("is held"), "{}", again.stderr);

    // Each command is in the audit trail (`hisp audit`), as the operator, newest first.
    let audit = hisp_at(&pair.alpha, &["audit", "--actor", "operator", "--json"]);
    assert_eq!(audit.code, 0, "hisp audit: {}", audit.stderr);
    let events = json_of(&audit)["events"].as_array().unwrap().clone();
    let acts: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["object"].as_str().unwrap()))
        .collect();
    assert_eq!(
        acts[..4],
        [
            ("queue-release", queue_id.as_str()),
            ("queue-hold", queue_id.as_str()),
            ("queue-release", "direct.beta.example"),
            ("queue-hold", "direct.beta.example"),
        ],
        "{acts:?}"
    );
    // So is the set-up, done with the operator commands.
    let all: Vec<&str> = acts.iter().map(|a| a.0).collect();
    for set_up in ["user-add", "anchor-add", "route-add", "cert-add"] {
        assert!(all.contains(&set_up), "{set_up} missing: {all:?}");
    }
    let text = hisp_at(&pair.alpha, &["audit", "--since", "1h"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("queue-hold"));
    let page = hisp_at(&pair.alpha, &["audit", "--limit", "1", "--json"]);
    let next = json_of(&page)["next_before"].as_i64().unwrap();
    let older = hisp_at(
        &pair.alpha,
        &["audit", "--before", &next.to_string(), "--json"],
    );
    let older = json_of(&older)["events"].as_array().unwrap().len();
    let whole = hisp_at(&pair.alpha, &["audit", "--json"]);
    let whole = json_of(&whole)["events"].as_array().unwrap().len();
    assert_eq!(
        older + 1,
        whole,
        "pages cover the trail (alice's submission too)"
    );
    assert!(whole > events.len());
}

#[test]
fn queue_delete_fails_a_deferred_message_and_tells_its_sender() {
    let (_tmp, pair, _a, id, _) = deferred_at_alpha("delete");
    let queue_id = queue_id_at(&pair.alpha, &id);

    // `hisp queue summary` (as `qshape`) shows beta's domain waiting, tried, and why.
    let summary = hisp_at(&pair.alpha, &["queue", "summary", "--json"]);
    assert_eq!(summary.code, 0, "queue summary: {}", summary.stderr);
    let shape = json_of(&summary);
    let beta = &shape["destinations"][0];
    assert_eq!(beta["domain"], "direct.beta.example", "{shape}");
    assert_eq!((&beta["waiting"], &beta["tried"]), (&1.into(), &1.into()));
    assert_eq!(beta["by_age"][0], 1, "queued under 5 minutes ago: {shape}");
    assert!(beta["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    let text = hisp_at(&pair.alpha, &["queue", "summary"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("direct.beta.example") && text.contains("TOTAL"),
        "{text}"
    );

    let del = hisp_at(&pair.alpha, &["queue", "delete", &queue_id]);
    assert_eq!(del.code, 0, "queue delete: {}", del.stderr);
    let bob = bob_at_alpha(&pair.alpha, &id).unwrap();
    assert_eq!(bob["state"], "failed", "{bob}");
    assert!(
        bob["last_error"].as_str().unwrap().contains("deleted"),
        "{bob}"
    );
    let mailbox = pair.alpha.mailbox_json(ALICE);
    let dsn = mailbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "dsn")
        .cloned();
    assert!(dsn.is_some(), "no DSN for alice: {mailbox}");

    // Nothing is left to send: beta back and a flush deliver nothing.
    let again = hisp_at(&pair.alpha, &["queue", "delete", &queue_id]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("nothing of"), "{}", again.stderr);
    let _b = Daemon::start(&pair.beta);
    let flush = hisp_at(&pair.alpha, &["queue", "flush"]);
    assert!(String::from_utf8_lossy(&flush.stdout).starts_with("0 recipient"));
    let unknown = hisp_at(&pair.alpha, &["queue", "delete", "o-0000000000000000"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no outbound message"),
        "{}",
        unknown.stderr
    );
    assert!(!bob_has(&pair.beta, &id));
}

/// `curl` against an instance's REST API as Bob; (HTTP status, body).
fn curl_bob(inst: &Instance, method: &str, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}{path}", inst.http_port);
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-u"])
        .arg(format!("{BOB}:{BOB_PASSWORD}"))
        .arg(&url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `[retention]` with both periods at zero: once Bob's edge picked the message up, `hisp
/// purge` removes its body at beta (REST then answers 410 Gone, the entry still listed),
/// and once the `processed` MDN closed it at alpha, the outbound body (timeline `purged`);
/// records are kept (`keep_records = "forever"`) until `keep_records` is set, and then
/// the finished message leaves alpha's queue listing and Bob's picked-up entry his mailbox;
/// the audit trail is kept until `keep_audit` is set, and then its older rows go.
#[test]
fn purge_removes_bodies_once_picked_up_or_finished_and_then_the_records() {
    let tmp = common::workdir();
    let pair = Pair::init(tmp.path());
    for inst in [&pair.alpha, &pair.beta] {
        inst.set("retention", "keep_outbound_bodies", "\"0s\"");
        inst.set("retention", "keep_picked_up_bodies", "\"0s\"");
    }
    let (a, b) = (Daemon::start(&pair.alpha), Daemon::start(&pair.beta));
    let logs = || format!("{}\n{}", a.all_logs(6000), b.all_logs(6000));
    let id = format!("<purge-{}@direct.alpha.example>", std::process::id());
    submit_referral(&pair.alpha, &id);
    let processed = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        bob_at_alpha(&pair.alpha, &id).is_some_and(|r| r["state"] == "processed")
    });
    assert!(processed, "not processed\n{}", logs());

    // Not picked up yet: `hisp purge` leaves Bob's copy alone.
    let purge = |inst: &Instance| {
        let r = hisp_at(inst, &["purge"]);
        assert_eq!(r.code, 0, "hisp purge: {}", r.stderr);
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    let first = purge(&pair.beta);
    assert!(first.contains(" and of 0 mailbox"), "{first}");
    assert!(
        first.contains("records of finished mail are kept"),
        "{first}"
    );
    let entry = pair.beta.mailbox_json(BOB)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message_id"] == id)
        .map(|e| e["id"].as_i64().unwrap())
        .unwrap();
    let path = format!("/api/v1/messages/{entry}");
    assert_eq!(curl_bob(&pair.beta, "GET", &path).0, 200);
    assert_eq!(
        curl_bob(&pair.beta, "POST", &format!("{path}/pickup")).0,
        200
    );

    // Picked up (this second or before): purged as soon as the clock passes it.
    let purged = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        purge(&pair.beta).contains(" and of 1 mailbox")
    });
    assert!(purged, "picked-up body not purged\n{}", logs());
    let (code, text) = curl_bob(&pair.beta, "GET", &path);
    assert_eq!(code, 410, "{text}");
    assert!(text.contains("retention"), "{text}");
    assert!(pair.beta.mailbox_json(BOB)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message_id"] == id));

    let purged = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        purge(&pair.alpha).starts_with("removed the bodies of 1 ")
    });
    assert!(purged, "finished outbound body not purged\n{}", logs());
    let m = message_at(&pair.alpha, &id);
    assert!(m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "purged"));
    assert_eq!(m["recipients"][0]["state"], "processed");

    for inst in [&pair.alpha, &pair.beta] {
        inst.set("retention", "keep_quarantined", "\"0s\"");
        inst.set("retention", "keep_records", "\"0s\"");
    }
    let gone = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        purge(&pair.alpha).contains("records of 1 outbound message(s)")
    });
    assert!(gone, "finished record not removed\n{}", logs());
    assert!(bob_at_alpha(&pair.alpha, &id).is_none());
    let gone = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        purge(&pair.beta).contains("1 picked-up mailbox entr(ies)")
    });
    assert!(gone, "picked-up entry not removed\n{}", logs());
    assert!(!bob_has(&pair.beta, &id));

    // The audit trail is kept until keep_audit says otherwise; then its old rows go.
    assert!(purge(&pair.beta).contains("audit trail is kept"));
    let trail = |inst: &Instance| {
        let audit = hisp_at(inst, &["audit", "--json"]);
        json_of(&audit)["events"].as_array().unwrap().clone()
    };
    let before = trail(&pair.beta);
    assert!(
        before.iter().any(|e| e["action"] == "user-add"),
        "{before:?}"
    );
    pair.beta.set("retention", "keep_audit", "\"0s\"");
    let trimmed = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        purge(&pair.beta).contains("audit row(s) older than 0s")
    });
    assert!(trimmed, "no audit pass\n{}", logs());
    // What was written before this second is gone (the set-up's rows among it).
    let after = trail(&pair.beta);
    assert!(after.len() < before.len(), "{after:?}");
    assert!(
        !after.iter().any(|e| e["action"] == "user-add"),
        "{after:?}"
    );
}
