//! `hisp bench exchange`: two daemons on loopback, N messages from alpha to beta, each one
//! exchange = message + `processed` MDN (sealed, relayed over SMTP with STARTTLS, spooled
//! with a durable commit, opened, delivered, answered, opened, matched). Prints exchanges/s
//! at saturation (the median of three rounds) beside the RSA ceiling measured in the same
//! run (one exchange costs four RSA-2048 private operations), each round beside the RSA
//! rate measured just before it, and the hop latency (submission at alpha to the commit
//! that delivers it into the mailbox at beta) at half that load, also in three rounds.
//! Submissions go straight into alpha's queue so the figure is the exchange, not the
//! users' logins.

use crate::bench::rsa_private_op_rate;
use anyhow::{bail, Result};
use hisp_server::clock::SystemClock;
use hisp_server::pair::{two_peers, Peer};
use hisp_server::smtp_handler::queue_submission;
use hisp_store::{NewOutbound, OutKind, QueueId, RcptState, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run the exchange benchmark.
pub fn run(messages: usize, sizes: &[usize], seconds: f64, rss_mib: usize) -> Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let root = std::env::temp_dir().join(format!("hisp-bench-exchange-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let mut result = rt.block_on(bench(&root, messages, sizes, seconds));
    if result.is_ok() && rss_mib > 0 {
        let rss_root = root.join("rss");
        result = rt
            .block_on(crate::bench_rss::measure(&rss_root, rss_mib))
            .map(|()| 0);
    }
    let _ = std::fs::remove_dir_all(&root);
    result
}

async fn bench(
    root: &std::path::Path,
    messages: usize,
    sizes: &[usize],
    seconds: f64,
) -> Result<u8> {
    let (mut a, mut b) = two_peers(root, crate::files::now()).await?;
    let clock = Arc::new(SystemClock);
    a.start(clock.clone()).await?;
    b.start(clock).await?;
    let cred = a
        .daemon()
        .and_then(|d| d.ctx.directory().domains.first().map(|x| x.cred.clone()));
    let Some(cred) = cred else {
        bail!("no credential")
    };
    let dur = Duration::from_secs_f64(seconds.max(0.5));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rsa_rate = |cred: hisp_direct::keys::Credential| async move {
        tokio::task::spawn_blocking(move || rsa_private_op_rate(&cred, threads, dur)).await?
    };
    let bulk =
        tokio::task::spawn_blocking(move || crate::bench::exchange_bulk_secs_per_mb(dur)).await??;
    let mut runs = Vec::new();
    let mut best_rsa: f64 = 0.0;
    for &size in sizes {
        let n = if size > 256 * 1024 {
            (messages / 10).max(10)
        } else {
            messages
        };
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            // The ceiling is measured just before each round, so a slow spell of the
            // machine shows in both figures of that round rather than in one of them.
            let slice = rsa_rate(cred.clone()).await?;
            best_rsa = best_rsa.max(slice);
            let (rate, elapsed, cpu) = saturate(&a, &b, size, n).await?;
            rounds.push(Round {
                slice,
                rate,
                elapsed,
                cpu,
            });
        }
        runs.push((size, n, rounds));
    }
    // Measured again after the runs and the highest figure kept, so a noisy neighbour
    // during one measurement cannot flatter the ratios.
    let rsa = best_rsa.max(rsa_rate(cred).await?);
    println!(
        "hisp bench exchange: two daemons on loopback (STARTTLS, durable commits), {threads} cores"
    );
    println!("  ceiling: RSA-2048 private ops/s {rsa:.0} ({threads} threads, the highest of {} measurements) => {:.0} exchanges/s at 4 ops each", sizes.len() * ROUNDS + 1, rsa / 4.0);
    println!(
        "  per size, the ceiling adds the bulk crypto (SHA-256 twice, {} both ways)",
        crate::bench::default_cipher().name().to_ascii_uppercase()
    );
    println!("  {ROUNDS} rounds per size; the table shows the median round");
    println!("\n  size      messages  exchanges/s  ceiling/s  of ceiling   elapsed");
    let mut first_rate = None;
    for (size, n, rounds) in runs {
        let ceiling = crate::bench::exchange_ceiling(size, rsa, threads, bulk);
        let mut sorted: Vec<&Round> = rounds.iter().collect();
        sorted.sort_by(|x, y| x.rate.total_cmp(&y.rate));
        let median = sorted[sorted.len() / 2];
        first_rate.get_or_insert(median.rate);
        println!(
            "  {:<8} {n:>9}  {:>11.1}  {ceiling:>9.0}  {:>9.1}%  {:>7.2} s",
            crate::bench::human(size),
            median.rate,
            median.rate / ceiling * 100.0,
            median.elapsed
        );
        let each: Vec<String> = rounds
            .iter()
            .map(|r| {
                let beside = crate::bench::exchange_ceiling(size, r.slice, threads, bulk);
                format!("{:.1} ({:.1}%)", r.rate, r.rate / beside * 100.0)
            })
            .collect();
        println!(
            "           rounds in order, exch/s (of the ceiling from the RSA slice just before): {}",
            each.join(", ")
        );
        if let Some(cpu) = median.cpu {
            print_cpu(size, n, median, cpu, threads, bulk);
        }
    }
    if let Some(rate) = first_rate {
        let size = sizes.first().copied().unwrap_or(10 * 1024);
        let n = (messages / 2).max(20);
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            // Each round starts quiet: the last one's MDNs are all in.
            wait_all(&a, &[], RcptState::Processed, Duration::from_secs(600)).await?;
            rounds.push(latency(&a, &b, size, rate / 2.0, n).await?);
        }
        print_latency(&rounds, rate / 2.0, n, size);
    }
    a.stop().await;
    b.stop().await;
    Ok(0)
}

/// Run the Postfix relay anchor script with `n` messages of 10 KiB and print its figure
/// (or why there is none) beside ours. One exchange relays two messages (the message and
/// its MDN), each signed, encrypted and sent over STARTTLS; Postfix's carry no crypto.
pub fn postfix_peer(script: &std::path::Path, n: usize) {
    println!(
        "\n  peer, measured now: {} (N={n}, INGEST=0)",
        script.display()
    );
    let busy_before = machine_busy_seconds();
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("N", n.to_string())
        .env("INGEST", "0")
        .output();
    let busy = machine_busy_seconds()
        .zip(busy_before)
        .map(|(after, before)| after - before);
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            match text.lines().find(|l| l.starts_with("postfix relay:")) {
                Some(line) => {
                    println!("    {line}");
                    if let Some(busy) = busy {
                        println!(
                            "    the machine's CPU meanwhile: {busy:.2} s = {:.2} ms per relayed message (smtp-source, smtp-sink and the instance's start and stop included)",
                            busy / n as f64 * 1000.0
                        );
                    }
                }
                None => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    let why = err.lines().last().unwrap_or("no output");
                    println!("    no figure ({}): {why}", o.status);
                }
            }
        }
        Err(e) => println!("    cannot run it: {e}"),
    }
    println!("    (one Hisp exchange relays two messages, each sealed and sent over STARTTLS)");
}

/// Saturation rounds per size.
const ROUNDS: usize = 3;

/// One saturation round: the RSA rate measured just before it, exchanges/s, seconds.
struct Round {
    slice: f64,
    rate: f64,
    elapsed: f64,
    /// CPU seconds the process (both daemons) used during the round, where known.
    cpu: Option<f64>,
}

/// Ticks per second of the CPU times in /proc (USER_HZ, which Linux fixes at 100).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, every thread) this process has used, from /proc/self/stat.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds the whole machine has been busy (every core; not idle, not waiting for
/// I/O), from the first line of /proc/stat.
/// Postfix runs as several processes, so its CPU is what the machine spent meanwhile.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let waiting = ticks.get(3)? + ticks.get(4)?;
    Some((total - waiting) as f64 / USER_HZ)
}

/// Where the median round's CPU went: per exchange, how much of it the ceiling counts
/// (its RSA operations at the rate measured just before the round, and the bulk crypto).
/// That share, times how busy the cores were, is about the share of the ceiling reached:
/// what the ceiling does not count (TLS, SMTP, MIME, base64, the store) is the gap.
fn print_cpu(size: usize, n: usize, round: &Round, cpu: f64, threads: usize, bulk: f64) {
    let per = cpu / n as f64 * 1000.0;
    let counted = crate::bench::exchange_work_secs(size, round.slice, threads, bulk) * 1000.0;
    let busy = cpu / (round.elapsed * threads as f64) * 100.0;
    println!(
        "           median round: {per:.2} ms of CPU per exchange, {busy:.0}% of {threads} cores busy; the ceiling's work is {counted:.2} ms of it ({:.0}%)",
        counted / per * 100.0
    );
}

/// Submission sessions at once in the saturation run.
const SUBMITTERS: usize = 64;

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = openssl::rand::rand_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn new_message(a: &Peer, b: &Peer, size: usize, i: usize) -> NewOutbound {
    let id = format!("<bench-{i}-{:x}@{}>", rand_u64(), a.domain);
    let body = crate::bench::message_for(&a.user, &b.user, &id, size);
    NewOutbound {
        sender: a.user.clone(),
        message_id: id,
        recipients: vec![b.user.clone()],
        body,
        wants_dispatched: false,
        kind: OutKind::Message,
        via: "bench".into(),
        now: crate::files::now(),
    }
}

/// Queue `n` messages at once and wait until every one is `processed` at alpha; returns
/// exchanges/s, seconds, and the CPU seconds the process used meanwhile.
async fn saturate(a: &Peer, b: &Peer, size: usize, n: usize) -> Result<(f64, f64, Option<f64>)> {
    let Some(d) = a.daemon() else {
        bail!("alpha is not running")
    };
    let msgs: Vec<NewOutbound> = (0..n).map(|i| new_message(a, b, size, i)).collect();
    let (start, cpu_before) = (Instant::now(), process_cpu_seconds());
    let ids = submit_concurrently(&d.ctx, msgs).await?;
    wait_all(a, &ids, RcptState::Processed, Duration::from_secs(600)).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    drain_mailbox(b).await?;
    Ok((n as f64 / elapsed, elapsed, cpu))
}

/// Queue `msgs` from [`SUBMITTERS`] tasks at once, as that many submission sessions would,
/// and return their queue ids. (One after another, each waited for its own commit, so the
/// queueing took nearly the whole run and set the pace instead of the exchange.)
async fn submit_concurrently<S: Store>(
    ctx: &Arc<hisp_server::context::Context<S>>,
    msgs: Vec<NewOutbound>,
) -> Result<Vec<QueueId>> {
    let queue = Arc::new(std::sync::Mutex::new(msgs.into_iter().enumerate()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBMITTERS {
        let (ctx, queue) = (ctx.clone(), queue.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, m)) = next else { break };
                match queue_submission(&ctx, m).await {
                    Ok(id) => ids.push((i, QueueId(id))),
                    Err(r) => return Err(anyhow::anyhow!("cannot queue: {r}")),
                }
            }
            Ok(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        ids.extend(done??);
    }
    ids.sort_by_key(|(i, _)| *i);
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

/// Wait until alpha has nothing left in flight (every recipient processed, or final), then
/// check each message once. Polling one count keeps the harness off the CPU it measures.
async fn wait_all(p: &Peer, ids: &[QueueId], want: RcptState, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while p.store.queue_depth().await? > 0 {
        if Instant::now() > deadline {
            bail!(
                "{} recipient(s) still in flight after {:?}",
                p.store.queue_depth().await?,
                limit
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ids {
        let r = p
            .store
            .outbound(id)
            .await?
            .and_then(|m| m.recipients.first().cloned());
        match r {
            Some(r) if r.state == want || r.state == RcptState::Dispatched => {}
            Some(r) => bail!(
                "{id} ended {}: {}",
                r.state.as_str(),
                r.last_error.unwrap_or_default()
            ),
            None => bail!("{id} vanished"),
        }
    }
    Ok(())
}

/// Mark everything in beta's mailbox picked up, so later polls stay small.
async fn drain_mailbox(b: &Peer) -> Result<usize> {
    let entries = b.store.mailbox(&b.user, false).await?;
    for e in &entries {
        b.store
            .mark_picked_up(&b.user, e.id, crate::files::now())
            .await?;
    }
    Ok(entries.len())
}

/// Submit at `rate` per second and time each message from queueing at alpha to the commit
/// that delivers it into the mailbox at beta (beta's [`Arrival`](hisp_server::context::Arrival)
/// carries the instant its commit returned); returns the percentiles and counts. Open loop,
/// as real senders are: each submission is its own task on a fixed schedule. A poller
/// (every millisecond) picks the mail up, as an edge client would, and ends the run once
/// every message is in; only a message whose arrival a lagging listener missed is timed
/// to when the poller saw it (counted in the result).
async fn latency(a: &Peer, b: &Peer, size: usize, rate: f64, n: usize) -> Result<Latency> {
    let (Some(da), Some(db)) = (a.daemon(), b.daemon()) else {
        bail!("a daemon is not running")
    };
    let gap = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let msgs: Vec<NewOutbound> = (0..n)
        .map(|i| new_message(a, b, size, 1_000_000 + i))
        .collect();
    let sent = Arc::new(std::sync::Mutex::new(HashMap::<String, Instant>::new()));
    let arrived = Arc::new(std::sync::Mutex::new(HashMap::<String, Instant>::new()));
    let mut arrivals = db.ctx.arrivals.subscribe();
    let arrived_by = arrived.clone();
    let listener = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match arrivals.recv().await {
                Ok(x) => {
                    if let Ok(mut m) = arrived_by.lock() {
                        m.insert(x.message_id, x.at);
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    let ctx = da.ctx.clone();
    let sent_by = sent.clone();
    let submitter = tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for m in msgs {
            tokio::time::sleep_until(next).await;
            next += gap;
            if let Ok(mut s) = sent_by.lock() {
                s.insert(m.message_id.clone(), Instant::now());
            }
            let ctx = ctx.clone();
            tasks.spawn(async move { queue_submission(&ctx, m).await.map(drop) });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(r) = done? {
                bail!("cannot queue: {r}");
            }
        }
        Ok(())
    });
    let (pick_tx, mut pick_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let (store, user) = (b.store.clone(), b.user.clone());
    let picker = tokio::spawn(async move {
        while let Some(id) = pick_rx.recv().await {
            store.mark_picked_up(&user, id, crate::files::now()).await?;
        }
        anyhow::Ok(())
    });
    let mut seen = std::collections::HashSet::new();
    let mut polled = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(300);
    while polled.len() < n {
        for e in b.store.mailbox(&b.user, false).await? {
            if !seen.insert(e.id) {
                continue;
            }
            polled.push((e.message_id, Instant::now()));
            let _ = pick_tx.send(e.id);
        }
        if Instant::now() > deadline {
            bail!("latency run did not finish");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(pick_tx);
    submitter.await??;
    picker.await??;
    listener.abort();
    let (sent, arrived) = (lock(&sent)?, lock(&arrived)?);
    let mut lat = Vec::with_capacity(n);
    let mut missed = 0;
    for (id, seen_at) in polled {
        let Some(t) = sent.get(&id) else { continue };
        let at = arrived.get(&id).copied().unwrap_or_else(|| {
            missed += 1;
            seen_at
        });
        lat.push(at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
    }
    if lat.is_empty() {
        bail!("no message of the latency run was timed");
    }
    lat.sort_by(|x, y| x.total_cmp(y));
    Ok(Latency { hops: lat, missed })
}

/// What one round of [`latency`] measured.
struct Latency {
    /// Each message's hop in milliseconds, in ascending order (never empty).
    hops: Vec<f64>,
    /// Messages timed to the poller because their arrival was missed.
    missed: usize,
}

impl Latency {
    /// The `p` quantile (0..=1) of the hops.
    fn pct(&self, p: f64) -> f64 {
        quantile(&self.hops, p)
    }
}

/// The `p` quantile of ascending `sorted` (0 if it is empty).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Print the latency rounds as the throughput ones are: the median round (by p99) first,
/// then every round in order and all hops pooled, so one slow spell of the machine shows
/// as one round rather than deciding the figure alone, and is still in plain sight.
fn print_latency(rounds: &[Latency], rate: f64, n: usize, size: usize) {
    let mut by_p99: Vec<&Latency> = rounds.iter().collect();
    by_p99.sort_by(|x, y| x.pct(0.99).total_cmp(&y.pct(0.99)));
    let Some(median) = by_p99.get(by_p99.len() / 2) else {
        return;
    };
    println!(
        "\n  hop latency at half load ({rate:.0} msg/s, {} rounds of {n} messages of {}, submission at alpha to the commit into beta's mailbox), median round: p50 {:.1} ms, p99 {:.1} ms",
        rounds.len(),
        crate::bench::human(size),
        median.pct(0.50),
        median.pct(0.99)
    );
    let each: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.1}/{:.1}", r.pct(0.50), r.pct(0.99)))
        .collect();
    let mut pooled: Vec<f64> = rounds.iter().flat_map(|r| r.hops.iter().copied()).collect();
    pooled.sort_by(|x, y| x.total_cmp(y));
    println!(
        "           rounds in order, p50/p99 ms: {}; all {} hops pooled: p50 {:.1} ms, p99 {:.1} ms",
        each.join(", "),
        pooled.len(),
        quantile(&pooled, 0.50),
        quantile(&pooled, 0.99)
    );
    let missed: usize = rounds.iter().map(|r| r.missed).sum();
    if missed > 0 {
        println!(
            "  ({missed} of them timed to when a poll saw them: their arrival notice was missed)"
        );
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| anyhow::anyhow!("a latency task panicked"))
}

#[cfg(test)]
mod tests {
    /// The machine's busy CPU (for the Postfix peer) and this process's CPU are read from
    /// /proc, and neither goes backwards; the process cannot have used more than the
    /// machine spent.
    #[test]
    fn cpu_counters_read_and_only_grow() {
        let (m0, p0) = (super::machine_busy_seconds(), super::process_cpu_seconds());
        std::hint::black_box((0..5_000_000u64).fold(0u64, |a, x| a.wrapping_add(x * x)));
        let (m1, p1) = (super::machine_busy_seconds(), super::process_cpu_seconds());
        let (m0, m1, p0, p1) = (m0.unwrap(), m1.unwrap(), p0.unwrap(), p1.unwrap());
        assert!(m0 > 0.0 && m1 >= m0, "{m0} then {m1}");
        assert!(p1 >= p0, "{p0} then {p1}");
        assert!(p1 <= m1, "process {p1} s, machine {m1} s");
    }
}
