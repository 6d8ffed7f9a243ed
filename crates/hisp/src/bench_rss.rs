//! `hisp bench exchange --rss-mib N`: the memory one large message costs each daemon.
//! Two `hisp serve` processes (fresh instances, as `hisp demo` makes them, with the size
//! limit raised), one message of N MiB submitted at alpha and carried to `processed`;
//! then each process's peak resident set (VmHWM) against its resident set before the
//! message, as a multiple of the message. Separate processes, so each figure is one
//! daemon's alone.

use anyhow::{anyhow, bail, Context, Result};
use hisp_server::pair::{two_peers, Peer};
use hisp_smtp::Envelope;
use hisp_store::{QueueId, RcptState, Store};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `hisp serve` child, killed when dropped.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn spawn(p: &Peer) -> Result<Daemon> {
        let log = std::fs::File::create(p.dir.join("serve.log"))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(p.dir.join("hisp.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start `hisp serve`")?;
        Ok(Daemon { child })
    }

    /// A field of /proc/PID/status, in KiB.
    fn status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc/{}/status", self.child.id()))
    }
}

/// Let both instances take messages of `limit` bytes.
fn raise_limit(p: &Peer, limit: usize) -> Result<()> {
    let path = p.dir.join("hisp.toml");
    let text = std::fs::read_to_string(&path)?;
    let raised = text.replacen(
        "[smtp]\n",
        &format!("[smtp]\nmax_message_bytes = {limit}\n"),
        1,
    );
    std::fs::write(&path, raised)?;
    Ok(())
}

async fn wait_listening(p: &Peer) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for addr in [
        p.config.smtp.relay_listen,
        p.config.smtp.submission_listen,
        p.config.http.listen,
    ] {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "{} did not start: see {}",
                    p.domain,
                    p.dir.join("serve.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Measure and print the per-daemon peak for one message of `mib` MiB.
pub async fn measure(root: &Path, mib: usize) -> Result<()> {
    let size = mib << 20;
    let (a, b) = two_peers(root, crate::files::now()).await?;
    for p in [&a, &b] {
        raise_limit(p, size * 2 + (16 << 20))?;
    }
    let (da, db) = (Daemon::spawn(&a)?, Daemon::spawn(&b)?);
    wait_listening(&a).await?;
    wait_listening(&b).await?;
    // Settle: the first TLS sessions and page-cache warm-up are not the message's cost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (da.status_kib("VmRSS:")?, db.status_kib("VmRSS:")?);
    let id = format!("<rss-{mib}m@{}>", a.domain);
    let message = crate::bench::message_for(&a.user, &b.user, &id, size);
    let env = Envelope {
        mail_from: a.user.clone(),
        rcpt_to: vec![b.user.clone()],
        body_8bit: false,
        declared_size: Some(message.len() as u64),
    };
    let mut cfg = crate::demo::client_config(&a.config)?;
    cfg.data_timeout = Duration::from_secs(600);
    let started = Instant::now();
    let target = a.config.smtp.submission_listen.to_string();
    let sent =
        hisp_smtp::client::submit(&target, &cfg, &a.user, &a.password, &env, &message).await?;
    drop(message);
    let reply = sent.data_reply.ok_or_else(|| anyhow!("no reply to DATA"))?;
    if !reply.is_positive() {
        bail!("submission refused: {reply}");
    }
    let queue_id = reply.lines.first().and_then(|l| l.rsplit(' ').next());
    let queue_id = QueueId(queue_id.unwrap_or_default().to_string());
    wait_processed(&a, &queue_id).await?;
    let took = started.elapsed().as_secs_f64();
    let peak = (da.status_kib("VmHWM:")?, db.status_kib("VmHWM:")?);
    println!(
        "\n  memory for one {mib} MiB message in flight (separate `hisp serve` processes, {took:.1} s to processed):"
    );
    for (name, (base, high)) in [
        ("sender  ", (before.0, peak.0)),
        ("receiver", (before.1, peak.1)),
    ] {
        let grew = high.saturating_sub(base) as f64 / 1024.0;
        println!(
            "    {name} peak RSS {:>6.0} MiB (idle {:>4.0} MiB): +{grew:.0} MiB = {:.2} × the message",
            high as f64 / 1024.0,
            base as f64 / 1024.0,
            grew / mib as f64
        );
    }
    Ok(())
}

async fn wait_processed(a: &Peer, id: &QueueId) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let r = a.store.outbound(id).await?;
        let r = r.and_then(|m| m.recipients.first().cloned());
        match r {
            Some(r) if matches!(r.state, RcptState::Processed | RcptState::Dispatched) => {
                return Ok(())
            }
            Some(r) if r.state.is_final() => bail!(
                "the large message ended {}: {}",
                r.state.as_str(),
                r.last_error.unwrap_or_default()
            ),
            _ if Instant::now() > deadline => bail!("the large message did not arrive in time"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
