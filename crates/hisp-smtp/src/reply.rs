//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463, RFC 5248). Every
//! reply the server sends is made here, so the wording and codes stay consistent.

use std::fmt;

/// An SMTP reply: basic code, enhanced status, text (one or more lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status (`class.subject.detail`), if any.
    pub status: Option<(u8, u16, u16)>,
    /// The text lines.
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply with one line of text.
    pub fn new(code: u16, status: Option<(u8, u16, u16)>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// True for 2xx/3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True for 5xx: do not retry.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The wire form, CRLF-terminated, multi-line with `-` continuations.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 < n { '-' } else { ' ' };
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let status = match (self.status, i) {
                (Some((c, s, d)), 0) => format!("{c}.{s}.{d} "),
                _ => String::new(),
            };
            let head = format!("{}{sep}{status}", self.code);
            out.extend_from_slice(head.as_bytes());
            push_text(&mut out, text, MAX_LINE.saturating_sub(head.len() + 2));
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// `250 2.0.0 Ok`
    pub fn ok() -> Reply {
        Reply::new(250, Some((2, 0, 0)), "Ok")
    }
    /// `250 2.0.0 <queue id> queued` after DATA.
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, Some((2, 0, 0)), format!("Ok: queued as {id}"))
    }
    /// `451 4.3.0` the message could not be stored: try again later.
    pub fn storage_failure() -> Reply {
        Reply::new(
            451,
            Some((4, 3, 0)),
            "Temporary failure storing the message, try again later",
        )
    }
    /// `452 4.3.1` out of storage.
    pub fn insufficient_storage() -> Reply {
        Reply::new(452, Some((4, 3, 1)), "Insufficient system storage")
    }
    /// `550 5.1.1` no such user here.
    pub fn unknown_user(addr: &str) -> Reply {
        Reply::new(550, Some((5, 1, 1)), format!("<{addr}>: no such user here"))
    }
    /// `550 5.7.1` relaying not permitted (recipient not in a local domain).
    pub fn relay_denied(addr: &str) -> Reply {
        Reply::new(
            550,
            Some((5, 7, 1)),
            format!("<{addr}>: relay access denied"),
        )
    }
    /// `553 5.7.1` the authenticated user may not send as this address.
    pub fn sender_not_owned(addr: &str) -> Reply {
        Reply::new(
            553,
            Some((5, 7, 1)),
            format!("<{addr}>: sender address not owned by the authenticated user"),
        )
    }
    /// `550 5.7.1` a header (From) names an address the user does not own.
    pub fn from_not_owned(addr: &str) -> Reply {
        Reply::new(
            550,
            Some((5, 7, 1)),
            format!("From: {addr} is not the authenticated user"),
        )
    }
    /// `554 5.6.0` the message is malformed (reason given).
    pub fn bad_message(reason: &str) -> Reply {
        Reply::new(554, Some((5, 6, 0)), format!("Message refused: {reason}"))
    }
    /// `530 5.7.0` authentication required.
    pub fn auth_required() -> Reply {
        Reply::new(530, Some((5, 7, 0)), "Authentication required")
    }
    /// `530 5.7.0` must issue STARTTLS first.
    pub fn tls_required() -> Reply {
        Reply::new(530, Some((5, 7, 0)), "Must issue a STARTTLS command first")
    }
    /// `235 2.7.0` authentication succeeded.
    pub fn auth_ok() -> Reply {
        Reply::new(235, Some((2, 7, 0)), "Authentication successful")
    }
    /// `535 5.7.8` bad credentials.
    pub fn auth_failed() -> Reply {
        Reply::new(535, Some((5, 7, 8)), "Authentication credentials invalid")
    }
    /// `454 4.7.0` authentication temporarily unavailable.
    pub fn auth_temp() -> Reply {
        Reply::new(454, Some((4, 7, 0)), "Temporary authentication failure")
    }
    /// `503 5.5.1` bad sequence of commands (what was expected).
    pub fn bad_sequence(what: &str) -> Reply {
        Reply::new(
            503,
            Some((5, 5, 1)),
            format!("Bad sequence of commands: {what}"),
        )
    }
    /// `500 5.5.2` syntax error / unknown command.
    pub fn syntax(what: &str) -> Reply {
        Reply::new(500, Some((5, 5, 2)), format!("Syntax error: {what}"))
    }
    /// `501 5.5.4` bad parameters.
    pub fn bad_args(what: &str) -> Reply {
        Reply::new(
            501,
            Some((5, 5, 4)),
            format!("Syntax error in parameters: {what}"),
        )
    }
    /// `500 5.5.6` line too long.
    pub fn line_too_long(max: usize) -> Reply {
        Reply::new(
            500,
            Some((5, 5, 6)),
            format!("Line too long (maximum {max} octets)"),
        )
    }
    /// `552 5.3.4` message too big.
    pub fn too_big(max: usize) -> Reply {
        Reply::new(
            552,
            Some((5, 3, 4)),
            format!("Message size exceeds the limit of {max} octets"),
        )
    }
    /// `452 4.5.3` too many recipients.
    pub fn too_many_recipients(max: usize) -> Reply {
        Reply::new(
            452,
            Some((4, 5, 3)),
            format!("Too many recipients (maximum {max})"),
        )
    }
    /// `421 4.4.2` timeout, closing.
    pub fn timeout(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 4, 2)),
            format!("{host} timeout, closing connection"),
        )
    }
    /// `421 4.7.0` too many errors, closing.
    pub fn too_many_errors(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 7, 0)),
            format!("{host} too many errors, closing connection"),
        )
    }
    /// `554 5.5.0` protocol synchronisation error (talking before the greeting or 354).
    pub fn sync_error() -> Reply {
        Reply::new(
            554,
            Some((5, 5, 0)),
            "Protocol error: improper command pipelining",
        )
    }
    /// `550 5.6.2` bare LF or CR in the data (RFC 5321 §2.3.8).
    pub fn bare_newline() -> Reply {
        Reply::new(
            550,
            Some((5, 6, 2)),
            "Message refused: bare LF or CR in the data (RFC 5321 §2.3.8)",
        )
    }

    /// `220 <host> ESMTP Hisp`, the greeting (no enhanced status: RFC 2034 §3 leaves it out).
    pub fn greeting(host: &str) -> Reply {
        Reply::new(220, None, format!("{host} ESMTP Hisp"))
    }
    /// `250 <host>` for HELO (no extensions).
    pub fn helo(host: &str) -> Reply {
        Reply::new(250, None, host.to_string())
    }
    /// The multi-line `250` EHLO reply: our name, then one extension keyword per line.
    pub fn ehlo(host: &str, client: &str, extensions: &[String]) -> Reply {
        let mut lines = vec![format!("{host} Hello {client}")];
        lines.extend(extensions.iter().cloned());
        Reply {
            code: 250,
            status: None,
            lines,
        }
    }
    /// `221 2.0.0 <host> closing connection` after QUIT.
    pub fn closing(host: &str) -> Reply {
        Reply::new(221, Some((2, 0, 0)), format!("{host} closing connection"))
    }
    /// `354` go ahead with the message content.
    pub fn start_data() -> Reply {
        Reply::new(354, None, "Start mail input; end with <CRLF>.<CRLF>")
    }
    /// `220 2.0.0` go ahead with the TLS handshake (RFC 3207 §4).
    pub fn ready_tls() -> Reply {
        Reply::new(220, Some((2, 0, 0)), "Ready to start TLS")
    }
    /// `454 4.7.0` STARTTLS is not available on this listener.
    pub fn tls_unavailable() -> Reply {
        Reply::new(454, Some((4, 7, 0)), "TLS not available")
    }
    /// `252 2.5.0` VRFY is not answered (RFC 5321 §3.5.3), but mail will be tried.
    pub fn cannot_vrfy() -> Reply {
        Reply::new(
            252,
            Some((2, 5, 0)),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    /// `214 2.0.0` a pointer to the RFC.
    pub fn help() -> Reply {
        Reply::new(
            214,
            Some((2, 0, 0)),
            "See RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)",
        )
    }
    /// `502 5.5.1` the command is known but not offered here.
    pub fn not_implemented(what: &str) -> Reply {
        Reply::new(
            502,
            Some((5, 5, 1)),
            format!("Command not implemented: {what}"),
        )
    }
    /// `555 5.5.4` a MAIL/RCPT parameter we do not know (RFC 5321 §4.1.1.11).
    pub fn unknown_param(name: &str) -> Reply {
        Reply::new(
            555,
            Some((5, 5, 4)),
            format!("Parameter not recognized or not implemented: {name}"),
        )
    }
    /// `504 5.5.4` an AUTH mechanism we do not offer (RFC 4954 §6).
    pub fn auth_mechanism(name: &str) -> Reply {
        Reply::new(
            504,
            Some((5, 5, 4)),
            format!("Unrecognized authentication type: {name}"),
        )
    }
    /// `334 <base64>` a SASL challenge (RFC 4954 §4); empty for "send your response".
    pub fn auth_challenge(base64: &str) -> Reply {
        Reply::new(334, None, base64.to_string())
    }
    /// `501 5.0.0` the client cancelled the exchange with `*` (RFC 4954 §4).
    pub fn auth_cancelled() -> Reply {
        Reply::new(501, Some((5, 0, 0)), "Authentication cancelled")
    }
    /// `501 5.5.2` a SASL response that is not base64 or not well formed (RFC 4954 §4).
    pub fn auth_malformed(what: &str) -> Reply {
        Reply::new(
            501,
            Some((5, 5, 2)),
            format!("Cannot decode the authentication response: {what}"),
        )
    }
    /// `421 4.7.0` too many failed AUTH attempts, closing.
    pub fn too_many_auth_failures(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 7, 0)),
            format!("{host} too many authentication failures, closing connection"),
        )
    }
    /// `421 4.3.2` no room for another session now.
    pub fn busy(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 3, 2)),
            format!("{host} too many connections, try again later"),
        )
    }
    /// `421 4.7.0` this client address has as many sessions as it may (closing).
    pub fn busy_for_client(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 7, 0)),
            format!("{host} too many connections from your address, try again later"),
        )
    }
    /// `421 4.3.2` the service is stopping.
    pub fn shutting_down(host: &str) -> Reply {
        Reply::new(
            421,
            Some((4, 3, 2)),
            format!("{host} shutting down, try again later"),
        )
    }
    /// `552 5.3.4` a line in the message content is longer than we take.
    pub fn data_line_too_long(max: usize) -> Reply {
        Reply::new(
            552,
            Some((5, 3, 4)),
            format!("Message refused: line too long (maximum {max} octets)"),
        )
    }
}

/// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, its CRLF included.
const MAX_LINE: usize = 512;

/// Appends one line's text, cut to `room` octets (at a character boundary), with any CR or
/// LF made a space. Replies echo what clients send (an EHLO name, an address), so neither a
/// long argument nor a stray line end may stretch a line past the limit or start a line of
/// the client's making.
fn push_text(out: &mut Vec<u8>, text: &str, room: usize) {
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let line_end = |b: u8| b == b'\r' || b == b'\n';
    out.extend(
        text.as_bytes()[..end]
            .iter()
            .map(|&b| if line_end(b) { b' ' } else { b }),
    );
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.to_bytes())
            .trim_end()
            .replace("\r\n", " / ");
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5321_4_2_1_multiline_and_enhanced_status() {
        let r = Reply {
            code: 250,
            status: None,
            lines: vec!["host".into(), "SIZE 10".into()],
        };
        assert_eq!(r.to_bytes(), b"250-host\r\n250 SIZE 10\r\n");
        assert_eq!(Reply::ok().to_bytes(), b"250 2.0.0 Ok\r\n");
        assert!(Reply::storage_failure().is_transient());
        assert!(Reply::unknown_user("a@b").is_permanent());
    }

    /// RFC 5321 §4.5.3.1.5: reply lines fit 512 octets whatever a client made us echo
    /// (found by fuzz/fuzz_targets/smtp_session: a 500-octet EHLO name gave a 533-octet
    /// line), and a CR or LF in echoed text never ends a line early.
    #[test]
    fn rfc5321_4_5_3_1_5_reply_lines_fit_512_octets() {
        let name = "é".repeat(1000);
        let r = Reply::ehlo("mx.test", &name, &["SIZE 10".into()]);
        let bytes = r.to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.split_inclusive("\r\n").collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("250-mx.test Hello éé"));
        assert!(lines.iter().all(|l| l.len() <= 512), "{lines:?}");
        assert!(lines[0].len() >= 511, "cut at the limit, not before");
        assert_eq!(lines[1], "250 SIZE 10\r\n");

        let r = Reply::unknown_user("a@b\r\n250 2.0.0 Ok");
        assert_eq!(
            r.to_bytes(),
            b"550 5.1.1 <a@b  250 2.0.0 Ok>: no such user here\r\n"
        );
    }
}
