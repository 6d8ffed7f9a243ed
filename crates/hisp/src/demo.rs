//! `hisp demo`: two real daemons on loopback (instances made as `hisp init` makes them, in a
//! temporary folder), a clinical message from `dr.alice` submitted over SMTP (STARTTLS, AUTH),
//! relayed, opened and delivered at the peer, picked up over REST, and the timeline:
//! submitted → relayed → processed → dispatched. Exit 0 when it all happened.

use crate::files;
use anyhow::{anyhow, bail, Context as _, Result};
use hisp_server::clock::SystemClock;
use hisp_server::edge;
use hisp_server::pair::{two_peers, Peer};
use hisp_smtp::{ClientConfig, Envelope};
use hisp_store::{QueueId, RcptState, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run the demo.
pub fn run() -> Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile_dir()?;
    let result = rt.block_on(demo(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hisp-demo-{}-{}", std::process::id(), files::now()));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

async fn demo(root: &std::path::Path) -> Result<u8> {
    println!("Hisp demo: two HISPs on loopback, a Direct message end to end\n");
    let (mut a, mut b) = two_peers(root, files::now()).await?;
    for p in [&a, &b] {
        let c = &p.config;
        println!(
            "[setup] {}: relay {}, submission {}, http {}, user {}",
            p.domain, c.smtp.relay_listen, c.smtp.submission_listen, c.http.listen, p.user
        );
    }
    println!("[setup] each trusts the other's CA, routes to the other's relay port, and holds its certificate");
    let clock = Arc::new(SystemClock);
    a.start(clock.clone()).await?;
    b.start(clock).await?;
    let outcome = exchange(&a, &b).await;
    a.stop().await;
    b.stop().await;
    outcome?;
    Ok(0)
}

async fn exchange(a: &Peer, b: &Peer) -> Result<()> {
    let start = Instant::now();
    let ms = |t: Instant| t.duration_since(start).as_millis();
    let msg_id = format!("<{:016x}@{}>", rand_u64(), a.domain);
    let message = clinical_message(&a.user, &b.user, &msg_id);
    let env = Envelope {
        mail_from: a.user.clone(),
        rcpt_to: vec![b.user.clone()],
        body_8bit: false,
        declared_size: None,
    };
    let target = a.config.smtp.submission_listen.to_string();
    let sent = hisp_smtp::client::submit(
        &target,
        &client_config(&a.config)?,
        &a.user,
        &a.password,
        &env,
        &message,
    )
    .await?;
    let reply = sent.data_reply.ok_or_else(|| anyhow!("no reply to DATA"))?;
    if !reply.is_positive() {
        bail!("submission refused: {reply}");
    }
    let queue_id = QueueId(
        reply
            .lines
            .first()
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_default()
            .to_string(),
    );
    println!(
        "[1] {} submits a referral over SMTP submission (STARTTLS, AUTH PLAIN): {reply}",
        a.user
    );
    let relayed = wait_state(a, &queue_id, RcptState::Relayed).await?;
    println!(
        "[2] relayed: {} sealed it and {} accepted it on its relay port (+{} ms)",
        a.domain,
        b.domain,
        ms(relayed)
    );
    let (entry, at) = wait_mailbox(b).await?;
    println!(
        "[3] {} opened it (decrypted, signature valid, trusted, bound) into {}'s mailbox (+{} ms)",
        b.domain,
        b.user,
        ms(at)
    );
    let processed = wait_state(a, &queue_id, RcptState::Processed).await?;
    println!(
        "[4] processed MDN from {} matched at {} (+{} ms)",
        b.user,
        a.domain,
        ms(processed)
    );
    let http = b.config.http.listen.to_string();
    let creds = (b.user.as_str(), b.password.as_str());
    let fetched = edge::request(
        &http,
        "GET",
        &format!("/api/v1/messages/{entry}"),
        creds,
        b"",
    )
    .await?;
    let picked = edge::request(
        &http,
        "POST",
        &format!("/api/v1/messages/{entry}/pickup"),
        creds,
        b"",
    )
    .await?;
    if fetched.status != 200 || picked.status != 200 {
        bail!(
            "REST pickup failed: GET {} / POST {}",
            fetched.status,
            picked.status
        );
    }
    println!(
        "[5] {}'s edge fetched it over REST ({} bytes) and marked it picked up",
        b.user,
        fetched.body.len()
    );
    let dispatched = wait_state(a, &queue_id, RcptState::Dispatched).await?;
    println!(
        "[6] dispatched MDN matched at {} (+{} ms)",
        a.domain,
        ms(dispatched)
    );
    let events = a.store.events(&queue_id).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    println!(
        "\nTimeline of {queue_id} ({msg_id}) at {}: {}  ✔",
        a.domain,
        kinds.join(" → ")
    );
    Ok(())
}

pub fn client_config(c: &hisp_server::config::Config) -> Result<ClientConfig> {
    let connector = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())?.build();
    Ok(ClientConfig {
        helo: format!(
            "edge.{}",
            c.domains
                .first()
                .map(|d| d.name.as_str())
                .unwrap_or("localhost")
        ),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(30),
        data_timeout: Duration::from_secs(60),
        tls: Arc::new(connector),
        require_tls: true,
        verify_tls: false,
        bind: Vec::new(),
    })
}

async fn wait_state(p: &Peer, id: &QueueId, want: RcptState) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = p
            .store
            .outbound(id)
            .await?
            .ok_or_else(|| anyhow!("{id} is not in {}'s queue", p.domain))?;
        let r = m
            .recipients
            .first()
            .ok_or_else(|| anyhow!("{id} has no recipient"))?;
        if r.state == want
            || (want == RcptState::Relayed
                && matches!(r.state, RcptState::Processed | RcptState::Dispatched))
        {
            return Ok(Instant::now());
        }
        if r.state.is_final() && r.state != want {
            bail!(
                "{id} for {} ended {}: {}",
                r.rcpt,
                r.state.as_str(),
                r.last_error.as_deref().unwrap_or("no reason recorded")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{id} still {} after 30 s (waiting for {}): {}",
                r.state.as_str(),
                want.as_str(),
                r.last_error.as_deref().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_mailbox(p: &Peer) -> Result<(i64, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = p.store.mailbox(&p.user, false).await?.into_iter().next() {
            return Ok((e.id, Instant::now()));
        }
        if Instant::now() > deadline {
            let q = p.store.quarantined(5).await?;
            let why = q
                .first()
                .and_then(|m| m.reason.clone())
                .unwrap_or_else(|| "nothing quarantined".into());
            bail!("nothing reached {}'s mailbox in 30 s ({why})", p.user);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = openssl::rand::rand_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn clinical_message(from: &str, to: &str, id: &str) -> Vec<u8> {
    let date = hisp_direct::time::format_rfc5322(files::now());
    format!(
        "From: Dr Alice <{from}>\r\nTo: Dr Bob <{to}>\r\nSubject: Referral: cardiology consult\r\nDate: {date}\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\nDisposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\nContent-Type: multipart/mixed; boundary=\"part\"\r\n\r\n--part\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear Dr Bob, please see the attached summary of care (synthetic test patient).\r\n--part\r\nContent-Type: application/xml; name=\"summary.xml\"\r\nContent-Disposition: attachment; filename=\"summary.xml\"\r\n\r\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>Summary of care (test)</title></ClinicalDocument>\r\n--part--\r\n"
    )
    .into_bytes()
}
