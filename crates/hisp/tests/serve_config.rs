//! DESIGN §3 `hisp serve [--config FILE] [--check]` and STYLE §5: `--check` exits 0 on what
//! `hisp init` writes, and 1 naming each bad key otherwise (unknown keys in every table,
//! values that do not parse, files that do not load, listeners that collide); `hisp serve`
//! refuses to start on the same problems. The operator commands work while the daemon runs
//! and take effect without a restart (a user added after start can AUTH within seconds),
//! and `hisp queue --json` / `hisp mailbox --json` print JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod daemon_support;

use common::{assert_no_panic, run, Run};
use daemon_support::*;
use hisp_smtp::client::ClientError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `hisp serve --check --config FILE`.
fn check_config(config: &Path) -> Run {
    run(
        common::hisp()
            .args(["serve", "--check", "--config"])
            .arg(config),
        None,
    )
}

/// A fresh instance (free ports, loopback) under a new temporary folder.
fn fresh() -> (tempfile::TempDir, Instance) {
    let tmp = common::workdir();
    let inst = Instance::init(tmp.path(), "alpha", "direct.alpha.example");
    (tmp, inst)
}

/// Write `text` beside the instance's hisp.toml (so relative paths still resolve).
fn variant(inst: &Instance, name: &str, text: &str) -> PathBuf {
    let p = inst.dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// `--check` on `text` exits 1, without a panic, and stderr holds every needle.
fn assert_rejected(inst: &Instance, name: &str, text: &str, needles: &[&str]) -> Run {
    let path = variant(inst, name, text);
    let r = check_config(&path);
    assert_no_panic(&r);
    assert_eq!(
        r.code, 1,
        "{name}: --check should exit 1\nstderr: {}\nconfig:\n{text}",
        r.stderr
    );
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "{name}: stderr does not name {n:?}:\n{}",
            r.stderr
        );
    }
    r
}

/// DESIGN §3: `--check` accepts the configuration `hisp init` writes.
#[test]
fn design_3_check_accepts_fresh_init() {
    let (_tmp, inst) = fresh();
    let r = check_config(&inst.config);
    assert_no_panic(&r);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.trim_end().ends_with(": ok"), "stdout: {out}");
    assert!(r.stderr.trim().is_empty(), "stderr: {}", r.stderr);
}

/// `--check --print` (as Postfix's `postconf`) writes the configuration in force: the
/// defaults the file left out written out (computed ones included), the paths absolute, so
/// the text, saved anywhere, checks as it is; a key's password is never shown.
#[test]
fn check_print_writes_every_default_and_loads_from_anywhere() {
    let (tmp, inst) = fresh();
    let text = toml_set(&inst.config_text(), "domain", "key_password", "\"s3cret\"");
    let with_password = variant(&inst, "with-password", &text);
    let r = run(
        common::hisp()
            .args(["serve", "--check", "--print", "--config"])
            .arg(&with_password),
        None,
    );
    // init's key is not encrypted, and the loader ignores a password beside it.
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        !out.contains("s3cret") && !r.stderr.contains("s3cret"),
        "{out}"
    );
    assert!(out.contains("key_password(s) set and not shown"), "{out}");

    let r = run(
        common::hisp()
            .args(["serve", "--check", "--print", "--config"])
            .arg(&inst.config),
        None,
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let printed = String::from_utf8_lossy(&r.stdout).into_owned();
    for key in [
        "max_refused_recipients_per_ip = 100",
        "data_memory = 1073741824",
        "max_per_destination = 12",
        "retry_first = \"2m\"",
        "keep_records = \"forever\"",
    ] {
        assert!(printed.contains(key), "{key} missing:\n{printed}");
    }
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let copy = elsewhere.join("in-force.toml");
    std::fs::write(&copy, &printed).unwrap();
    let again = check_config(&copy);
    assert_eq!(again.code, 0, "the printed text checks: {}", again.stderr);
    let bare = run(common::hisp().args(["serve", "--print"]), None);
    assert_eq!(bare.code, 2, "--print needs --check: {}", bare.stderr);
}

/// STYLE §5 (hickory's bogus-key test): every table rejects a key it does not know, naming it.
#[test]
fn style_5_check_rejects_unknown_key_in_every_table() {
    let (_tmp, inst) = fresh();
    let text = inst.config_text();
    for table in [
        "server",
        "smtp",
        "queue",
        "retention",
        "domain",
        "crypto",
        "http",
    ] {
        let bad = toml_set(&text, table, "bogus_key", "1");
        assert_rejected(
            &inst,
            &format!("unknown-{table}"),
            &bad,
            &["unknown field", "bogus_key"],
        );
    }
    let bad = format!("{text}\n[extra]\na = 1\n");
    assert_rejected(&inst, "unknown-table", &bad, &["unknown field", "extra"]);
}

/// STYLE §5: values that parse but cannot work are reported one line per problem,
/// `FILE: dotted.key: reason`, all of them at once.
#[test]
fn style_5_check_names_each_bad_key() {
    let (_tmp, inst) = fresh();
    let text = inst.config_text();
    let relay = format!("\"127.0.0.1:{}\"", inst.relay_port);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "missing-tls-cert",
            toml_set(&text, "smtp", "tls_cert", "\"missing.pem\""),
            vec!["smtp.tls_cert", "missing.pem"],
        ),
        (
            "tls-key-of-other-cert",
            toml_set(&text, "smtp", "tls_key", "\"domain.key\""),
            vec!["smtp.tls_key"],
        ),
        (
            "retention-not-a-duration",
            toml_set(&text, "retention", "keep_picked_up_bodies", "\"soon\""),
            vec!["retention.keep_picked_up_bodies", "soon"],
        ),
        (
            "tls-cert-not-a-certificate",
            toml_set(&text, "smtp", "tls_cert", "\"domain.key\""),
            vec!["smtp.tls_cert", "domain.key", "not a certificate"],
        ),
        (
            "missing-domain-key",
            toml_set(&text, "domain", "key", "\"nowhere/domain.key\""),
            vec!["domain[0].key", "nowhere/domain.key"],
        ),
        (
            "domain-key-of-other-cert",
            toml_set(&text, "domain", "key", "\"tls.key\""),
            vec!["domain[0].key", "does not match"],
        ),
        (
            "missing-anchor",
            toml_set(&text, "domain", "anchors", "[\"ca.pem\", \"gone.pem\"]"),
            vec!["domain[0].anchors[1]", "gone.pem"],
        ),
        (
            "duplicate-submission-port",
            toml_set(&text, "smtp", "submission_listen", &relay),
            vec!["smtp.submission_listen", "already used"],
        ),
        (
            "duplicate-http-port",
            toml_set(&text, "http", "listen", &relay),
            vec!["http.listen", "already used"],
        ),
        (
            "retry-max-below-first",
            toml_set(&text, "queue", "retry_max", "\"1m\""),
            vec!["queue.retry_max"],
        ),
        (
            "bad-hostname",
            toml_set(&text, "server", "hostname", "\"not a host\""),
            vec!["server.hostname"],
        ),
    ];
    for (name, bad, needles) in &cases {
        let r = assert_rejected(&inst, name, bad, needles);
        let file = inst.dir.join(format!("{name}.toml"));
        for line in r.stderr.lines() {
            assert!(
                line.starts_with(&format!("{}: ", file.display())),
                "{name}: not a `FILE: key: reason` line: {line:?}"
            );
        }
    }
    // Several problems: each is named, one line each.
    let bad = toml_set(
        &toml_set(&text, "smtp", "tls_cert", "\"missing.pem\""),
        "domain",
        "key",
        "\"nowhere.key\"",
    );
    let r = assert_rejected(
        &inst,
        "two-problems",
        &bad,
        &["smtp.tls_cert", "domain[0].key"],
    );
    assert_eq!(r.stderr.lines().count(), 2, "stderr: {}", r.stderr);
}

/// Values of the wrong form are rejected, showing the key and the value (the TOML
/// parser's excerpt names the line).
#[test]
fn style_5_check_rejects_values_that_do_not_parse() {
    let (_tmp, inst) = fresh();
    let text = inst.config_text();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "bad-duration",
            toml_set(&text, "queue", "retry_first", "\"2 fortnights\""),
            vec!["retry_first", "2 fortnights", "not a duration"],
        ),
        (
            "bad-listen-address",
            toml_set(&text, "smtp", "relay_listen", "\"localhost:nope\""),
            vec!["relay_listen", "localhost:nope"],
        ),
        (
            "bad-listen-port",
            toml_set(&text, "http", "listen", "\"127.0.0.1:99999\""),
            vec!["listen", "99999"],
        ),
        (
            "cipher-rc4",
            toml_set(&text, "crypto", "cipher", "\"rc4\""),
            vec!["cipher", "rc4"],
        ),
        (
            "profile-lax",
            toml_set(&text, "crypto", "receive_profile", "\"lax\""),
            vec!["receive_profile", "lax"],
        ),
    ];
    for (name, bad, needles) in &cases {
        assert_rejected(&inst, name, bad, needles);
    }
}

/// STYLE §5 ("each problem holds a dotted key"; `hisp serve --check` prints
/// `hisp.toml: smtp.relay.listen: …`) for values that fail to parse too: the operator is
/// told `queue.retry_first`, not only shown a line excerpt.
#[test]
fn style_5_check_names_dotted_key_of_unparsable_values() {
    let (_tmp, inst) = fresh();
    let text = inst.config_text();
    let cases = [
        (
            "dotted-duration",
            toml_set(&text, "queue", "retry_first", "\"2 fortnights\""),
            "queue.retry_first",
        ),
        (
            "dotted-listen",
            toml_set(&text, "smtp", "relay_listen", "\"localhost:nope\""),
            "smtp.relay_listen",
        ),
        (
            "dotted-cipher",
            toml_set(&text, "crypto", "cipher", "\"rc4\""),
            "crypto.cipher",
        ),
    ];
    let mut unnamed = Vec::new();
    for (name, bad, key) in &cases {
        let r = check_config(&variant(&inst, name, bad));
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        if !r.stderr.contains(key) {
            unnamed.push(format!("{key}:\n{}", r.stderr));
        }
    }
    assert!(
        unnamed.is_empty(),
        "--check does not name the dotted key of {} unparsable value(s):\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}

/// DESIGN §3: `hisp serve` itself (not only `--check`) refuses a bad configuration with
/// exit 1 naming the key, and binds nothing.
#[test]
fn design_3_serve_refuses_to_start_on_bad_config() {
    let (_tmp, inst) = fresh();
    let bad = variant(
        &inst,
        "no-tls",
        &toml_set(&inst.config_text(), "smtp", "tls_cert", "\"missing.pem\""),
    );
    let r = run(common::hisp().arg("serve").arg("--config").arg(&bad), None);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("smtp.tls_cert"), "stderr: {}", r.stderr);
    for p in inst.ports() {
        assert!(!port_open(p), "something listens on {p}");
    }
}

/// `Err(Rejected { stage: "AUTH", .. })`: the credentials were refused.
/// `HISP_LOG_FORMAT=json`: every log line is one JSON object (for a log collector), here
/// the daemon's `hisp started` at info, and a bad configuration's problems as errors; any
/// other value is refused, naming the variable.
#[test]
fn json_logs_are_one_object_per_line() {
    let (_tmp, inst) = fresh();
    let log = inst.dir.join("json.log");
    let mut child = inst
        .serve_command()
        .env("HISP_LOG", "info")
        .env("HISP_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        text().contains("hisp started")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "no start logged:\n{}", text());
    let lines: Vec<serde_json::Value> = text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let start = lines
        .iter()
        .find(|v| v["fields"]["message"] == "hisp started")
        .expect("the start event");
    assert_eq!(start["level"], "INFO");
    assert!(start["fields"]["relay"].is_string(), "{start}");

    // A bad configuration is reported as JSON error events too, naming the key.
    let text = std::fs::read_to_string(&inst.config).unwrap();
    let broken = variant(
        &inst,
        "broken.toml",
        &text.replace("[smtp]", "[smtp]\nbogus = 1"),
    );
    let r = run(
        common::hisp()
            .env("HISP_LOG_FORMAT", "json")
            .args(["serve", "--config"])
            .arg(&broken),
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    for l in r.stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["level"], "ERROR");
    }
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);

    let bad = run(
        common::hisp()
            .env("HISP_LOG_FORMAT", "yaml")
            .args(["serve", "--check", "--config"])
            .arg(&inst.config),
        None,
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("HISP_LOG_FORMAT"), "{}", bad.stderr);
}

fn auth_refused(r: &Result<hisp_smtp::client::Delivery, ClientError>) -> bool {
    matches!(r, Err(ClientError::Rejected { stage: "AUTH", .. }))
}

/// The operator commands write the store while the daemon runs; the daemon uses what they
/// wrote without a restart: a user added after start authenticates on the submission port
/// within ~5 s, and `hisp queue --json` / `hisp mailbox --json` print JSON meanwhile.
#[test]
fn operator_commands_take_effect_while_serving() {
    let (_tmp, inst) = fresh();
    inst.add_user(ALICE, ALICE_PASSWORD);
    let mut daemon = Daemon::start(&inst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = submission_client();
    let carol = "carol@direct.alpha.example";
    let password = "carol-password";
    let message_id = format!("<serve-config-{}@direct.alpha.example>", std::process::id());
    let msg = text_message(carol, BOB, &message_id, "Referral");
    let attempt = || {
        rt.block_on(submit(
            &inst.submission_addr(),
            &cfg,
            carol,
            password,
            &[BOB],
            &msg,
        ))
    };

    // Alice (added before start) works; Carol does not exist yet.
    let alice_msg = text_message(ALICE, BOB, "<alice-1@direct.alpha.example>", "Hello");
    let r = rt.block_on(submit(
        &inst.submission_addr(),
        &cfg,
        ALICE,
        ALICE_PASSWORD,
        &[BOB],
        &alice_msg,
    ));
    assert!(accepted(&r), "alice's submission: {r:?}");
    let r = attempt();
    assert!(
        auth_refused(&r),
        "carol authenticated before she existed: {r:?}"
    );

    let added = Instant::now();
    inst.add_user(carol, password);
    let took = loop {
        let r = attempt();
        if !auth_refused(&r) {
            assert!(accepted(&r), "carol authenticated but was refused: {r:?}");
            break added.elapsed();
        }
        assert!(
            added.elapsed() < Duration::from_secs(5),
            "carol, added while serving, still cannot AUTH after {:?}: {r:?}\n{}",
            added.elapsed(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("user added while serving could AUTH after {took:?}");

    // The commands print JSON while the daemon runs; the queue shows both submissions.
    let q = inst.queue_json();
    let messages = q["messages"].as_array().expect("queue: messages array");
    for (id, sender) in [
        ("<alice-1@direct.alpha.example>", ALICE),
        (message_id.as_str(), carol),
    ] {
        let m = messages
            .iter()
            .find(|m| m["message_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in `hisp queue --json`: {q:#}"));
        assert_eq!(m["sender"], sender, "{m:#}");
        assert_eq!(m["kind"], "message", "{m:#}");
        assert!(m["queue_id"].is_string(), "{m:#}");
        let rcpts = m["recipients"].as_array().expect("recipients array");
        assert_eq!(rcpts.len(), 1, "{m:#}");
        assert_eq!(rcpts[0]["rcpt"], BOB, "{m:#}");
        assert!(rcpts[0]["state"].is_string(), "{m:#}");
        assert!(m["timeline"].is_array(), "{m:#}");
    }
    for who in [ALICE, carol] {
        let mb = inst.mailbox_json(who);
        assert_eq!(mb["address"], who, "{mb:#}");
        assert!(mb["messages"].is_array(), "{mb:#}");
    }
    assert!(daemon.running(), "the daemon died:\n{}", daemon.log_text());
}
