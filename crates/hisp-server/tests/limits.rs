//! The daemon's limits at the SMTP ports: the session defences of RFC 5321, 6409 and 4954
//! against hostile clients, and a message over the large-message threshold taking the
//! file-backed paths end to end; and the REST side's (pages of a mailbox listing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_server::clock::{SharedClock, SystemClock};
use hisp_store::{EntryKind, RcptState, Store};
use std::sync::Arc;

/// RFC 5321/6409/4954 session defences at the daemon: no AUTH → 530, AUTH before STARTTLS
/// → 530, wrong password → 535, over the size limit → 552, a 10,000-octet command → 500,
/// bare LF in the content → 550, content before 354 → 554, plaintext after STARTTLS → 554;
/// idle and slowloris sessions held open do not stop a normal exchange, and nothing
/// hostile was spooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sessions_are_refused_and_a_normal_exchange_still_completes() {
    let (_root, mut a, mut b) = pair(now()).await;
    a.config.smtp.max_message_bytes = 64 << 10;
    let clock: SharedClock = Arc::new(SystemClock);
    start(&mut a, clock.clone()).await;
    start(&mut b, clock).await;
    let sub = a.config.smtp.submission_listen;
    let relay = a.config.smtp.relay_listen;
    let (alice, pw, bob) = (a.user.clone(), a.password.clone(), b.user.clone());

    let held = tokio::task::spawn_blocking(move || {
        // No AUTH: MAIL is refused.
        let mut c = Raw::connect(sub);
        c.starttls();
        let r = c.cmd(&format!("MAIL FROM:<{alice}>"));
        assert_eq!(r.code, 530, "MAIL without AUTH: {}", r.text);

        // AUTH before STARTTLS.
        let mut c = Raw::connect(sub);
        c.ehlo();
        let r = c.auth_plain(&alice, &pw);
        assert_eq!(r.code, 530, "AUTH in clear: {}", r.text);

        // Wrong password.
        c.starttls();
        let r = c.auth_plain(&alice, "not-the-password");
        assert_eq!(r.code, 535, "wrong password: {}", r.text);

        // Over the 64 KiB limit (no SIZE declared, so it is counted as it streams).
        let r = c.auth_plain(&alice, &pw);
        assert_eq!(r.code, 235, "AUTH: {}", r.text);
        assert_eq!(c.cmd(&format!("MAIL FROM:<{alice}>")).code, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{bob}>")).code, 250);
        assert_eq!(c.cmd("DATA").code, 354);
        c.send(format!("From: {alice}\r\nTo: {bob}\r\nSubject: big\r\n\r\n").as_bytes());
        let line = format!("{}\r\n", "x".repeat(998));
        for _ in 0..100 {
            c.send(line.as_bytes());
        }
        c.send(b".\r\n");
        let r = c.reply();
        assert_eq!(r.code, 552, "oversized: {}", r.text);
        assert_eq!(c.cmd("QUIT").code, 221);

        // A 10,000-octet command line; the session survives it.
        let mut c = Raw::connect(relay);
        let r = c.cmd(&format!("EHLO {}", "a".repeat(10_000)));
        assert_eq!(r.code, 500, "long line: {}", r.text);
        assert_eq!(c.cmd("NOOP").code, 250);

        // Bare LF in the content (RFC 5321 §2.3.8).
        c.ehlo();
        assert_eq!(c.cmd(&format!("MAIL FROM:<{bob}>")).code, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{alice}>")).code, 250);
        assert_eq!(c.cmd("DATA").code, 354);
        c.send(b"Subject: smuggle\r\n\r\nbare\nLF\r\n.\r\n");
        let r = c.reply();
        assert_eq!(r.code, 550, "bare LF: {}", r.text);

        // Content before the 354 (RFC 2920 §3.1): refused and closed.
        let mut c = Raw::connect(relay);
        c.ehlo();
        assert_eq!(c.cmd(&format!("MAIL FROM:<{bob}>")).code, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{alice}>")).code, 250);
        c.send(b"DATA\r\nSubject: early\r\n\r\nearly\r\n.\r\n");
        let r = c.reply();
        assert_eq!(r.code, 554, "data before 354: {}", r.text);
        assert!(c.closed(), "the session must end after 554");

        // Plaintext pipelined after STARTTLS (RFC 3207 §4.2, CVE-2011-0411).
        let mut c = Raw::connect(sub);
        c.ehlo();
        c.send(b"STARTTLS\r\nNOOP\r\n");
        let r = c.reply();
        assert_eq!(r.code, 554, "STARTTLS injection: {}", r.text);
        assert!(c.closed(), "the session must end after 554");

        // Held open during the exchange: silent sessions on alpha's submission and relay
        // ports, and a slowloris that sent half a command (one more on beta's relay below).
        let idle_sub = Raw::connect_silent(sub);
        let idle_relay = Raw::connect_silent(relay);
        let mut slow = Raw::connect(relay);
        slow.send(b"EHL");
        (idle_sub, idle_relay, slow)
    })
    .await
    .unwrap();

    let m = metrics(&a).await;
    assert_eq!(
        metric(&m, "hisp_messages_accepted_total{port=\"relay\"}"),
        0.0
    );
    assert_eq!(
        metric(&m, "hisp_messages_accepted_total{port=\"submission\"}"),
        0.0
    );

    let b_relay = b.config.smtp.relay_listen;
    let slow_b = tokio::task::spawn_blocking(move || {
        let mut s = Raw::connect(b_relay);
        s.send(b"MAIL FROM:<slow");
        s
    })
    .await
    .unwrap();

    let mid = message_id(&a.domain);
    let id = submit(
        &a,
        &b.user,
        &message(&a.user, &b.user, "after the storm", &mid, false),
    )
    .await;
    wait_state(&a, &id, RcptState::Processed).await;
    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, mid);
    assert_eq!(rest(&a, "GET", "/healthz", b"").await.status, 200);

    drop((held, slow_b));
    a.stop().await;
    b.stop().await;
}

/// Online password guessing (RFC 4954 §4 leaves the defence to the server): wrong
/// passwords for one account, sent at once on as many connections, lock it once there are
/// `MAX_FAILURES` of them; then even the right password gets 429 with Retry-After over REST
/// (RFC 6585 §4) and 454 4.7.0 over SMTP AUTH (RFC 4954 §6), without a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_account_for_rest_and_smtp() {
    let (_root, mut a, _b) = pair(now()).await;
    start(&mut a, Arc::new(SystemClock)).await;
    let url = format!("http://{}/api/v1/messages", a.config.http.listen);
    let wrong = format!("{}:not-the-password", a.user);
    let guesses: Vec<_> = (0..hisp_server::auth::MAX_FAILURES)
        .map(|_| {
            let (url, wrong) = (url.clone(), wrong.clone());
            tokio::spawn(async move { http_status(&wrong, &url).await })
        })
        .collect();
    for g in guesses {
        assert_eq!(g.await.unwrap(), "401");
    }
    let right = format!("{}:{}", a.user, a.password);
    let args = ["-s", "-D", "-", "-o", "/dev/null", "-u", &right, &url];
    let out = tool("curl", &args, None).await;
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");

    let sub = a.config.smtp.submission_listen;
    let (user, pw) = (a.user.clone(), a.password.clone());
    let r = tokio::task::spawn_blocking(move || {
        let mut c = Raw::connect(sub);
        c.starttls();
        c.auth_plain(&user, &pw)
    })
    .await
    .unwrap();
    assert_eq!(r.code, 454, "AUTH of a locked account: {}", r.text);
    let m = metrics(&a).await;
    let max = f64::from(hisp_server::auth::MAX_FAILURES);
    assert_eq!(metric(&m, "hisp_auth_failures_total"), max);
    assert_eq!(metric(&m, "hisp_auth_locked_total"), 2.0);

    // The operator sets a new password (as `hisp user add` does): the lock is lifted.
    let hash = hisp_server::users::hash_password("a-new-password").unwrap();
    ctx(&a).store.set_user(&a.user, &hash, now()).await.unwrap();
    let renewed = format!("{}:a-new-password", a.user);
    eventually("the lock lifted by a new password", || async {
        match http_status(&renewed, &url).await.as_str() {
            "200" => Ok(()),
            other => Err(format!("HTTP {other}")),
        }
    })
    .await;
    a.stop().await;
}

/// Password spraying (one likely password tried on account after account; RFC 4954 §4
/// leaves the defence to the server) never trips an account's lock, so the client address
/// is counted too: after `MAX_ADDRESS_FAILURES` wrong logins from one address, each for
/// another account, that address's next attempt is refused unchecked, even with the right
/// password: 454 4.7.0 over SMTP AUTH, 429 over REST (which reads the address the listener
/// records). Another address logs in to the same account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_one_address_across_accounts_lock_the_address() {
    use axum::extract::ConnectInfo;
    use hisp_smtp::{AuthOutcome, Handler, PortKind, SessionInfo};
    let (_root, mut a, _b) = pair(now()).await;
    start(&mut a, Arc::new(SystemClock)).await;
    let client = |ip: &str| -> std::net::SocketAddr { format!("{ip}:40000").parse().unwrap() };
    let session = |peer| SessionInfo {
        id: 1,
        peer,
        kind: PortKind::Submission,
        helo: Some("client.example".into()),
        tls: true,
        user: None,
    };
    let smtp = hisp_server::smtp_handler::Submission(ctx(&a).clone());
    let sprayer = session(client("192.0.2.44"));
    for i in 0..hisp_server::auth::MAX_ADDRESS_FAILURES {
        let user = format!("user{i}@{}", a.domain);
        let got = smtp.authenticate(&sprayer, &user, "Spring2026!").await;
        assert_eq!(got, AuthOutcome::Rejected, "attempt {i}");
    }
    let got = smtp.authenticate(&sprayer, &a.user, &a.password).await;
    assert_eq!(
        got,
        AuthOutcome::TempFail,
        "the right password from the locked address"
    );
    let elsewhere = session(client("198.51.100.9"));
    let got = smtp.authenticate(&elsewhere, &a.user, &a.password).await;
    assert_eq!(got, AuthOutcome::Accepted(a.user.to_ascii_lowercase()));

    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", a.user, a.password)
        )
    );
    let app = hisp_server::http::router(ctx(&a).clone());
    let get = |from: std::net::SocketAddr| {
        let mut req = axum::http::Request::get("/api/v1/messages")
            .header("authorization", basic.as_str())
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(from));
        let mut app = app.clone();
        async move {
            let r = tower_service::Service::call(&mut app, req).await.unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    };
    assert_eq!(get(client("192.0.2.44")).await, (429, true));
    assert_eq!(get(client("198.51.100.9")).await.0, 200);
    let m = metrics(&a).await;
    assert_eq!(metric(&m, "hisp_auth_locked_total"), 2.0);
    a.stop().await;
}

/// Directory harvesting across sessions (crate::harvest): recipients refused on the relay
/// port to one client address, in any of its sessions, lock that address once they reach
/// `smtp.max_refused_recipients_per_ip`; then even a real user gets `450 4.7.1` from it
/// (the answer no longer tells who exists), while another address is answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_recipients_from_one_address_across_sessions_lock_the_address() {
    use hisp_smtp::{Envelope, Handler, PortKind, SessionInfo};
    let (_root, mut a, _b) = pair(now()).await;
    a.config.smtp.max_refused_recipients_per_ip = 5;
    start(&mut a, Arc::new(SystemClock)).await;
    let session = |id, ip: &str| SessionInfo {
        id,
        peer: format!("{ip}:40000").parse().unwrap(),
        kind: PortKind::Relay,
        helo: Some("peer.example".into()),
        tls: true,
        user: None,
    };
    let env = Envelope {
        mail_from: "dr.x@peer.example".into(),
        rcpt_to: Vec::new(),
        body_8bit: false,
        declared_size: None,
    };
    let relay = hisp_server::smtp_handler::Relay(ctx(&a).clone());
    for i in 0..5 {
        // A new session for each try, as a harvester spreads them.
        let guess = format!("nobody{i}@{}", a.domain);
        let got = relay.rcpt_to(&session(i, "192.0.2.44"), &env, &guess).await;
        assert_eq!(got.unwrap_err().code, 550, "try {i}");
    }
    let got = relay
        .rcpt_to(&session(9, "192.0.2.44"), &env, &a.user)
        .await;
    let reply = got.unwrap_err();
    assert_eq!(
        (reply.code, reply.status),
        (450, Some((4, 7, 1))),
        "a real user, from the locked address"
    );
    let got = relay
        .rcpt_to(&session(10, "198.51.100.9"), &env, &a.user)
        .await;
    assert!(got.is_ok(), "{got:?}");
    // Loopback is never counted.
    for i in 0..10 {
        let guess = format!("nobody{i}@{}", a.domain);
        let _ = relay
            .rcpt_to(&session(20 + i, "127.0.0.1"), &env, &guess)
            .await;
    }
    assert!(relay
        .rcpt_to(&session(40, "127.0.0.1"), &env, &a.user)
        .await
        .is_ok());
    let m = metrics(&a).await;
    assert_eq!(metric(&m, "hisp_smtp_rcpt_locked_total"), 1.0);
    a.stop().await;
}

/// Postfix's `default_destination_concurrency_limit`: with two delivery slots and at most
/// one per destination, a peer that accepts connections and never answers (beta's domain
/// routed to a black hole) holds one slot while its other mail waits in the queue, and
/// mail for another destination (alice's own domain, through our relay port) goes through
/// the other slot at once instead of waiting out the greeting timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_cannot_take_every_delivery_slot() {
    let (_root, mut a, b) = pair(now()).await;
    a.config.queue.delivery_workers = 2;
    a.config.queue.max_per_destination = Some(1);
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = hole.local_addr().unwrap().to_string();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let holding = held.clone();
    let accepting = tokio::spawn(async move {
        while let Ok((socket, _)) = hole.accept().await {
            holding.lock().unwrap().push(socket);
        }
    });
    a.store.set_route(&b.domain, &target, now()).await.unwrap();
    // Alice may write to herself: her own domain's certificate and anchor.
    hisp_server::pair::introduce(&a, &a, now()).await.unwrap();
    start(&mut a, Arc::new(SystemClock)).await;
    let sessions = || held.lock().unwrap().len();
    queue_message(&a, &[&b.user], false).await;
    eventually("a session held by the black hole", || async {
        (sessions() == 1)
            .then_some(())
            .ok_or("none yet".to_string())
    })
    .await;
    for _ in 0..2 {
        queue_message(&a, &[&b.user], false).await;
    }
    let (id, _) = queue_message(&a, &[&a.user], false).await;
    eventually("alice's message to herself relayed", || async {
        match rcpt(&a, &id).await.state {
            RcptState::Relayed | RcptState::Processed => Ok(()),
            _ => Err(format!("{:?}", rcpt(&a, &id).await)),
        }
    })
    .await;
    assert_eq!(sessions(), 1, "one session at a time to the slow peer");
    // Let the held deliveries fail at once, so the daemon stops promptly.
    accepting.abort();
    held.lock().unwrap().clear();
    a.stop().await;
}

/// A domain at its `queue.max_per_destination` gets its next delivery as soon as one of
/// its deliveries ends (the workers are woken), not at the workers' next idle poll (1 s):
/// sixty messages queued before alpha starts go to beta one at a time, all relayed well
/// within the deadline (20 s) that a second per message would overrun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_held_back_by_the_destination_limit_goes_when_a_delivery_ends() {
    let (_root, mut a, mut b) = pair(now()).await;
    // Slots to spare, as 12 of 16 by default: the workers wait idle, not for a slot.
    a.config.queue.delivery_workers = 4;
    a.config.queue.max_per_destination = Some(1);
    let mut ids = Vec::new();
    for _ in 0..60 {
        let mid = message_id(&a.domain);
        let new = hisp_store::NewOutbound {
            sender: a.user.clone(),
            message_id: mid.clone(),
            recipients: vec![b.user.clone()],
            body: message(&a.user, &b.user, "consult", &mid, false),
            wants_dispatched: false,
            kind: hisp_store::OutKind::Message,
            via: "test".into(),
            now: now(),
        };
        ids.push(a.store.enqueue(new).await.unwrap());
    }
    let clock: hisp_server::clock::SharedClock = Arc::new(SystemClock);
    start(&mut b, clock.clone()).await;
    start(&mut a, clock).await;
    eventually("every message relayed", || async {
        let mut queued = 0;
        for id in &ids {
            queued += usize::from(rcpt(&a, id).await.state == RcptState::Queued);
        }
        (queued == 0)
            .then_some(())
            .ok_or(format!("{queued} still queued"))
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// More HTTP connections at once than `http.max_connections`: the one over gets 503 with
/// Retry-After (RFC 9110 §15.6.4) and is closed, without waiting for the others; once they
/// close, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_over_the_limit_get_503_until_slots_free() {
    use std::io::Read;
    let (_root, mut a, _b) = pair(now()).await;
    a.config.http.max_connections = 2;
    start(&mut a, Arc::new(SystemClock)).await;
    let addr = a.config.http.listen;
    let answer = tokio::task::spawn_blocking(move || {
        // Accepted in the order they connected: these two take the slots and stay idle.
        let idle: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut over = std::net::TcpStream::connect(addr).unwrap();
        over.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut got = String::new();
        over.read_to_string(&mut got).unwrap();
        drop(idle);
        got
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    eventually("a free slot", || async {
        match rest(&a, "GET", "/healthz", b"").await.status {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        }
    })
    .await;
    a.stop().await;
}

/// The HTTP status of a GET of `url` with HTTP Basic `credentials` (`user:password`).
async fn http_status(credentials: &str, url: &str) -> String {
    let args = [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        credentials,
        url,
    ];
    let out = tool("curl", &args, None).await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A message over `spill::LARGE` (a 12 MiB imaging report) takes the large-message paths:
/// sealed to a file under `data_dir/tmp` and sent from it in pieces (RFC 5321 §4.5.2
/// dot-stuffing across piece boundaries: every line of it starts with a period), spooled
/// by the receiver before it is opened, delivered byte for byte, answered with `processed`;
/// no temporary file outlives the delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_message_sealed_to_a_file_is_spooled_opened_and_delivered_intact() {
    let (_root, mut a, mut b) = running_pair().await;
    let mut m = message(&a.user, &b.user, "imaging", &message_id(&a.domain), false);
    let line = format!(".{}\r\n", "D".repeat(75));
    while m.len() < 12 << 20 {
        m.extend_from_slice(line.as_bytes());
    }
    let id = submit(&a, &b.user, &m).await;
    wait_state(&a, &id, RcptState::Processed).await;
    let got = wait_entries(&b, &b.user, EntryKind::Message, 1).await;
    let full = b.store.mailbox_entry(&b.user, got[0].id).await.unwrap();
    let body = full.unwrap().body;
    assert!(body.len() >= m.len(), "{} < {}", body.len(), m.len());
    assert!(body.ends_with(&m[m.len() - 4096..]), "the content changed");
    let tmp = hisp_server::spill::dir(&a.config.server.data_dir);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
    a.stop().await;
    b.stop().await;
}

/// A mailbox listing is paged (`GET /api/v1/messages?after=ID&limit=N`, 500 when not
/// given, 5000 at most): an edge away for a week does not get its whole mailbox in one
/// answer. A full page names where the next starts (`next`); the last names none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_listing_comes_in_pages() {
    let (_root, mut a, _b) = pair(now()).await;
    start(&mut a, Arc::new(SystemClock)).await;
    for n in 0..5 {
        let entry = hisp_store::NewMailboxEntry {
            owner: a.user.clone(),
            kind: EntryKind::Message,
            message_id: format!("<page-{n}@peer.example>"),
            from: "dr.x@peer.example".into(),
            subject: format!("report {n}"),
            body: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            wants_dispatched: false,
            source: None,
            now: now(),
        };
        a.store.deliver(entry).await.unwrap();
    }
    let page = |path: String| {
        let a = &a;
        async move {
            let r = rest(a, "GET", &path, b"").await;
            assert_eq!(r.status, 200, "{path}");
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
        }
    };
    let mut path = "/api/v1/messages?limit=2".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = page(path).await;
        pages += 1;
        let got = p["messages"].as_array().unwrap();
        assert!(got.len() <= 2, "{p}");
        seen.extend(
            got.iter()
                .map(|m| m["message_id"].as_str().unwrap().to_string()),
        );
        match p["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "2 + 2 + 1");
    let want: Vec<String> = (0..5).map(|n| format!("<page-{n}@peer.example>")).collect();
    assert_eq!(seen, want, "every entry once, oldest first");
    let all = page("/api/v1/messages".to_string()).await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 5);
    assert!(all["next"].is_null());
    a.stop().await;
}
