//! Fixtures for the tests that run `hisp serve` as a real daemon: free loopback ports,
//! instances made only with the operator commands (`hisp init`, `user add`, `anchor add`,
//! `route add`, `cert add`), `hisp.toml` edited as text, daemons as child processes that are
//! killed on drop and counted ready when they log `hisp: serving` and accept connections,
//! the SMTP submission client (STARTTLS, AUTH PLAIN), and `hisp queue|mailbox --json`.
//!
//! Tests using it declare `mod common; mod daemon_support;` (it reuses the command runner of
//! `common`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::common::{check, check_with, hisp, run, Run, HISP};
use hisp_smtp::client::{ClientError, Delivery};
use hisp_smtp::{ClientConfig, Envelope};
use serde_json::Value;
use std::collections::HashSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a daemon may take to bind its listeners (debug build, busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback port nobody listens on now, never handed out twice by this process, below
/// the ephemeral range so no outgoing connection holds it when a restarted daemon binds it
/// again. (Another process may still take it before the daemon binds it; the daemon then
/// fails to start and says which listener, which [`Daemon::start`] reports.)
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = hisp_server::pair::free_port().expect("cannot find a free loopback port");
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// True when something accepts TCP connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Poll `cond` every `every` until it holds or `timeout` passes; true when it held.
pub fn wait_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// One HISP instance on disk, made with `hisp init`.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Short name (folder name, log prefix).
    pub name: String,
    /// The health domain.
    pub domain: String,
    /// The folder `hisp init` wrote.
    pub dir: PathBuf,
    /// `dir/hisp.toml`.
    pub config: PathBuf,
    /// Relay (SMTP) port.
    pub relay_port: u16,
    /// Submission port.
    pub submission_port: u16,
    /// HTTP port.
    pub http_port: u16,
}

impl Instance {
    /// `hisp init --domain DOMAIN --dir ROOT/NAME --bind 127.0.0.1` with three free ports.
    pub fn init(root: &Path, name: &str, domain: &str) -> Instance {
        let dir = root.join(name);
        let (relay_port, submission_port, http_port) = (free_port(), free_port(), free_port());
        check(
            hisp()
                .args(["init", "--domain", domain, "--dir"])
                .arg(&dir)
                .args(["--bind", "127.0.0.1"])
                .args(["--smtp-port", &relay_port.to_string()])
                .args(["--submission-port", &submission_port.to_string()])
                .args(["--http-port", &http_port.to_string()]),
        );
        Instance {
            name: name.to_string(),
            domain: domain.to_string(),
            config: dir.join("hisp.toml"),
            dir,
            relay_port,
            submission_port,
            http_port,
        }
    }

    /// `hisp <args…> --config <this config> <rest…>`, insisting it succeeds.
    fn admin(&self, args: &[&str], rest: &[&str], input: Option<&[u8]>) -> Run {
        check_with(
            hisp()
                .args(args)
                .arg("--config")
                .arg(&self.config)
                .args(rest),
            input,
        )
    }

    /// `hisp user add ADDRESS --password-stdin`.
    pub fn add_user(&self, address: &str, password: &str) -> Run {
        self.admin(
            &["user", "add"],
            &[address, "--password-stdin"],
            Some(format!("{password}\n").as_bytes()),
        )
    }

    /// `hisp anchor add --file <peer>/ca.pem`.
    pub fn trust(&self, peer: &Instance) -> Run {
        let ca = peer.dir.join("ca.pem");
        self.admin(&["anchor", "add"], &["--file", ca.to_str().unwrap()], None)
    }

    /// `hisp route add <peer domain> 127.0.0.1:<peer relay port>`.
    pub fn route_to(&self, peer: &Instance) -> Run {
        let target = format!("127.0.0.1:{}", peer.relay_port);
        self.admin(&["route", "add"], &[&peer.domain, &target], None)
    }

    /// `hisp cert add --file <peer>/domain.pem`.
    pub fn know_cert_of(&self, peer: &Instance) -> Run {
        let cert = peer.dir.join("domain.pem");
        self.admin(&["cert", "add"], &["--file", cert.to_str().unwrap()], None)
    }

    /// The configuration text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }

    /// Set `key = value` (raw TOML) in the first `[section]` of hisp.toml.
    pub fn set(&self, section: &str, key: &str, value: &str) {
        let text = toml_set(&self.config_text(), section, key, value);
        std::fs::write(&self.config, text).unwrap();
    }

    /// `hisp queue --json --limit 100000`, parsed.
    pub fn queue_json(&self) -> Value {
        json_of(&self.admin(&["queue"], &["--json", "--limit", "100000"], None))
    }

    /// `hisp mailbox ADDRESS --json`, parsed.
    pub fn mailbox_json(&self, address: &str) -> Value {
        json_of(&self.admin(&["mailbox"], &[address, "--json"], None))
    }

    /// The `hisp serve` command for this instance (not started).
    pub fn serve_command(&self) -> Command {
        let mut c = Command::new(HISP);
        c.arg("serve").arg("--config").arg(&self.config);
        c
    }

    /// The submission port as `127.0.0.1:N`.
    pub fn submission_addr(&self) -> String {
        format!("127.0.0.1:{}", self.submission_port)
    }

    /// The three listener ports.
    pub fn ports(&self) -> [u16; 3] {
        [self.relay_port, self.submission_port, self.http_port]
    }

    /// A new self-signed TLS certificate (for `localhost`) and key over `tls.pem` and
    /// `tls.key`, as a renewal in place does; the SHA-256 of the certificate.
    pub fn renew_tls(&self) -> String {
        let (cert, key) = (self.dir.join("tls.pem"), self.dir.join("tls.key"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=renewed.reload.test"])
            .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cert_sha256(&cert)
    }
}

/// Lower-case hex SHA-256 of the first certificate in a PEM file.
pub fn cert_sha256(pem: &Path) -> String {
    let pem = std::fs::read(pem).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    hex::encode(openssl::sha::sha256(&der))
}

/// `hisp <args…> --config <instance>`, whatever the outcome.
pub fn hisp_at(inst: &Instance, args: &[&str]) -> Run {
    run(hisp().args(args).arg("--config").arg(&inst.config), None)
}

/// `curl -s` with `args` (10 s at most): exit status and body, trimmed.
pub fn curl(args: &[&str]) -> (i32, String) {
    let r = run(
        Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .args(args),
        None,
    );
    (
        r.code,
        String::from_utf8_lossy(&r.stdout).trim().to_string(),
    )
}

/// The HTTP status of a GET of `url` with HTTP Basic `credentials` (`user:password`).
pub fn http_status(credentials: &str, url: &str) -> String {
    let args = [
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        credentials,
        url,
    ];
    curl(&args).1
}

/// Read one SMTP reply (its last line has a space after the code).
pub fn smtp_reply(r: &mut impl std::io::BufRead) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "connection closed: {all}"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

/// stdout of a finished command as one JSON value.
pub fn json_of(r: &Run) -> Value {
    serde_json::from_slice(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&r.stdout)
        )
    })
}

/// `text` with `key = value` set in the first `[section]` (or `[[section]]`) table: the
/// existing line replaced, or a new line right after the table header.
pub fn toml_set(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let is_header = |l: &str| {
        let t = l.trim();
        t == format!("[{section}]") || t == format!("[[{section}]]")
    };
    let head = lines
        .iter()
        .position(|l| is_header(l))
        .unwrap_or_else(|| panic!("no [{section}] table in:\n{text}"));
    let end = lines[head + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| head + 1 + i);
    let new = format!("{key} = {value}");
    let existing = (head + 1..end).find(|&i| {
        let l = lines[i].trim_start();
        l.contains('=') && l.split('=').next().unwrap_or("").trim() == key
    });
    match existing {
        Some(i) => lines[i] = new,
        None => lines.insert(head + 1, new),
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// Two instances wired to each other only through the operator commands: one user each,
/// each trusts the other's CA, routes the other's domain to its relay port, and holds the
/// other's domain certificate.
pub struct Pair {
    /// The sending side (`direct.alpha.example`, user [`ALICE`]).
    pub alpha: Instance,
    /// The receiving side (`direct.beta.example`, user [`BOB`]).
    pub beta: Instance,
}

/// The sending user.
pub const ALICE: &str = "alice@direct.alpha.example";
/// Her password.
pub const ALICE_PASSWORD: &str = "alice-password";
/// The receiving user.
pub const BOB: &str = "bob@direct.beta.example";
/// His password.
pub const BOB_PASSWORD: &str = "bob-password";

impl Pair {
    /// Make both instances under `root`.
    pub fn init(root: &Path) -> Pair {
        let alpha = Instance::init(root, "alpha", "direct.alpha.example");
        let beta = Instance::init(root, "beta", "direct.beta.example");
        alpha.add_user(ALICE, ALICE_PASSWORD);
        beta.add_user(BOB, BOB_PASSWORD);
        for (me, peer) in [(&alpha, &beta), (&beta, &alpha)] {
            me.trust(peer);
            me.route_to(peer);
            me.know_cert_of(peer);
        }
        Pair { alpha, beta }
    }
}

/// A `hisp serve` child process, killed (SIGKILL) and reaped on drop. Its stdout and
/// stderr go to `<dir>/serve-<n>.log` (with `HISP_LOG=warn,hisp_server=info`, no colours).
pub struct Daemon {
    child: Option<Child>,
    /// The instance it serves.
    pub instance: Instance,
    /// The log of the current run.
    pub log: PathBuf,
    runs: u32,
}

impl Daemon {
    /// Start `hisp serve` for `instance` and wait until it is ready.
    pub fn start(instance: &Instance) -> Daemon {
        let mut d = Daemon {
            child: None,
            instance: instance.clone(),
            log: PathBuf::new(),
            runs: 0,
        };
        d.restart();
        d
    }

    /// Start (again) with the same configuration, and wait until ready: the daemon logged
    /// `hisp: serving` and every listener accepts connections.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "{} is still running",
            self.instance.name
        );
        self.runs += 1;
        self.log = self.instance.dir.join(format!("serve-{}.log", self.runs));
        let log = File::create(&self.log).unwrap();
        let child = self
            .instance
            .serve_command()
            .env("HISP_LOG", "warn,hisp_server=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {HISP} serve: {e}"));
        self.child = Some(child);
        let ports = self.instance.ports();
        let ready = wait_until(START_TIMEOUT, Duration::from_millis(20), || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "hisp serve ({}) exited with {status} before it was ready:\n{}",
                    self.instance.name,
                    self.log_text()
                );
            }
            self.log_text().contains("hisp: serving") && ports.iter().all(|p| port_open(*p))
        });
        assert!(
            ready,
            "hisp serve ({}) not ready on ports {ports:?} within {START_TIMEOUT:?}:\n{}",
            self.instance.name,
            self.log_text()
        );
    }

    /// SIGKILL (`Child::kill` on Unix): no shutdown, no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the child has not exited.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// `kill -HUP`: reload (docs/operations.md "Reload").
    pub fn hup(&self) {
        let pid = self.pid().expect("daemon running").to_string();
        let ok = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// What the current run logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Every run's log, for failure messages (last `max` bytes of each).
    pub fn all_logs(&self, max: usize) -> String {
        let mut out = String::new();
        for n in 1..=self.runs {
            let p = self.instance.dir.join(format!("serve-{n}.log"));
            let t = std::fs::read(&p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let tail = &t[t.len().saturating_sub(max)..];
            out.push_str(&format!("--- {} ---\n{tail}\n", p.display()));
        }
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A client for the submission port: STARTTLS required, the server's test certificate not
/// verified (it is issued by the instance's own test CA).
pub fn submission_client() -> ClientConfig {
    let connector = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())
        .unwrap()
        .build();
    ClientConfig {
        helo: "edge.test.example".into(),
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(60),
        data_timeout: Duration::from_secs(120),
        tls: Arc::new(connector),
        require_tls: true,
        verify_tls: false,
        bind: Vec::new(),
    }
}

/// A plain-text message from `from` to `to` with the given Message-ID (angle brackets
/// included) and CRLF line ends.
pub fn text_message(from: &str, to: &str, message_id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 01 Jun 2026 10:00:00 +0000\r\n\
         Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         Dear colleague,\r\nplease see the referral below ({message_id}).\r\n\r\n\
         Patient: Jane Doe (synthetic), DOB 1970-01-01\r\n-- \r\nAlice\r\n"
    )
    .into_bytes()
}

/// Submit `message` as `user` to `addr` (STARTTLS, AUTH PLAIN) for `rcpts`.
pub async fn submit(
    addr: &str,
    cfg: &ClientConfig,
    user: &str,
    password: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Delivery, ClientError> {
    let env = Envelope {
        mail_from: user.to_string(),
        rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
        body_8bit: false,
        declared_size: None,
    };
    hisp_smtp::client::submit(addr, cfg, user, password, &env, message).await
}

/// Submit a referral from Alice to Bob with Message-ID `id` at `alpha`'s submission port,
/// on a runtime of its own, insisting it is accepted.
pub fn submit_referral(alpha: &Instance, id: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let msg = text_message(ALICE, BOB, id, "Referral");
    let r = rt.block_on(submit(
        &alpha.submission_addr(),
        &submission_client(),
        ALICE,
        ALICE_PASSWORD,
        &[BOB],
        &msg,
    ));
    assert!(accepted(&r), "submission: {r:?}");
}

/// True when the submission was accepted with a 2xx reply to the end of DATA.
pub fn accepted(d: &Result<Delivery, ClientError>) -> bool {
    matches!(d, Ok(d) if d.data_reply.as_ref().is_some_and(|r| r.is_positive()))
}

/// Fail unless every listed port is free on 127.0.0.1 (bind succeeds).
pub fn assert_ports_free(ports: &[u16], what: &str) {
    let busy: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect();
    assert!(
        busy.is_empty(),
        "{what} needs ports {ports:?} on 127.0.0.1, but {busy:?} are in use: stop whatever \
         listens there (e.g. `ss -ltnp | grep -E ':({})'`) and run again",
        busy.iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("|")
    );
}

/// Run `hisp` with `args` (no --config), returning the outcome whatever it is.
pub fn hisp_run(args: &[&str]) -> Run {
    run(hisp().args(args), None)
}
