//! DATA (RFC 5321 §4.1.1.4, §4.5.2): the `354` go-ahead, then the content up to the one
//! terminator `CRLF . CRLF`, dot-unstuffed, size- and line-limited as it streams in. A bare
//! CR or LF anywhere refuses the message (RFC 5321 §2.3.8) and never ends it: `LF . LF` is
//! SMTP smuggling (CVE-2023-51764 class), so [`DataReader`] ends only on CRLF.CRLF.
//! The handler sees the message only when all of it is well formed.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::info;

use super::conn::Line;
use super::{Flow, Reading, Session, Txn};
use crate::{Envelope, Handler, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// DATA: checks the transaction, then switches the reader to message content.
    pub(super) fn handle_data(&mut self) -> Flow {
        let envelope = match std::mem::replace(&mut self.txn, Txn::Ready) {
            Txn::Rcpt(envelope) => envelope,
            other => {
                let what = match other {
                    Txn::Mail(_) => "need RCPT before DATA",
                    _ => "need MAIL and RCPT before DATA",
                };
                self.txn = other;
                return self.refuse(Reply::bad_sequence(what));
            }
        };
        // RFC 2920 §3.1: DATA ends a pipelined group; content sent before our 354 means the
        // client is not waiting for replies (or is smuggling), so nothing it says is trusted.
        if self.conn.has_buffered() {
            return self.close_with(Reply::sync_error());
        }
        self.reading = Reading::Data(envelope);
        self.reply(Reply::start_data())
    }

    /// Reads the content (within `data_timeout` for all of it), then hands it over.
    pub(super) async fn read_data(&mut self, envelope: Envelope) -> std::io::Result<Flow> {
        let deadline = Instant::now() + self.cfg.data_timeout;
        let max_line = self.cfg.max_data_line;
        let mut reader = DataReader::new(self.cfg.max_message_size, max_line);
        reader.declared = envelope
            .declared_size
            .and_then(|s| usize::try_from(s).ok())
            .map(|s| s.min(self.cfg.max_message_size));
        loop {
            match self.conn.read_line(max_line, deadline, None).await {
                Ok(Line::Ready(n)) => {
                    let done = reader.line(self.conn.buffered().get(..n).unwrap_or_default());
                    self.conn.consume(n);
                    if done {
                        break;
                    }
                }
                Ok(Line::TooLong { crlf }) => reader.long_line(crlf),
                Err(end) => return self.line_failed(end),
            }
        }
        let rcpts = envelope.rcpt_to.len();
        let message = match reader.finish() {
            Ok(message) => message,
            Err(reply) => {
                info!(rcpts, code = reply.code, "message refused");
                return Ok(self.reply(reply));
            }
        };
        let size = message.len();
        let reply = match self.handler.data(&self.info, &envelope, message).await {
            Ok(queue_id) => {
                info!(queue_id = %queue_id, rcpts, size, "message accepted");
                Reply::queued(&queue_id)
            }
            Err(reply) => {
                info!(
                    rcpts,
                    size,
                    code = reply.code,
                    "message refused by the handler"
                );
                reply
            }
        };
        Ok(self.reply(reply))
    }
}

/// Turns content lines into the message: pure, fed one line at a time.
#[derive(Debug)]
pub(crate) struct DataReader {
    max_size: usize,
    max_line: usize,
    message: Vec<u8>,
    /// The previous line ended with CRLF (true at the start: DATA's own CRLF).
    after_crlf: bool,
    too_big: bool,
    line_too_long: bool,
    bare_newline: bool,
    /// The SIZE the client declared (RFC 1870), capped at the limit.
    pub(crate) declared: Option<usize>,
}

/// Content a client must actually send before its declared SIZE is believed.
const BELIEVE_SIZE_AFTER: usize = 1 << 20;

impl DataReader {
    /// A reader for at most `max_size` message bytes in lines of at most `max_line` bytes.
    pub(crate) fn new(max_size: usize, max_line: usize) -> DataReader {
        DataReader {
            max_size,
            max_line,
            message: Vec::new(),
            after_crlf: true,
            too_big: false,
            line_too_long: false,
            bare_newline: false,
            declared: None,
        }
    }

    fn refused(&self) -> bool {
        self.too_big || self.line_too_long || self.bare_newline
    }

    /// Takes one line ending in LF; returns true at the terminator.
    pub(crate) fn line(&mut self, line: &[u8]) -> bool {
        let crlf = line.ends_with(b"\r\n");
        if self.after_crlf && line == b".\r\n" {
            return true;
        }
        let content = if crlf {
            line.get(..line.len() - 2)
        } else {
            self.bare_newline = true;
            line.strip_suffix(b"\n")
        };
        if memchr::memchr(b'\r', content.unwrap_or_default()).is_some() {
            self.bare_newline = true;
        }
        if line.len() > self.max_line {
            self.line_too_long = true;
        }
        // RFC 5321 §4.5.2: a line that starts with a period loses that period.
        let line = match line.strip_prefix(b".") {
            Some(rest) if self.after_crlf => rest,
            _ => line,
        };
        self.after_crlf = crlf;
        if self.message.len() + line.len() > self.max_size {
            self.too_big = true;
        }
        if self.refused() {
            // Keep reading to the terminator, but keep nothing: the message is refused.
            self.message = Vec::new();
        } else {
            self.grow_for(line.len());
            self.message.extend_from_slice(line);
        }
        false
    }

    /// Once a client has sent a real megabyte, grow straight to its declared size instead of
    /// doubling (which briefly holds two copies of a large message); a declared size alone,
    /// before any content, reserves nothing.
    fn grow_for(&mut self, more: usize) {
        let spare = self.message.capacity() - self.message.len();
        let (len, declared) = (self.message.len(), self.declared.unwrap_or(0));
        if spare < more && len >= BELIEVE_SIZE_AFTER && declared > len + more {
            self.message.reserve_exact(declared + declared / 64 - len);
        }
    }

    /// Notes a line that was too long and was thrown away.
    pub(crate) fn long_line(&mut self, crlf: bool) {
        self.line_too_long = true;
        self.after_crlf = crlf;
        self.message = Vec::new();
    }

    /// The message, or the reply refusing it.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Reply> {
        if self.line_too_long {
            Err(Reply::data_line_too_long(self.max_line))
        } else if self.too_big {
            Err(Reply::too_big(self.max_size))
        } else if self.bare_newline {
            Err(Reply::bare_newline())
        } else {
            Ok(self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&[u8]]) -> (Result<Vec<u8>, Reply>, usize) {
        let mut r = DataReader::new(100, 20);
        for (i, l) in lines.iter().enumerate() {
            if r.line(l) {
                return (r.finish(), i);
            }
        }
        (r.finish(), usize::MAX)
    }

    #[test]
    fn rfc5321_4_5_2_dot_unstuffing() {
        let (msg, end) = read(&[b"a\r\n", b"..b\r\n", b".\r\n"]);
        assert_eq!(msg.unwrap(), b"a\r\n.b\r\n");
        assert_eq!(end, 2);
    }

    #[test]
    fn rfc5321_2_3_8_lf_dot_lf_is_not_the_end() {
        let (msg, end) = read(&[b"a\n", b".\n", b"b\r\n", b".\r\n"]);
        assert_eq!(end, 3);
        assert_eq!(msg.unwrap_err(), Reply::bare_newline());
        // A CRLF line after a bare-LF line: "\n.\r\n" is not CRLF.CRLF either.
        let (msg, end) = read(&[b"a\n", b".\r\n", b".\r\n"]);
        assert_eq!(end, 2);
        assert_eq!(msg.unwrap_err(), Reply::bare_newline());
    }

    #[test]
    fn rfc5321_2_3_8_bare_cr_refused() {
        let (msg, _) = read(&[b"a\r.\rb\r\n", b".\r\n"]);
        assert_eq!(msg.unwrap_err(), Reply::bare_newline());
    }

    #[test]
    fn never_panics_and_keeps_nothing_when_refused() {
        let pieces: &[&[u8]] = &[b".", b"\r", b"\n", b"\r\n", b"a", b"..", b".\r\n"];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut stream = Vec::new();
            for _ in 0..next() % 16 {
                stream.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let mut r = DataReader::new(8, 6);
            for line in stream.split_inclusive(|b| *b == b'\n') {
                if line.ends_with(b"\n") && r.line(line) {
                    break;
                }
            }
            if r.refused() {
                assert!(r.message.is_empty());
            }
            assert!(r.message.len() <= 8);
        }
    }

    #[test]
    fn rfc1870_size_counted_and_content_dropped() {
        let mut r = DataReader::new(10, 100);
        assert!(!r.line(b"0123456789\r\n"));
        assert!(r.message.is_empty());
        assert!(r.line(b".\r\n"));
        assert_eq!(r.finish().unwrap_err(), Reply::too_big(10));
    }
}
