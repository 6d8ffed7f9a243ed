//! Real servers on loopback high ports for the tests: BIND (`named`) serving one zone and
//! OpenLDAP (`slapd`) serving one suffix. Each runs under a small shell that stops it and
//! removes its directory when the shell's stdin closes, which happens when the handle drops
//! or the test process ends in any way (a server kept in a `static` is never dropped).
//! They come from Debian's bind9 and slapd packages (scripts/test installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `named`.
pub struct Named {
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    alive: Option<ChildStdin>,
    guard: Child,
    dir: PathBuf,
}

fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..200 {
        let port = 20000 + (rand_u16() % 12000);
        let a = SocketAddr::from(([127, 0, 0, 1], port));
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) && TcpListener::bind(a).is_ok() && UdpSocket::bind(a).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port for named");
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u16::from_be_bytes(b)
}

impl Named {
    /// Serve `zone` (records, one per line, relative to `origin`) as the primary.
    pub fn start(origin: &str, records: &str) -> Named {
        let dir = tempfile::tempdir().unwrap().keep();
        let d = dir.display().to_string();
        let zone = format!(
            "$TTL 300\n@ IN SOA ns.{origin}. admin.{origin}. 1 3600 600 86400 60\n\
             @ IN NS ns.{origin}.\nns IN A 127.0.0.1\n{records}\n"
        );
        std::fs::write(dir.join("zone"), zone).unwrap();
        let port = free_port();
        // max-udp-size 1232: the DNS flag day size; larger answers are truncated and must
        // be asked again over TCP (RFC 7766).
        let conf = format!(
            "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }};\n\
             listen-on-v6 {{ none; }}; pid-file \"{d}/named.pid\"; recursion no;\n\
             dnssec-validation no; max-udp-size 1232; notify no; }};\n\
             controls {{ }};\n\
             zone \"{origin}\" {{ type primary; file \"{d}/zone\"; }};\n"
        );
        std::fs::write(dir.join("named.conf"), conf).unwrap();
        let script = r#"named -g -n 1 -c "$1/named.conf" 2>"$1/named.log" & p=$!
read _ ; kill $p ; wait $p ; rm -rf "$1""#;
        let (alive, guard) = guarded(script, &dir);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let named = Named {
            addr,
            alive,
            guard,
            dir,
        };
        named.wait_ready();
        named
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let log = self.log();
            assert!(
                !log.contains("exiting (due to fatal error)"),
                "named failed (is the bind9 package installed?):\n{log}"
            );
            let up = log.contains("running");
            if up && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("named did not start:\n{}", self.log());
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        drop(self.alive.take());
        let _ = self.guard.wait();
    }
}

/// Run `script` under `sh` with `dir` as `$1`; the server it starts lives as long as the
/// returned stdin stays open.
fn guarded(script: &str, dir: &std::path::Path) -> (Option<ChildStdin>, Child) {
    let mut child = Command::new("sh")
        .args(["-c", script, "server-guard"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sh");
    (child.stdin.take(), child)
}

/// A running `slapd`.
pub struct Slapd {
    /// Where it answers.
    pub addr: SocketAddr,
    alive: Option<ChildStdin>,
    guard: Child,
    dir: PathBuf,
}

impl Slapd {
    /// Serve `suffix` (e.g. `dc=direct,dc=test`, whose first RDN is a `dc`) holding the
    /// suffix entry and `entries` (LDIF, separated by blank lines), readable anonymously.
    pub fn start(suffix: &str, entries: &str) -> Slapd {
        let dir = tempfile::tempdir().unwrap().keep();
        let d = dir.display().to_string();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             database mdb\nmaxsize 10485760\nsuffix \"{suffix}\"\n\
             rootdn \"cn=admin,{suffix}\"\nrootpw secret\ndirectory {d}/db\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        let dc = suffix
            .split(',')
            .next()
            .and_then(|r| r.strip_prefix("dc="))
            .unwrap_or("test");
        let ldif = format!(
            "dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: {dc}\n\n{entries}\n"
        );
        std::fs::write(dir.join("data.ldif"), ldif).unwrap();
        let load = Command::new("slapadd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("data.ldif"))
            .output()
            .expect("slapadd (Debian package slapd) must be installed");
        assert!(
            load.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        let port = free_port();
        let script = format!(
            r#"slapd -f "$1/slapd.conf" -h ldap://127.0.0.1:{port}/ -d 0 2>"$1/slapd.log" & p=$!
read _ ; kill $p ; wait $p ; rm -rf "$1""#
        );
        let (alive, guard) = guarded(&script, &dir);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let s = Slapd {
            addr,
            alive,
            guard,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&s.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "slapd did not start:\n{}",
                std::fs::read_to_string(s.dir.join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        drop(self.alive.take());
        let _ = self.guard.wait();
    }
}

/// An inetOrgPerson entry under `suffix` with `mail` and each DER as `userCertificate;binary`.
pub fn ldif_person(suffix: &str, uid: &str, mail: &str, certs: &[Vec<u8>]) -> String {
    let mut e = format!(
        "dn: uid={uid},{suffix}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\n"
    );
    for c in certs {
        let b64 = openssl::base64::encode_block(c).replace(['\n', '\r'], "");
        e.push_str(&format!("userCertificate;binary:: {b64}\n"));
    }
    e
}

/// A CERT PKIX record line for `owner` (relative) holding `der`.
pub fn cert_line(owner: &str, der: &[u8]) -> String {
    let b64 = openssl::base64::encode_block(der);
    format!("{owner} IN CERT PKIX 0 0 {b64}")
}

/// Python's `http.server` serving a directory on a loopback port (CRLs, caIssuers
/// certificates, trust bundles); stopped on drop.
pub struct HttpDir {
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl HttpDir {
    /// Serve `dir` on a free loopback port.
    pub fn start(dir: &std::path::Path) -> HttpDir {
        HttpDir::start_on(dir, free_port())
    }

    /// Serve `dir` on `port` (when URLs naming it had to be made first).
    pub fn start_on(dir: &std::path::Path, port: u16) -> HttpDir {
        let child = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's python3");
        let server = HttpDir { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// A URL for `file` in the directory.
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
}

impl Drop for HttpDir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free now (and not handed out before by this process).
pub fn free_loopback_port() -> u16 {
    free_port()
}
