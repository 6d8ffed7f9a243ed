//! Unit tests for `parse.rs`, named after the rule each checks.

use super::*;

fn mail(line: &str) -> MailFrom {
    match parse_command(line.as_bytes()) {
        Ok(Command::Mail(m)) => m,
        other => panic!("{line}: {other:?}"),
    }
}

fn code(line: &[u8]) -> u16 {
    parse_command(line).unwrap_err().code
}

#[test]
fn rfc5321_2_4_verbs_are_case_insensitive() {
    assert_eq!(
        parse_command(b"ehlo client.example\r\n"),
        Ok(Command::Ehlo("client.example".into()))
    );
    assert_eq!(parse_command(b"HeLo x\n"), Ok(Command::Helo("x".into())));
    assert_eq!(parse_command(b"quit"), Ok(Command::Quit));
    assert_eq!(parse_command(b"StartTLS\r\n"), Ok(Command::StartTls));
    assert_eq!(parse_command(b"noop anything"), Ok(Command::Noop));
    assert_eq!(parse_command(b"VRFY bob"), Ok(Command::Vrfy));
    assert_eq!(parse_command(b"help"), Ok(Command::Help));
    assert_eq!(parse_command(b"rset"), Ok(Command::Rset));
    assert_eq!(parse_command(b"data"), Ok(Command::Data));
}

#[test]
fn rfc5321_4_1_1_2_mail_from_paths_and_params() {
    let m = mail("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME");
    assert_eq!(m.reverse_path, "a@b.example");
    assert_eq!(m.size, Some(1000));
    assert_eq!(m.body, Some(Body::EightBitMime));
    assert_eq!(mail("mail from:<>").reverse_path, "");
    assert_eq!(mail("MAIL FROM: <a@b>").reverse_path, "a@b");
    assert_eq!(mail("MAIL FROM:a@b").reverse_path, "a@b");
    assert_eq!(mail("MAIL FROM:<a@b> body=7bit").body, Some(Body::SevenBit));
    assert_eq!(mail("MAIL FROM:<\"x > y\"@b>").reverse_path, "\"x > y\"@b");
    assert_eq!(mail("MAIL FROM:<a@b> AUTH=<>").reverse_path, "a@b");
}

#[test]
fn rfc5321_appendix_c_source_route_is_stripped() {
    assert_eq!(
        mail("MAIL FROM:<@relay.example,@r2.example:a@b>").reverse_path,
        "a@b"
    );
    assert_eq!(
        parse_command(b"RCPT TO:<@relay.example:bob@c.example>"),
        Ok(Command::Rcpt("bob@c.example".into()))
    );
}

#[test]
fn rfc5321_4_1_1_3_rcpt_to() {
    assert_eq!(
        parse_command(b"rcpt to:<Bob@C.example>"),
        Ok(Command::Rcpt("Bob@C.example".into()))
    );
    assert_eq!(
        parse_command(b"RCPT TO:<Postmaster>"),
        Ok(Command::Rcpt("Postmaster".into()))
    );
    assert_eq!(code(b"RCPT TO:<>"), 501);
    assert_eq!(code(b"RCPT TO:<a@b> NOTIFY=NEVER"), 555);
    assert_eq!(code(b"RCPT <a@b>"), 501);
}

#[test]
fn rfc5321_4_5_3_1_3_path_limits_and_malformed() {
    let long = format!("MAIL FROM:<{}@b>", "a".repeat(300));
    assert_eq!(code(long.as_bytes()), 501);
    assert_eq!(code(b"MAIL FROM:<a@b"), 501);
    assert_eq!(code(b"MAIL FROM:<ab>"), 501);
    assert_eq!(code(b"MAIL FROM:<a@b>x"), 501);
    assert_eq!(code(b"MAIL FROM:"), 501);
    assert_eq!(code(b"MAIL TO:<a@b>"), 501);
    assert_eq!(code(b"MAIL FROM:<a@b> SIZE=abc"), 501);
    assert_eq!(code(b"MAIL FROM:<a@b> SIZE=99999999999999999999999"), 501);
    assert_eq!(code(b"MAIL FROM:<a@b> BODY=BINARYMIME"), 501);
    assert_eq!(code(b"MAIL FROM:<a@b> SMTPUTF8"), 555);
}

#[test]
fn rfc4954_4_auth_mechanisms() {
    assert_eq!(
        parse_command(b"AUTH plain AGFsaWNlAHNlY3JldA=="),
        Ok(Command::Auth {
            mechanism: Mechanism::Plain,
            initial_response: Some("AGFsaWNlAHNlY3JldA==".into())
        })
    );
    assert_eq!(
        parse_command(b"auth LOGIN"),
        Ok(Command::Auth {
            mechanism: Mechanism::Login,
            initial_response: None
        })
    );
    assert_eq!(code(b"AUTH CRAM-MD5"), 504);
    assert_eq!(code(b"AUTH"), 501);
    assert_eq!(code(b"AUTH PLAIN a b"), 501);
}

#[test]
fn rfc5321_4_2_4_unknown_and_malformed_commands() {
    assert_eq!(code(b"FOO bar"), 500);
    assert_eq!(code(b""), 500);
    assert_eq!(code(b"EXPN list"), 502);
    assert_eq!(code(b"BDAT 10 LAST"), 502);
    assert_eq!(code(b"EHLO"), 501);
    assert_eq!(code(b"DATA now"), 501);
    assert_eq!(code(b"QUIT\0"), 500);
    assert_eq!(code("NOOP \u{e9}".as_bytes()), 500);
    assert_eq!(code(&[0xff, 0xfe]), 500);
}

/// A small deterministic noise generator (xorshift), so the test needs no extra crate.
fn noise(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn parse_command_never_panics_on_noise() {
    let pieces: &[&[u8]] = &[
        b"MAIL",
        b"FROM:",
        b"RCPT",
        b"TO:",
        b"AUTH",
        b"PLAIN",
        b"EHLO",
        b"<",
        b">",
        b"@",
        b"\"",
        b"\\",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"\0",
        b"SIZE=",
        b"BODY=",
        b"=",
        b",",
        b":",
        b"99999999999999999999999",
        b"8BITMIME",
        b"x",
        b"\xc3\xa9",
        b"\xff",
        b"@a,@b:",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..50_000 {
        let mut line = Vec::new();
        for _ in 0..noise(&mut seed) % 14 {
            line.extend_from_slice(pieces[(noise(&mut seed) % pieces.len() as u64) as usize]);
        }
        match parse_command(&line) {
            Ok(Command::Mail(m)) => assert!(m.reverse_path.len() < MAX_PATH),
            Ok(Command::Rcpt(p)) => assert!(!p.is_empty() && p.len() < MAX_PATH),
            Ok(_) => {}
            Err(reply) => assert!(reply.code >= 500, "{reply}"),
        }
    }
}
