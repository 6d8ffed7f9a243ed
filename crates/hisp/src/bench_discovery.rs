//! `hisp bench discovery`: certificate discovery against a BIND started for the run (the
//! bind9 package's `named` on a loopback port), with figures beside a peer measured in the
//! same run: cold DNS CERT lookups against `dig` asking the same names in one process,
//! cold full discoveries (DNS, parsing, the selection rules), and warm lookups/s from the
//! result cache on every thread.

use anyhow::{bail, Context, Result};
use hisp_direct::alg::Profile;
use hisp_direct::pki::{issue_leaf_for_key, new_root_ca, LeafSpec};
use hisp_direct::trust::TrustAnchors;
use hisp_discovery::cache::CachedDiscovery;
use hisp_discovery::dns::DnsCerts;
use hisp_discovery::record::address_owner;
use hisp_discovery::select::Policy;
use hisp_discovery::testservers::{cert_line, Named};
use hisp_discovery::Discovery;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Addresses published in the zone.
const ADDRESSES: usize = 500;

/// Run the discovery benchmark on `threads` threads for `seconds` per measurement.
pub fn run(threads: usize, seconds: f64) -> Result<u8> {
    if std::process::Command::new("named")
        .arg("-v")
        .output()
        .is_err()
    {
        bail!("`hisp bench discovery` runs BIND: install the bind9 and bind9-dnsutils packages");
    }
    let now = crate::files::now();
    let ca = new_root_ca("Bench Discovery CA", now - 86_400, now + 86_400 * 365, 2048)?;
    let key = hisp_direct::pki::generate_rsa(2048)?;
    let addresses: Vec<String> = (0..ADDRESSES)
        .map(|i| format!("user{i}@bench.test"))
        .collect();
    let mut zone = Vec::new();
    for a in &addresses {
        let spec = LeafSpec::address(a, now - 3600, now + 86_400 * 30);
        let leaf = issue_leaf_for_key(&ca, &spec, key.clone())?;
        let local = a.split('@').next().unwrap_or_default();
        zone.push(cert_line(local, &leaf.cert.to_der()?));
    }
    let named = Named::start("bench.test", &zone.join("\n"));
    let anchors = TrustAnchors::new(vec![ca.cert.clone()]);
    println!(
        "hisp bench discovery: {ADDRESSES} addresses with one CERT each, BIND {} on loopback",
        named.addr
    );

    let dig = dig_per_query(&named, &addresses)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let cold_dns = rt.block_on(cold_dns(&named, &addresses))?;
    println!(
        "  cold DNS CERT lookup:   {:>8.1} µs   (dig, same names, one process: {:>8.1} µs) = {:.2} × dig",
        cold_dns * 1e6,
        dig * 1e6,
        cold_dns / dig
    );
    let profile = Profile::strict();
    let policy = Policy {
        anchors: &anchors,
        intermediates: &[],
        crls: &[],
        at: now,
        profile: &profile,
    };
    let timeout = Duration::from_secs(2);
    let cached = Arc::new(CachedDiscovery::new(
        Discovery::new(DnsCerts::at(named.addr, timeout), timeout),
        100_000,
    ));
    let started = Instant::now();
    rt.block_on(async {
        for a in &addresses {
            let f = cached.discover(a, &policy).await?;
            if f.usable.len() != 1 {
                bail!("{a}: expected one usable certificate, got {:?}", f.rejected);
            }
        }
        Ok(())
    })?;
    let cold_full = started.elapsed().as_secs_f64() / ADDRESSES as f64;
    println!(
        "  cold discovery (DNS, parse, chain, binding): {:>8.1} µs each",
        cold_full * 1e6
    );
    let warm = warm_rate(&rt, &cached, &anchors, &addresses, threads, seconds, now)?;
    println!("  warm discovery from the cache: {warm:>12.0} lookups/s on {threads} threads");
    let (ms, n) = rt.block_on(bundle_load(now))?;
    println!(
        "  signed trust bundle of {n} anchors: fetched (file), verified, stored in {ms:.0} ms"
    );
    Ok(0)
}

/// Milliseconds to fetch, verify and store a signed bundle of 500 anchors made with the
/// `openssl` command line (crl2pkcs7, then cms -sign), as `hisp trust refresh` does.
async fn bundle_load(now: i64) -> Result<(f64, usize)> {
    use hisp_store::{NewBundle, Store};
    let dir = std::env::temp_dir().join(format!("hisp-bench-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        let ca = new_root_ca(
            "Bench Bundle Issuer",
            now - 86_400,
            now + 86_400 * 365,
            2048,
        )?;
        let key = hisp_direct::pki::generate_rsa(2048)?;
        let mut pem = Vec::new();
        for i in 0..500 {
            let spec =
                LeafSpec::address(&format!("anchor{i}@bundle.test"), now - 3600, now + 86_400);
            pem.extend(issue_leaf_for_key(&ca, &spec, key.clone())?.cert.to_pem()?);
        }
        std::fs::write(dir.join("anchors.pem"), pem)?;
        // A pinned end-entity signer (keyUsage digitalSignature), as DirectTrust's is.
        let spec = LeafSpec::address("bundles@bench.test", now - 3600, now + 86_400);
        let signer = issue_leaf_for_key(&ca, &spec, key.clone())?;
        std::fs::write(dir.join("signer.pem"), signer.cert.to_pem()?)?;
        std::fs::write(
            dir.join("signer.key"),
            signer.key.private_key_to_pem_pkcs8()?,
        )?;
        let ossl = |args: &[&str]| -> Result<()> {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()?;
            if !out.status.success() {
                bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        ossl(&[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "anchors.pem",
            "-outform",
            "DER",
            "-out",
            "b.p7b",
        ])?;
        ossl(&[
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-in",
            "b.p7b",
            "-signer",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-md",
            "sha256",
            "-outform",
            "DER",
            "-out",
            "b.p7m",
        ])?;
        let store = hisp_store::sqlite::SqliteStore::open(&dir.join("bench.db"))?;
        let spec = NewBundle {
            url: format!("file://{}", dir.join("b.p7m").display()),
            domain: None,
            direction: None,
            signer_der: Some(signer.cert.to_der()?),
            refresh_secs: 86_400,
        };
        let id = store.add_bundle(spec, now).await?;
        let b = store
            .bundles()
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| anyhow::anyhow!("bundle vanished"))?;
        let fetcher = hisp_discovery::fetch::Fetcher::new(Duration::from_secs(10));
        let started = Instant::now();
        let n = hisp_server::bundles::refresh(&store, &fetcher, &b, now, &Profile::strict())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok::<_, anyhow::Error>((started.elapsed().as_secs_f64() * 1e3, n))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Seconds per CERT query when `dig` asks every name in one process (`-f`), so process
/// start-up is spread over all of them.
fn dig_per_query(named: &Named, addresses: &[String]) -> Result<f64> {
    let lines: Vec<String> = addresses
        .iter()
        .map(|a| {
            let owner = address_owner(a).map(|n| n.to_string()).unwrap_or_default();
            format!("{owner} CERT")
        })
        .collect();
    let port = named.addr.port().to_string();
    let started = Instant::now();
    let mut child = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "+tries=1",
            "+noall",
            "+answer",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("dig (bind9-dnsutils)")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(lines.join("\n").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let elapsed = started.elapsed().as_secs_f64();
    let answers = String::from_utf8_lossy(&out.stdout).lines().count();
    if answers < addresses.len() {
        bail!("dig answered {answers} of {} names", addresses.len());
    }
    Ok(elapsed / addresses.len() as f64)
}

/// Seconds per CERT lookup through a fresh resolver (nothing cached), one after another.
async fn cold_dns(named: &Named, addresses: &[String]) -> Result<f64> {
    let dns = DnsCerts::at(named.addr, Duration::from_secs(2));
    let started = Instant::now();
    for a in addresses {
        let answer = dns.lookup(&address_owner(a)?).await?;
        if answer.records().is_empty() {
            bail!("{a}: no CERT record");
        }
    }
    Ok(started.elapsed().as_secs_f64() / addresses.len() as f64)
}

fn warm_rate(
    rt: &tokio::runtime::Runtime,
    cached: &Arc<CachedDiscovery>,
    anchors: &TrustAnchors,
    addresses: &[String],
    threads: usize,
    seconds: f64,
    now: i64,
) -> Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let dur = Duration::from_secs_f64(seconds.max(0.5));
    let anchors = Arc::new(TrustAnchors::new(anchors.certs().to_vec()));
    let addresses = Arc::new(addresses.to_vec());
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..threads {
            let (cached, count) = (cached.clone(), count.clone());
            let (anchors, addresses) = (anchors.clone(), addresses.clone());
            tasks.push(tokio::spawn(async move {
                let profile = Profile::strict();
                let policy = Policy {
                    anchors: &anchors,
                    intermediates: &[],
                    crls: &[],
                    at: now,
                    profile: &profile,
                };
                let mut i = t;
                let mut n = 0u64;
                while started.elapsed() < dur {
                    for _ in 0..256 {
                        let a = &addresses[i % addresses.len()];
                        if cached.discover(a, &policy).await.is_err() {
                            return Err(anyhow::anyhow!("{a}: lookup failed"));
                        }
                        i += 7;
                        n += 1;
                    }
                }
                count.fetch_add(n, Ordering::Relaxed);
                Ok::<(), anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
