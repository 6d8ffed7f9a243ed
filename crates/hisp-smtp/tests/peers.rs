//! Real third-party peers on loopback: swaks (Perl) and Python's smtplib submit through our
//! server with STARTTLS and AUTH; our client delivers to Python's aiosmtpd with STARTTLS.
//! A missing peer FAILS the test with the command to install it (scripts/test does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use hisp_smtp::client::deliver;
use support::{cert, client_config, envelope, our_server, submission_config, TestHandler};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PYTHON: &str = "python3";

async fn run(cmd: &mut Command) -> std::process::Output {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.kill_on_drop(true).output())
        .await
        .expect("peer took over 60 s")
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn require_swaks() {
    let out = Command::new("swaks").arg("--support").output().await.unwrap_or_else(|e| {
        panic!("swaks is not installed ({e}): apt-get install swaks libnet-ssleay-perl (scripts/test does)")
    });
    let support =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        support.contains("TLS supported"),
        "swaks has no TLS: apt-get install libnet-ssleay-perl\n{support}"
    );
}

#[tokio::test]
async fn swaks_submits_with_starttls_and_auth() {
    require_swaks().await;
    let handler = TestHandler::new();
    let addr = our_server(submission_config(), handler.clone()).await;
    // The LOGIN run also pipelines MAIL/RCPT/DATA (RFC 2920) as swaks does it.
    for (mech, pipeline) in [("PLAIN", "--no-pipeline"), ("LOGIN", "--pipeline")] {
        let out = run(Command::new("swaks").args([
            pipeline,
            "--server",
            "127.0.0.1",
            "--port",
            &addr.port().to_string(),
            "--tls",
            "--auth",
            mech,
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
            "--from",
            "alice@hisp.test",
            "--to",
            "bob@other.test",
            "--helo",
            "swaks.test",
            "--header",
            "Subject: from swaks",
            "--body",
            "hello from swaks",
            "--timeout",
            "30",
        ]))
        .await;
        assert!(
            out.status.success(),
            "swaks --auth {mech} failed:\n{}",
            text(&out)
        );
    }
    let stored = handler.stored();
    assert_eq!(stored.len(), 2);
    for s in &stored {
        assert!(s.session.tls);
        assert_eq!(s.session.user.as_deref(), Some("alice"));
        assert_eq!(s.envelope.rcpt_to, vec!["bob@other.test"]);
        let body = String::from_utf8_lossy(&s.message);
        assert!(
            body.contains("hello from swaks") && body.contains("Subject: from swaks"),
            "{body}"
        );
    }
    // A wrong password is refused: swaks reports failure.
    let out = run(Command::new("swaks").args([
        "--server",
        "127.0.0.1",
        "--port",
        &addr.port().to_string(),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wrong",
        "--from",
        "alice@hisp.test",
        "--to",
        "bob@other.test",
        "--timeout",
        "30",
    ]))
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("535 5.7.8"),
        "{}",
        text(&out)
    );
    assert_eq!(handler.stored().len(), 2);
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, mech = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test", timeout=30)
s.ehlo()
s.starttls(context=ssl._create_unverified_context())
s.ehlo()
if mech == "LOGIN":
    s.user, s.password = "alice", "secret"
    s.auth("LOGIN", s.auth_login, initial_response_ok=False)
else:
    s.login("alice", "secret")
refused = s.sendmail("alice@hisp.test", ["bob@other.test", "carol@other.test"],
                     b"Subject: py\r\n\r\n.dot line\r\nhello from smtplib\r\n")
s.quit()
print("sent", refused)
"#;

#[tokio::test]
async fn python_smtplib_starttls_login_sendmail() {
    let handler = TestHandler::new();
    let addr = our_server(submission_config(), handler.clone()).await;
    for mech in ["PLAIN", "LOGIN"] {
        let out =
            run(Command::new(PYTHON).args(["-c", SMTPLIB, &addr.port().to_string(), mech])).await;
        assert!(
            out.status.success(),
            "smtplib ({mech}) failed:\n{}",
            text(&out)
        );
    }
    let stored = handler.stored();
    assert_eq!(stored.len(), 2);
    for s in &stored {
        assert_eq!(
            s.message,
            b"Subject: py\r\n\r\n.dot line\r\nhello from smtplib\r\n"
        );
        assert_eq!(s.session.user.as_deref(), Some("alice"));
        assert_eq!(s.session.helo.as_deref(), Some("py.test"));
        assert!(s.session.tls);
        assert_eq!(
            s.envelope.rcpt_to,
            vec!["bob@other.test", "carol@other.test"]
        );
    }
}

const AIOSMTPD: &str = r#"
import asyncio, json, ssl, sys
from aiosmtpd.smtp import SMTP
cert, key, out = sys.argv[1:4]
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        with open(out, "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "options": envelope.mail_options, "tls": session.ssl is not None,
                       "content": envelope.original_content.hex()}, f)
        return "250 2.0.0 stored by aiosmtpd"
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), tls_context=ctx, require_starttls=True, decode_data=False,
                     hostname="aiosmtpd.test"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"#;

async fn require_aiosmtpd() {
    let has = || {
        Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
    };
    if has().await.map(|o| o.status.success()).unwrap_or(false) {
        return;
    }
    let _ = Command::new(PYTHON)
        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
        .output()
        .await;
    let ok = has().await.map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok,
        "Python's aiosmtpd is missing and `{PYTHON} -m pip install aiosmtpd` failed"
    );
}

#[tokio::test]
async fn our_client_delivers_to_aiosmtpd_over_starttls() {
    require_aiosmtpd().await;
    let dir = tempfile::tempdir().unwrap();
    let (x509, key) = cert();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let out_path = dir.path().join("message.json");
    std::fs::write(&cert_path, x509.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(AIOSMTPD)
        .args([&cert_path, &key_path, &out_path])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("aiosmtpd did not start")
        .unwrap()
        .expect("aiosmtpd exited");
    let target = format!("127.0.0.1:{port}");

    let message: &[u8] =
        b"Subject: to aiosmtpd\r\n\r\n.starts with a dot\r\n..two\r\nnon-ascii \xc3\xa9\r\n";
    let env = envelope("a@hisp.test", &["nobody@aio.test", "bob@aio.test"]);
    let d = deliver(&target, &client_config(), &env, message)
        .await
        .unwrap();
    assert!(d.tls, "aiosmtpd offered STARTTLS");
    assert_eq!(d.per_rcpt[0].1.code, 550);
    assert_eq!(d.per_rcpt[1].1.code, 250);
    assert_eq!(d.data_reply.unwrap().code, 250);

    let got: String = std::fs::read_to_string(&out_path).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert!(
        got.contains(&format!("\"content\": \"{}\"", hex(message))),
        "{got}"
    );
    assert!(got.contains("\"tls\": true"), "{got}");
    assert!(got.contains("\"to\": [\"bob@aio.test\"]"), "{got}");
    assert!(
        got.contains("BODY=8BITMIME") && got.contains(&format!("SIZE={}", message.len())),
        "{got}"
    );
    child.kill().await.ok();
}
