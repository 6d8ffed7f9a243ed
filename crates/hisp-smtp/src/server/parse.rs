//! The SMTP command parser (RFC 5321 §4.1, with the MAIL parameters of RFC 1870 SIZE and
//! RFC 6152 BODY, and AUTH of RFC 4954). Pure: one line of bytes in, a [`Command`] or the
//! [`Reply`] to refuse it with out. Whether a command is allowed *now* is the session's
//! business (`server/mod.rs`), not this file's.

use crate::Reply;

/// RFC 5321 §4.5.3.1.3: the longest reverse- or forward-path, brackets included.
pub const MAX_PATH: usize = 256;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO <domain>`.
    Helo(String),
    /// `EHLO <domain>`.
    Ehlo(String),
    /// `MAIL FROM:<reverse-path> [params]`.
    Mail(MailFrom),
    /// `RCPT TO:<forward-path>` (the path without brackets or source route).
    Rcpt(String),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY <string>` (always answered 252).
    Vrfy,
    /// `HELP [topic]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH <mechanism> [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism.
        mechanism: Mechanism,
        /// The base64 initial response as sent (`=` stands for an empty one).
        initial_response: Option<String>,
    },
}

/// The MAIL command's reverse-path and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The address without brackets; empty for the null sender `<>`.
    pub reverse_path: String,
    /// `SIZE=` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<Body>,
}

/// The `BODY=` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The SASL mechanisms we offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// The de-facto LOGIN mechanism (draft-murchison-sasl-login).
    Login,
}

/// Parses one command line (the trailing CRLF or bare LF may be present or not).
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| Reply::syntax("command is not ASCII"))?;
    if !text.is_ascii() || text.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(Reply::syntax(
            "command contains control characters or non-ASCII",
        ));
    }
    let text = text.trim_end_matches([' ', '\t']);
    let (verb, args) = match text.split_once(' ') {
        Some((v, a)) => (v, a.trim_start_matches(' ')),
        None => (text, ""),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    let no_args = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(Reply::bad_args("this command takes no parameters"))
        }
    };
    if is("EHLO") || is("HELO") {
        let name = args
            .split_whitespace()
            .next()
            .ok_or_else(|| Reply::bad_args("a domain or address literal is required"))?;
        let name = name.to_string();
        return Ok(if is("EHLO") {
            Command::Ehlo(name)
        } else {
            Command::Helo(name)
        });
    }
    if is("MAIL") {
        return parse_mail(args).map(Command::Mail);
    }
    if is("RCPT") {
        return parse_rcpt(args).map(Command::Rcpt);
    }
    if is("AUTH") {
        return parse_auth(args);
    }
    if is("DATA") {
        return no_args(Command::Data);
    }
    if is("RSET") {
        return no_args(Command::Rset);
    }
    if is("QUIT") {
        return no_args(Command::Quit);
    }
    if is("STARTTLS") {
        return no_args(Command::StartTls);
    }
    if is("NOOP") {
        return Ok(Command::Noop);
    }
    if is("HELP") {
        return Ok(Command::Help);
    }
    if is("VRFY") {
        return Ok(Command::Vrfy);
    }
    for known in ["EXPN", "BDAT", "ETRN", "TURN", "ATRN"] {
        if is(known) {
            return Err(Reply::not_implemented(known));
        }
    }
    Err(Reply::syntax("command unrecognized"))
}

/// Strips a case-insensitive keyword (`FROM:`, `TO:`) from the front.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        args.get(keyword.len()..)
    } else {
        None
    }
}

fn parse_mail(args: &str) -> Result<MailFrom, Reply> {
    let rest = strip_keyword(args, "FROM:")
        .ok_or_else(|| Reply::bad_args("expected MAIL FROM:<address>"))?;
    let (reverse_path, params) = parse_path(rest, true)?;
    let mut mail = MailFrom {
        reverse_path,
        size: None,
        body: None,
    };
    for param in params.split_whitespace() {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        if key.eq_ignore_ascii_case("SIZE") {
            let n = value
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Reply::bad_args("SIZE= needs a number"))?;
            mail.size = Some(n);
        } else if key.eq_ignore_ascii_case("BODY") {
            mail.body = Some(match value {
                Some(v) if v.eq_ignore_ascii_case("8BITMIME") => Body::EightBitMime,
                Some(v) if v.eq_ignore_ascii_case("7BIT") => Body::SevenBit,
                _ => return Err(Reply::bad_args("BODY= must be 7BIT or 8BITMIME")),
            });
        } else if key.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 §5: the AUTH= parameter may be ignored by a server that does not relay
            // on the client's behalf with it; we take the session's user instead.
        } else {
            return Err(Reply::unknown_param(key));
        }
    }
    Ok(mail)
}

fn parse_rcpt(args: &str) -> Result<String, Reply> {
    let rest =
        strip_keyword(args, "TO:").ok_or_else(|| Reply::bad_args("expected RCPT TO:<address>"))?;
    let (forward_path, params) = parse_path(rest, false)?;
    match params.split_whitespace().next() {
        Some(p) => Err(Reply::unknown_param(p.split('=').next().unwrap_or(p))),
        None => Ok(forward_path),
    }
}

fn parse_auth(args: &str) -> Result<Command, Reply> {
    let mut words = args.split_whitespace();
    let name = words
        .next()
        .ok_or_else(|| Reply::bad_args("AUTH needs a mechanism"))?;
    let mechanism = if name.eq_ignore_ascii_case("PLAIN") {
        Mechanism::Plain
    } else if name.eq_ignore_ascii_case("LOGIN") {
        Mechanism::Login
    } else {
        return Err(Reply::auth_mechanism(name));
    };
    let initial_response = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(Reply::bad_args(
            "AUTH takes a mechanism and one initial response",
        ));
    }
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

/// Parses `<path>` (or, leniently, a bare address) and returns it without brackets or
/// source route, with the rest of the line (the parameters).
fn parse_path(s: &str, null_ok: bool) -> Result<(String, &str), Reply> {
    let s = s.trim_start_matches(' ');
    let (inner, rest) = if let Some(body) = s.strip_prefix('<') {
        let end = closing_bracket(body).ok_or_else(|| Reply::bad_args("unterminated <path>"))?;
        (
            body.get(..end).unwrap_or_default(),
            body.get(end + 1..).unwrap_or_default(),
        )
    } else if s.is_empty() {
        return Err(Reply::bad_args("a <path> is required"));
    } else {
        // Lenient: some old clients omit the brackets.
        match s.split_once(' ') {
            Some((a, r)) => (a, r),
            None => (s, ""),
        }
    };
    if rest.starts_with(|c: char| c != ' ') {
        return Err(Reply::bad_args("expected a space after the path"));
    }
    if inner.len() + 2 > MAX_PATH {
        return Err(Reply::bad_args("path too long"));
    }
    // RFC 5321 §4.1.1.3 / Appendix C: a source route (`@a,@b:user@c`) may be ignored.
    let address = match inner.strip_prefix('@') {
        Some(route) => route
            .split_once(':')
            .map(|(_, a)| a)
            .ok_or_else(|| Reply::bad_args("malformed source route"))?,
        None => inner,
    };
    if address.is_empty() {
        return if null_ok {
            Ok((String::new(), rest))
        } else {
            Err(Reply::bad_args("an address is required"))
        };
    }
    check_address(address, null_ok)?;
    Ok((address.to_string(), rest))
}

/// Finds the `>` that closes a path, skipping quoted strings (`"a>b"@c`).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// A light mailbox check (RFC 5321 §4.1.2): `local@domain`, or `postmaster` alone as a
/// recipient (§4.5.1). Deeper checks belong to the handler.
fn check_address(address: &str, is_sender: bool) -> Result<(), Reply> {
    if !is_sender && address.eq_ignore_ascii_case("postmaster") {
        return Ok(());
    }
    let bad = |why: &str| Err(Reply::bad_args(why));
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("address must be local-part@domain");
    };
    if local.is_empty() || domain.is_empty() {
        return bad("address must be local-part@domain");
    }
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    if !quoted && local.contains([' ', '\t', '<', '>', '"']) {
        return bad("address contains characters not allowed there");
    }
    if domain.contains([' ', '\t', '"', '@', ',', '<', '>']) {
        return bad("malformed domain");
    }
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
