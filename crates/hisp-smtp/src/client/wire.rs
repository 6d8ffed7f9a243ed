//! The client's pure wire helpers: reading a reply's lines (RFC 5321 §4.2, multi-line
//! with `-`; enhanced status per RFC 2034), reading the EHLO keywords, and dot-stuffing the
//! content (RFC 5321 §4.5.2). No I/O here; `conn.rs` feeds these.

use crate::Reply;

/// One reply line split up: code, whether more lines follow, text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReplyLine<'a> {
    pub(crate) code: u16,
    pub(crate) more: bool,
    pub(crate) text: &'a str,
}

/// Parses `250-text` / `250 text` / `250` (CRLF or LF already removed).
pub(crate) fn parse_reply_line(line: &str) -> Option<ReplyLine<'_>> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    if !(200..600).contains(&code) {
        return None;
    }
    let (more, text) = match line.as_bytes().get(3) {
        None => (false, ""),
        Some(b' ') => (false, line.get(4..)?),
        Some(b'-') => (true, line.get(4..)?),
        Some(_) => return None,
    };
    Some(ReplyLine { code, more, text })
}

/// Splits a leading enhanced status (`2.1.0 `) off a reply text whose class matches the code.
fn split_status(code: u16, text: &str) -> (Option<(u8, u16, u16)>, &str) {
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut parts = head.split('.');
    let parsed = (|| {
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || u16::from(class) != code / 100 {
            return None;
        }
        Some((class, subject, detail))
    })();
    match parsed {
        Some(status) => (Some(status), rest),
        None => (None, text),
    }
}

/// Builds a [`Reply`] from its lines (all with the same code).
pub(crate) fn build_reply(code: u16, texts: &[&str]) -> Reply {
    let status = texts.first().and_then(|t| split_status(code, t).0);
    let lines = texts
        .iter()
        .map(|t| match (status, split_status(code, t)) {
            (Some(s), (Some(here), rest)) if here == s => rest.to_string(),
            _ => (*t).to_string(),
        })
        .collect();
    Reply {
        code,
        status,
        lines,
    }
}

/// What the server's EHLO reply offers that we use.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Extensions {
    pub(crate) starttls: bool,
    pub(crate) pipelining: bool,
    pub(crate) eight_bit_mime: bool,
    pub(crate) size: bool,
}

impl Extensions {
    /// Reads the keywords on the lines after the first (RFC 5321 §4.1.1.1).
    pub(crate) fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or_default();
            let is = |k: &str| keyword.eq_ignore_ascii_case(k);
            ext.starttls |= is("STARTTLS");
            ext.pipelining |= is("PIPELINING");
            ext.eight_bit_mime |= is("8BITMIME");
            ext.size |= is("SIZE");
        }
        ext
    }
}

/// The content as sent after `354`: every line ending normalised to CRLF (a bare CR or LF
/// would be refused by a careful server, and read as a line end by a careless one), a
/// leading `.` doubled, a final CRLF ensured, then the `.` CRLF terminator.
#[cfg(test)]
pub(crate) fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    let mut s = DotStuffer::default();
    s.feed(message, &mut out);
    s.finish(&mut out);
    out
}

/// [`dot_stuff`] fed in pieces of any size, so a large message is sent without a stuffed
/// copy of it: a CR at the end of one piece and an LF at the start of the next are one
/// line end, and a line start carries over.
pub(crate) struct DotStuffer {
    line_start: bool,
    skip_lf: bool,
}

impl Default for DotStuffer {
    fn default() -> DotStuffer {
        DotStuffer {
            line_start: true,
            skip_lf: false,
        }
    }
}

impl DotStuffer {
    /// Append the stuffed form of the next piece to `out`.
    pub(crate) fn feed(&mut self, mut rest: &[u8], out: &mut Vec<u8>) {
        if std::mem::take(&mut self.skip_lf) && rest.first() == Some(&b'\n') {
            rest = rest.get(1..).unwrap_or_default();
        }
        while !rest.is_empty() {
            if self.line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            let Some(i) = memchr::memchr2(b'\r', b'\n', rest) else {
                out.extend_from_slice(rest);
                self.line_start = false;
                return;
            };
            out.extend_from_slice(rest.get(..i).unwrap_or_default());
            out.extend_from_slice(b"\r\n");
            self.line_start = true;
            let cr = rest.get(i) == Some(&b'\r');
            match rest.get(i + 1) {
                Some(b'\n') if cr => rest = rest.get(i + 2..).unwrap_or_default(),
                None if cr => {
                    self.skip_lf = true;
                    rest = &[];
                }
                _ => rest = rest.get(i + 1..).unwrap_or_default(),
            }
        }
    }

    /// End the content: a last CRLF if it lacked one, and the terminator.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5321_4_5_2_dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        // Bare line ends become CRLF, so "\n.\n" cannot smuggle a terminator.
        assert_eq!(dot_stuff(b"a\n.\nb\r.\r"), b"a\r\n..\r\nb\r\n..\r\n.\r\n");
    }

    /// The same bytes in any split give the same stuffed content (a CRLF or a leading dot
    /// across a piece boundary included).
    #[test]
    fn rfc5321_4_5_2_dot_stuffing_in_pieces() {
        let message = b"a\r\n.b\r\n..\r\nc\rd\n.\r\n.e\r";
        let whole = dot_stuff(message);
        for size in 1..message.len() {
            let mut out = Vec::new();
            let mut s = DotStuffer::default();
            for piece in message.chunks(size) {
                s.feed(piece, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out, whole, "pieces of {size}");
        }
    }

    #[test]
    fn rfc5321_4_2_reply_lines() {
        let l = parse_reply_line("250-host says hi").unwrap();
        assert_eq!((l.code, l.more, l.text), (250, true, "host says hi"));
        assert_eq!(parse_reply_line("221").unwrap().text, "");
        assert!(parse_reply_line("25x ok").is_none());
        assert!(parse_reply_line("250/ok").is_none());
        assert!(parse_reply_line("999 x").is_none());
    }

    #[test]
    fn rfc2034_enhanced_status_split() {
        let r = build_reply(550, &["5.1.1 <a@b>: no such user here"]);
        assert_eq!(r, Reply::unknown_user("a@b"));
        let r = build_reply(250, &["4.0.0 wrong class"]);
        assert_eq!(r.status, None);
        let r = build_reply(250, &["host", "SIZE 10", "STARTTLS"]);
        let ext = Extensions::from_ehlo(&r);
        assert!(ext.size && ext.starttls && !ext.pipelining);
    }
}
