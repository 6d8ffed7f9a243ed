//! `hisp bench seal-open`: seal/s and open/s at 10 KiB, 1 MiB and 20 MiB on N threads,
//! printed beside the machine's ceiling measured in the same run with the same library
//! (RSA-2048 private operations per second; throughput of the default content cipher and
//! SHA-256), and the peak resident memory of `hisp open` on a 100 MiB message. Figures,
//! not assertions.

use anyhow::{bail, Context, Result};
use hisp_direct::alg::{ContentCipher, Profile};
use hisp_direct::keys::Credential;
use hisp_direct::open::{open, OpenOptions};
use hisp_direct::pki::{self, LeafSpec};
use hisp_direct::seal::{seal, SealOptions};
use hisp_direct::trust::TrustAnchors;
use openssl::symm::{Crypter, Mode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Arguments of `hisp bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// What to measure: `seal-open` (the core), `exchange` (two daemons) or `discovery`.
    #[arg(default_value = "seal-open")]
    what: String,
    /// Messages per size for `exchange` (a tenth of it above 256 KiB).
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Message sizes, e.g. 10k,1m,20m (default 10k,1m,20m; exchange: 10k,1m).
    #[arg(long)]
    sizes: Option<String>,
    /// Size in MiB of the message whose open is measured for peak memory (0 = skip).
    #[arg(long, default_value_t = 100)]
    rss_mib: usize,
    /// `exchange`: also run this Postfix relay script (e.g. ../shared/bench/postfix-relay.sh)
    /// in the same run and print what Postfix relays (10 KiB, durable queue, no crypto).
    #[arg(long)]
    postfix: Option<std::path::PathBuf>,
}

struct Party {
    cred: Credential,
    /// Parsed certificates of peers, kept across messages as the daemon keeps them.
    cache: hisp_direct::cert::CertCache,
    anchors: TrustAnchors,
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

/// Run the benchmark.
pub fn run(a: &BenchArgs) -> Result<u8> {
    if a.what == "exchange" {
        let sizes = parse_sizes(a.sizes.as_deref().unwrap_or("10k,1m"))?;
        let code = crate::bench_exchange::run(a.messages, &sizes, a.seconds, a.rss_mib)?;
        if let Some(script) = &a.postfix {
            crate::bench_exchange::postfix_peer(script, a.messages.clamp(1000, 10_000));
        }
        return Ok(code);
    }
    if a.what == "discovery" {
        return crate::bench_discovery::run(a.threads.max(1), a.seconds);
    }
    if a.what != "seal-open" {
        bail!(
            "unknown benchmark {:?}: try `hisp bench seal-open`, `exchange` or `discovery`",
            a.what
        );
    }
    let dur = Duration::from_secs_f64(a.seconds.max(0.2));
    let n = a.threads.max(1);
    let sizes = parse_sizes(a.sizes.as_deref().unwrap_or("10k,1m,20m"))?;
    let now = crate::files::now();
    let sender = party("bench-a.example", now)?;
    let receiver = party("bench-b.example", now)?;
    println!(
        "hisp bench seal-open: {n} thread(s), {:.1} s per figure, {}",
        dur.as_secs_f64(),
        openssl::version::version()
    );
    println!("\nCeiling, measured now with the same library:");
    let ceiling = Ceiling::measure(n, dur, &sender.cred)?;
    ceiling.print(n);
    println!(
        "\n  size       seal/s     open/s   seal MB/s  open MB/s   seal/ceiling  open/ceiling"
    );
    let mut rows = Vec::new();
    for size in sizes {
        let msg = message(size);
        let opts = SealOptions::new(now);
        let sealed = seal(&msg, &sender.cred, &[receiver.cred.cert()], &opts)?;
        let seal_op = whole(|| {
            seal(&msg, &sender.cred, &[receiver.cred.cert()], &opts)
                .map(|_| ())
                .map_err(Into::into)
        });
        let open_op = || open_ok(&sealed, &receiver, &sender, now);
        if size <= RSA_BOUND {
            // Where RSA is the ceiling, it is measured in slices alternating with the seal
            // and open slices, so a neighbour's load during the run weighs on all three.
            let rsa_op = whole(|| rsa_private_op(&sender.cred));
            let r = interleaved(n, dur, &[&rsa_op, &seal_op, &open_op])?;
            let spread = [r.round_ratios(1, 0), r.round_ratios(2, 0)];
            rows.push((
                size,
                msg.len(),
                r.rates[1],
                r.rates[2],
                Some((r.rates[0], spread)),
            ));
        } else {
            rows.push((
                size,
                msg.len(),
                rate(n, dur, seal_op)?,
                rate(n, dur, open_op)?,
                None,
            ));
        }
    }
    // The ceiling is measured again after the runs and the higher figure kept, so a noisy
    // neighbour during the first measurement cannot flatter the ratios.
    let ceiling = ceiling.max(&Ceiling::measure(n, dur, &sender.cred)?);
    for (size, bytes, s, o, rsa_beside) in rows {
        let mb = bytes as f64 / 1e6;
        let (cs, co, what) = match rsa_beside {
            Some((rsa, _)) => (s / rsa, o / rsa, "RSA"),
            None => (
                s * mb / ceiling.bulk_seal(n),
                o * mb / ceiling.bulk_open(n),
                "AES+SHA",
            ),
        };
        println!(
            "  {:<8} {s:>9.1}  {o:>9.1}  {:>9.1}  {:>9.1}   {:>6.1}% {what:<7} {:>6.1}% {what}",
            human(size),
            s * mb,
            o * mb,
            cs * 100.0,
            co * 100.0
        );
        if let Some((rsa, [seal_rounds, open_rounds])) = rsa_beside {
            println!(
                "             RSA ceiling in the same slices {rsa:.0} ops/s; against the best separate one ({:.0}): seal {:.1}%, open {:.1}%",
                ceiling.rsa_n,
                s / ceiling.rsa_n * 100.0,
                o / ceiling.rsa_n * 100.0
            );
            println!(
                "             per round, beside the RSA slice just before (min / median / max): seal {}, open {}",
                spread_text(seal_rounds),
                spread_text(open_rounds)
            );
        }
    }
    println!("\n  (bulk ratios use the higher of two ceiling measurements, before and after)");
    ceiling.print(n);
    if a.rss_mib > 0 {
        peak_rss(a.rss_mib, &sender, &receiver, now)?;
    }
    Ok(0)
}

fn party(domain: &str, now: i64) -> Result<Party> {
    let ca = pki::new_root_ca(
        &format!("Bench CA {domain}"),
        now - 3600,
        now + 86_400,
        2048,
    )?;
    let leaf = pki::issue_leaf(&ca, &LeafSpec::domain(domain, now - 3600, now + 86_400))?;
    Ok(Party {
        ca_pem: ca.cert_pem()?,
        cert_pem: leaf.cert_pem()?,
        key_pem: leaf.key_pem()?,
        anchors: TrustAnchors::new(vec![ca.cert]),
        cache: hisp_direct::cert::CertCache::new(1024),
        cred: Credential::new(leaf.cert, leaf.key, vec![])?,
    })
}

/// Open `sealed` and return the time the open took. `open` consumes its input, as the
/// daemon hands it the buffer the message arrived in; the copy made here to have one to
/// hand is the harness's work, not the open's, and is not counted (at 20 MiB it was a
/// tenth of the time).
fn open_ok(sealed: &[u8], me: &Party, peer: &Party, now: i64) -> Result<Duration> {
    let profile = Profile::strict();
    let mut opts = OpenOptions::new(std::slice::from_ref(&me.cred), &peer.anchors, now, &profile);
    opts.cert_cache = Some(&me.cache);
    let input = sealed.to_vec();
    let start = Instant::now();
    let o = open(input, &opts);
    let took = start.elapsed();
    if !o.verdict.ok() {
        bail!("benchmark open failed: {:?}", o.verdict.errors);
    }
    Ok(took)
}

/// What the machine can do at most, measured with the library Hisp uses.
struct Ceiling {
    rsa_1: f64,
    rsa_n: f64,
    aes_enc: f64,
    aes_dec: f64,
    sha: f64,
}

impl Ceiling {
    fn measure(n: usize, dur: Duration, cred: &Credential) -> Result<Ceiling> {
        Ok(Ceiling {
            rsa_1: rate(1, dur, whole(|| rsa_private_op(cred)))?,
            rsa_n: rate(n, dur, whole(|| rsa_private_op(cred)))?,
            aes_enc: throughput(dur, |b| aes(b, Mode::Encrypt))?,
            aes_dec: throughput(dur, |b| aes(b, Mode::Decrypt))?,
            sha: throughput(dur, |b| Ok(openssl::sha::sha256(b).len()))?,
        })
    }

    fn max(&self, o: &Ceiling) -> Ceiling {
        Ceiling {
            rsa_1: self.rsa_1.max(o.rsa_1),
            rsa_n: self.rsa_n.max(o.rsa_n),
            aes_enc: self.aes_enc.max(o.aes_enc),
            aes_dec: self.aes_dec.max(o.aes_dec),
            sha: self.sha.max(o.sha),
        }
    }

    /// MB/s a seal cannot beat on `n` threads: one digest pass and one encryption pass.
    fn bulk_seal(&self, n: usize) -> f64 {
        n as f64 / (1.0 / self.sha + 1.0 / self.aes_enc)
    }

    /// MB/s an open cannot beat: one decryption pass and one digest pass.
    fn bulk_open(&self, n: usize) -> f64 {
        n as f64 / (1.0 / self.sha + 1.0 / self.aes_dec)
    }

    fn print(&self, n: usize) {
        println!(
            "  RSA-2048 private ops/s   {:>10.0} (1 thread)  {:>10.0} ({n} threads)",
            self.rsa_1, self.rsa_n
        );
        println!(
            "  {} encrypt MB/s {:>10.0}   decrypt MB/s {:>8.0}   SHA-256 MB/s {:>8.0} (1 thread)",
            default_cipher().name().to_ascii_uppercase(),
            self.aes_enc,
            self.aes_dec,
            self.sha
        );
        println!(
            "  => bulk ceiling ({n} threads): seal {:.0} MB/s, open {:.0} MB/s",
            self.bulk_seal(n),
            self.bulk_open(n)
        );
    }
}

/// Messages up to this size are bounded by RSA, larger ones by AES and SHA.
const RSA_BOUND: usize = 64 * 1024;

/// Slices per figure in [`interleaved`].
const SLICES: u32 = 9;

/// An operation to measure: runs once and returns the time to count for it.
type Op<'a> = &'a (dyn Fn() -> Result<Duration> + Sync);

/// An operation all of whose time counts.
fn whole(f: impl Fn() -> Result<()> + Sync) -> impl Fn() -> Result<Duration> + Sync {
    move || {
        let start = Instant::now();
        f()?;
        Ok(start.elapsed())
    }
}

/// What [`interleaved`] measured.
struct Interleaved {
    /// Operations per second of each op over all its slices.
    rates: Vec<f64>,
    /// Operations per second of each op in each round.
    rounds: Vec<Vec<f64>>,
}

impl Interleaved {
    /// Op `num`'s rate over op `den`'s, round by round, sorted: slices of one round run
    /// within a second of each other, so a neighbour's load weighs on both alike.
    fn round_ratios(&self, num: usize, den: usize) -> Vec<f64> {
        let mut v: Vec<f64> = self.rounds.iter().map(|r| r[num] / r[den]).collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// Sorted ratios as "min / median / max" percentages.
fn spread_text(sorted: Vec<f64>) -> String {
    match (sorted.first(), sorted.last()) {
        (Some(lo), Some(hi)) => format!(
            "{:.1}% / {:.1}% / {:.1}%",
            lo * 100.0,
            sorted[sorted.len() / 2] * 100.0,
            hi * 100.0
        ),
        _ => "none".into(),
    }
}

/// Operations per second of each of `ops`, measured in [`SLICES`] rounds of alternating
/// slices that together last `dur` per operation.
fn interleaved(threads: usize, dur: Duration, ops: &[Op<'_>]) -> Result<Interleaved> {
    let mut done = vec![(0u64, 0f64); ops.len()];
    let mut rounds = Vec::new();
    for _ in 0..SLICES {
        let mut round = Vec::new();
        for (f, (count, secs)) in ops.iter().zip(done.iter_mut()) {
            let (c, s) = run_for(threads, dur / SLICES, f)?;
            *count += c;
            *secs += s;
            round.push(c as f64 / s);
        }
        rounds.push(round);
    }
    let rates = done.into_iter().map(|(c, s)| c as f64 / s).collect();
    Ok(Interleaved { rates, rounds })
}

/// Operations per second of `f` on `threads` threads for `dur`.
fn rate(threads: usize, dur: Duration, f: impl Fn() -> Result<Duration> + Sync) -> Result<f64> {
    let (count, secs) = run_for(threads, dur, f)?;
    Ok(count as f64 / secs)
}

/// How many times `threads` threads ran `f` in about `dur`, and the seconds counted for
/// them (what `f` reported, averaged over the threads: the wall time all were busy).
fn run_for(
    threads: usize,
    dur: Duration,
    f: impl Fn() -> Result<Duration> + Sync,
) -> Result<(u64, f64)> {
    let count = AtomicU64::new(0);
    let nanos = AtomicU64::new(0);
    let start = Instant::now();
    let failed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut busy = Duration::ZERO;
                    while start.elapsed() < dur {
                        busy += f()?;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    let busy = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
                    nanos.fetch_add(busy, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join())
            .find(|r| !matches!(r, Ok(Ok(()))))
    });
    if let Some(r) = failed {
        return match r {
            Ok(Err(e)) => Err(e),
            _ => bail!("a benchmark thread panicked"),
        };
    }
    let busy = nanos.load(Ordering::Relaxed) as f64 / 1e9 / threads.max(1) as f64;
    Ok((count.load(Ordering::Relaxed), busy))
}

/// Seconds of one core that the bulk passes of one exchange cost per MB of message: the
/// passes Direct requires (digest and encrypt to seal, decrypt and digest to open), from
/// rates measured now on one thread.
pub fn exchange_bulk_secs_per_mb(dur: Duration) -> Result<f64> {
    let sha = throughput(dur, |b| Ok(openssl::sha::sha256(b).len()))?;
    let enc = throughput(dur, |b| aes(b, Mode::Encrypt))?;
    let dec = throughput(dur, |b| aes(b, Mode::Decrypt))?;
    Ok(2.0 / sha + 1.0 / enc + 1.0 / dec)
}

/// Exchanges/s that `threads` cores cannot exceed for a `size`-byte message: each costs
/// [`exchange_work_secs`].
pub fn exchange_ceiling(size: usize, rsa_n: f64, threads: usize, bulk_per_mb: f64) -> f64 {
    threads as f64 / exchange_work_secs(size, rsa_n, threads, bulk_per_mb)
}

/// CPU seconds of the work the ceiling counts in one exchange of a `size`-byte message:
/// four RSA private operations (`rsa_n` per second on all `threads`) and the bulk passes
/// ([`exchange_bulk_secs_per_mb`]).
pub fn exchange_work_secs(size: usize, rsa_n: f64, threads: usize, bulk_per_mb: f64) -> f64 {
    4.0 * threads as f64 / rsa_n + size as f64 / 1e6 * bulk_per_mb
}

/// MB/s of `f` over a 4 MiB buffer on one thread.
fn throughput(dur: Duration, f: impl Fn(&[u8]) -> Result<usize>) -> Result<f64> {
    let buf = vec![0x5au8; 4 << 20];
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut sink = 0usize;
    while start.elapsed() < dur / 2 {
        sink = sink.wrapping_add(f(&buf)?);
        bytes += buf.len() as u64;
    }
    std::hint::black_box(sink);
    Ok(bytes as f64 / 1e6 / start.elapsed().as_secs_f64())
}

/// The content cipher a seal uses unless told otherwise: the bulk ceiling is its throughput.
pub fn default_cipher() -> ContentCipher {
    SealOptions::new(0).cipher
}

fn aes(buf: &[u8], mode: Mode) -> Result<usize> {
    thread_local! {
        // Allocated once: zeroing a fresh 4 MiB output at every call was timed with the
        // cipher and lowered the bulk ceiling (by about 1 % of the run's samples).
        static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let cipher = default_cipher();
    let key = vec![7u8; cipher.key_len()];
    let iv = [9u8; 16];
    let mut c = Crypter::new(cipher.openssl(), mode, &key, Some(&iv))?;
    c.pad(false);
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        out.resize(buf.len() + 32, 0);
        Ok(c.update(buf, &mut out)?)
    })
}

/// One RSA-2048 private-key operation through the RSA method directly, the cheapest way
/// OpenSSL offers (and the way Hisp itself signs and decrypts).
fn rsa_private_op(cred: &Credential) -> Result<()> {
    let rsa = cred.key().rsa()?;
    let mut sig = vec![0u8; rsa.size() as usize];
    rsa.private_encrypt(&[1u8; 51], &mut sig, openssl::rsa::Padding::PKCS1)?;
    Ok(())
}

fn parse_sizes(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|p| {
            let p = p.trim().to_ascii_lowercase();
            let (num, mult) = match p.chars().last() {
                Some('k') => (&p[..p.len() - 1], 1024),
                Some('m') => (&p[..p.len() - 1], 1024 * 1024),
                _ => (p.as_str(), 1),
            };
            num.parse::<usize>()
                .map(|v| v * mult)
                .with_context(|| format!("bad size {p:?}"))
        })
        .collect()
}

/// `10 KiB`, `20 MiB`.
pub fn human(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}

/// A message of about `size` bytes: headers and a base64 attachment, as clinical mail is.
pub fn message(size: usize) -> Vec<u8> {
    message_for(
        "a@bench-a.example",
        "b@bench-b.example",
        "<bench@bench-a.example>",
        size,
    )
}

/// [`message`] with the given sender, recipient and Message-ID.
pub fn message_for(from: &str, to: &str, id: &str, size: usize) -> Vec<u8> {
    let mut m = format!("From: {from}\r\nTo: {to}\r\nSubject: bench\r\nMessage-ID: {id}\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n").into_bytes();
    let raw: Vec<u8> = (0..size.saturating_sub(m.len()) * 3 / 4)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    hisp_direct::mime::base64::encode_lines(&raw, &mut m);
    m
}

/// RSA-2048 private operations per second on `threads` threads.
pub fn rsa_private_op_rate(cred: &Credential, threads: usize, dur: Duration) -> Result<f64> {
    rate(threads, dur, whole(|| rsa_private_op(cred)))
}

fn peak_rss(mib: usize, sender: &Party, receiver: &Party, now: i64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("hisp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<()> {
        let msg = message(mib << 20);
        let sealed = seal(
            &msg,
            &sender.cred,
            &[receiver.cred.cert()],
            &SealOptions::new(now),
        )?;
        drop(msg);
        for (name, bytes) in [
            ("sealed.eml", &sealed),
            ("ca.pem", &sender.ca_pem),
            ("cert.pem", &receiver.cert_pem),
            ("key.pem", &receiver.key_pem),
        ] {
            std::fs::write(dir.join(name), bytes)?;
        }
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg("open")
            .args([
                "--cert",
                "cert.pem",
                "--key",
                "key.pem",
                "--anchor",
                "ca.pem",
                "--in",
                "sealed.eml",
                "--out",
                "/dev/null",
                "--report-peak-rss",
            ])
            .current_dir(&dir)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kb: f64 = stderr
            .lines()
            .find_map(|l| {
                l.strip_prefix("peak-rss ")?
                    .trim_end_matches(" kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("hisp open did not report its memory: {stderr}"))?;
        if !out.status.success() {
            bail!("hisp open failed on the large message: {stderr}");
        }
        let rss = kb * 1024.0;
        println!(
            "\nPeak RSS of `hisp open` on a {mib} MiB message ({:.0} MiB sealed): {:.0} MiB = {:.2} x the sealed size, {:.2} x the message size",
            sealed.len() as f64 / 1048576.0,
            rss / 1048576.0,
            rss / sealed.len() as f64,
            rss / (mib << 20) as f64
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
