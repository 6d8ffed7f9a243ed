//! docs/quickstart.md promises its first ```sh block "runs as written": this runs it with
//! bash (`set -euo pipefail`) in a temporary folder, with the debug `hisp` under test first
//! on PATH instead of `cargo build --release` (no rebuild), and checks what the block shows:
//! the recipient `dispatched` in `hisp queue`, both MDNs in Alice's mailbox, and the
//! message Bob's edge fetched over REST. The block's background `hisp serve` processes are
//! killed when it ends, fails or times out (EXIT trap, then the whole process group).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use daemon_support::{assert_ports_free, wait_until};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const QUICKSTART: &str = include_str!("../../../docs/quickstart.md");
/// The block sleeps 8 s and makes two instances; a debug build on a busy machine is slower.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The first ```sh block of the document.
fn first_sh_block(doc: &str) -> String {
    let mut lines = doc.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == "```sh")
        .expect("docs/quickstart.md has no ```sh block");
    let block: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    assert!(!block.is_empty(), "the ```sh block is empty");
    block.join("\n")
}

/// The value after each `flag` in the block (`--smtp-port 2525` → 2525).
fn ports_after(block: &str, flag: &str) -> Vec<u16> {
    let words: Vec<&str> = block.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| {
            w[1].parse()
                .unwrap_or_else(|_| panic!("{flag} {} is not a port", w[1]))
        })
        .collect()
}

/// The block with the build and PATH lines replaced by the test's binary folder and the
/// `cd "$(mktemp -d)"` by `workdir`, inside a wrapper that kills background jobs on exit.
fn script(block: &str, bin_dir: &Path, workdir: &Path) -> String {
    let mut out = String::from(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n",
    );
    let (mut build, mut path, mut cd) = (false, false, false);
    for line in block.lines() {
        let t = line.trim();
        if t == "cargo build --release" {
            build = true;
        } else if t.starts_with("export PATH=") && t.contains("target/release") {
            path = true;
            out.push_str(&format!("export PATH=\"{}:$PATH\"\n", bin_dir.display()));
        } else if t == "cd \"$(mktemp -d)\"" {
            cd = true;
            out.push_str(&format!("cd \"{}\"\n", workdir.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        build && path && cd,
        "the quickstart block changed: expected `cargo build --release` ({build}), \
         `export PATH=…target/release…` ({path}) and `cd \"$(mktemp -d)\"` ({cd}) lines:\n{block}"
    );
    out
}

/// `tool` is on PATH, or the test fails saying how to install it.
fn require(tool: &str) {
    let found = Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "docs/quickstart.md needs `{tool}` on PATH: apt-get install swaks libnet-ssleay-perl curl \
         (scripts/test installs swaks and libnet-ssleay-perl)"
    );
}

/// Kills the script's whole process group (bash and whatever it left running) on drop.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // The group id is the bash process's id (process_group(0)); only our own group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// docs/quickstart.md: the block runs as written and shows the promised outcome.
#[test]
fn quickstart_block_runs_as_written() {
    for tool in ["bash", "swaks", "curl"] {
        require(tool);
    }
    let block = first_sh_block(QUICKSTART);
    let mut ports = Vec::new();
    for flag in ["--smtp-port", "--submission-port", "--http-port"] {
        ports.extend(ports_after(&block, flag));
    }
    assert_eq!(
        ports.len(),
        6,
        "expected two instances with three ports each"
    );
    assert_ports_free(&ports, "docs/quickstart.md (fixed ports)");

    let tmp = common::workdir();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let bin_dir = Path::new(common::HISP).parent().unwrap();
    let text = script(&block, bin_dir, &work);
    let script_path = tmp.path().join("quickstart.sh");
    std::fs::write(&script_path, &text).unwrap();
    let (out_path, err_path) = (tmp.path().join("stdout"), tmp.path().join("stderr"));

    let start = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script_path)
        .current_dir(&work)
        .env_remove("HISP_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("cannot start bash");
    let _guard = GroupGuard(child.id());
    let mut status = None;
    let finished = wait_until(SCRIPT_TIMEOUT, Duration::from_millis(50), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let report = format!("script:\n{text}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        finished,
        "the quickstart block did not finish within {SCRIPT_TIMEOUT:?}\n{report}"
    );
    let status = status.unwrap();
    eprintln!(
        "quickstart block ran in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(status.success(), "the block failed: {status}\n{report}");
    assert!(!stderr.contains("panicked"), "hisp panicked\n{report}");

    // 7. `hisp queue`: the recipient line of the referral shows `dispatched`.
    let rcpt_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("bob@direct.beta.example"))
        .collect();
    assert!(
        rcpt_lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some("dispatched")),
        "`hisp queue` does not show bob@direct.beta.example dispatched: {rcpt_lines:?}\n{report}"
    );

    // 7. `hisp mailbox`: Alice holds both MDNs (processed and dispatched).
    let listing = stdout
        .split("mailbox of alice@direct.alpha.example")
        .nth(1)
        .unwrap_or_else(|| panic!("no `hisp mailbox` listing for alice\n{report}"));
    let mdns = listing
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|id| id.starts_with('#')) && w.next() == Some("mdn")
        })
        .count();
    assert_eq!(mdns, 2, "alice's mailbox should list 2 MDNs\n{report}");

    // 6. Bob's edge fetched the message itself (RFC 5322, the submitted Subject).
    assert!(
        stdout.lines().any(|l| l.trim_end() == "Subject: Referral"),
        "bob's REST fetch did not print the message (Subject: Referral)\n{report}"
    );

    // The block's `kill` and our trap left nothing listening.
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            ports.iter().all(|p| !daemon_support::port_open(*p))
        }),
        "a daemon of the quickstart still listens on one of {ports:?}"
    );
}
