//! DATA (RFC 5321 §4.1.1.4, §4.5.2): the `354` go-ahead, then the content up to the one
//! terminator `CRLF . CRLF`, dot-unstuffed, size- and line-limited as it streams in. A bare
//! CR or LF anywhere refuses the message (RFC 5321 §2.3.8) and never ends it: `LF . LF` is
//! SMTP smuggling (CVE-2023-51764 class), so [`DataReader`] ends only on CRLF.CRLF.
//! The handler sees the message only when all of it is well formed.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::budget::Claim;

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
        reader.claim = self.cfg.data_budget.as_ref().map(|b| b.claim());
        reader.declared = envelope
            .declared_size
            .and_then(|s| usize::try_from(s).ok())
            .map(|s| s.min(self.cfg.max_message_size));
        loop {
            match self.conn.read_line(max_line, deadline, None).await {
                Ok(Line::Ready(_)) => {
                    // Every complete line buffered, not only the first (one read brings
                    // hundreds of base64 lines); the rest of a partial line stays.
                    let buffered = self.conn.buffered();
                    let complete = memchr::memrchr(b'\n', buffered).map_or(0, |i| i + 1);
                    let (used, done) = reader.lines(buffered.get(..complete).unwrap_or_default());
                    self.conn.consume(used);
                    if done {
                        break;
                    }
                }
                Ok(Line::TooLong { crlf }) => reader.long_line(crlf),
                Err(end) => return self.line_failed(end),
            }
        }
        let rcpts = envelope.rcpt_to.len();
        if reader.no_room {
            if let Some(b) = &self.cfg.data_budget {
                b.note_refusal();
                warn!(
                    in_use = b.in_use(),
                    limit = b.limit(),
                    "messages being received hold all the memory allowed (smtp.data_memory): \
                     answering 452 4.3.1; the sender retries later"
                );
            }
        }
        // Held until the handler is done with the message (committed or refused).
        let _claim = reader.claim.take();
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
                // A client that delivers mail is not harvesting addresses (rcpt.rs).
                self.refused_rcpts = 0;
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
    /// The shared memory budget had no room for the message ([`crate::DataBudget`]).
    pub(crate) no_room: bool,
    /// What the message holds of that budget, if there is one.
    pub(crate) claim: Option<Claim>,
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
            no_room: false,
            claim: None,
            declared: None,
        }
    }

    fn refused(&self) -> bool {
        self.too_big || self.line_too_long || self.bare_newline || self.no_room
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
            self.drop_message();
        } else if self.make_room(line.len()) {
            self.message.extend_from_slice(line);
        }
        false
    }

    /// Takes complete lines (`block` ends with LF, or is empty); returns the bytes used and
    /// whether the terminator was among them (the bytes after it are not used). The result
    /// is what [`line`](Self::line) on each line in turn gives; runs of ordinary lines
    /// (CRLF-ended, no other CR, within the limit, not starting with a period) are checked
    /// with one pass over their line ends and copied at once. Every byte is looked at a
    /// bounded number of times, whatever the input.
    pub(crate) fn lines(&mut self, block: &[u8]) -> (usize, bool) {
        let mut pos = 0;
        while pos < block.len() {
            let rest = block.get(pos..).unwrap_or_default();
            if !self.refused() && self.after_crlf {
                let (run, taken) = self.plain_run(rest);
                pos += run;
                if !taken {
                    // Over the size limit, or a bare CR inside: line by line, as it came.
                    let run = rest.get(..run).unwrap_or_default();
                    for line in run.split_inclusive(|b| *b == b'\n') {
                        self.line(line);
                    }
                }
            }
            let rest = block.get(pos..).unwrap_or_default();
            let Some(end) = memchr::memchr(b'\n', rest) else {
                break;
            };
            pos += end + 1;
            if self.line(rest.get(..=end).unwrap_or_default()) {
                return (pos, true);
            }
        }
        (pos, false)
    }

    /// The run of ordinary lines at the front of `block` (see [`lines`](Self::lines)):
    /// its length, and whether it was taken (false when it holds a bare CR or would pass
    /// the size limit; the caller then feeds it to `line` one line at a time).
    fn plain_run(&mut self, block: &[u8]) -> (usize, bool) {
        let (mut start, mut crlf_lines) = (0, 0);
        for end in memchr::memchr_iter(b'\n', block) {
            let line = block.get(start..=end).unwrap_or_default();
            let special = line.len() > self.max_line || line.first() == Some(&b'.');
            if special || !line.ends_with(b"\r\n") {
                break;
            }
            crlf_lines += 1;
            start = end + 1;
        }
        let run = block.get(..start).unwrap_or_default();
        // A CR anywhere but before each line's LF is a bare one.
        let ordinary = memchr::memchr_iter(b'\r', run).count() == crlf_lines;
        if !ordinary || self.message.len() + run.len() > self.max_size {
            return (run.len(), false);
        }
        if self.make_room(run.len()) {
            self.message.extend_from_slice(run);
        }
        (run.len(), true)
    }

    /// Makes room for `more` bytes, within the budget if there is one; false (the message
    /// then refused and dropped) when the budget has none. Growth doubles, never past the
    /// size limit; once a client has sent a real megabyte it goes straight to the declared
    /// size instead (doubling briefly holds two copies of a large message). A declared size
    /// alone, before any content, reserves nothing.
    fn make_room(&mut self, more: usize) -> bool {
        let (len, cap) = (self.message.len(), self.message.capacity());
        if cap - len >= more {
            return true;
        }
        let declared = self.declared.unwrap_or(0);
        let target = if len >= BELIEVE_SIZE_AFTER && declared > len + more {
            declared + declared / 64
        } else {
            cap.saturating_mul(2).max(1024).min(self.max_size)
        };
        let target = target.max(len + more);
        if let Some(claim) = &mut self.claim {
            if !claim.cover(target) {
                self.no_room = true;
                self.drop_message();
                return false;
            }
        }
        self.message.reserve_exact(target - len);
        true
    }

    /// Drops a refused message and gives back its share of the budget at once: the rest
    /// of it may take long to arrive, and it is thrown away as it does.
    fn drop_message(&mut self) {
        self.message = Vec::new();
        self.claim = None;
    }

    /// Notes a line that was too long and was thrown away.
    pub(crate) fn long_line(&mut self, crlf: bool) {
        self.line_too_long = true;
        self.after_crlf = crlf;
        self.drop_message();
    }

    /// The message, or the reply refusing it.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Reply> {
        if self.line_too_long {
            Err(Reply::data_line_too_long(self.max_line))
        } else if self.too_big {
            Err(Reply::too_big(self.max_size))
        } else if self.bare_newline {
            Err(Reply::bare_newline())
        } else if self.no_room {
            Err(Reply::insufficient_storage())
        } else {
            Ok(self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift generator: random streams that are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Up to `most` pieces, each picked from `pieces`, end to end.
        fn stream(&mut self, pieces: &[&[u8]], most: u64) -> Vec<u8> {
            let mut stream = Vec::new();
            for _ in 0..self.next() % most {
                let i = (self.next() % pieces.len() as u64) as usize;
                stream.extend_from_slice(pieces[i]);
            }
            stream
        }
    }

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
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let stream = rng.stream(pieces, 16);
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

    /// A reader's whole observable state.
    fn state(r: &DataReader) -> (&[u8], [bool; 4]) {
        let flags = [r.after_crlf, r.too_big, r.line_too_long, r.bare_newline];
        (&r.message, flags)
    }

    /// RFC 5321 §4.5.2 / §2.3.8 with blocks: `lines` over any split of a stream into runs
    /// of complete lines ends where `line` on each line in turn ends (the terminator, or
    /// the stream's last LF), with the same message, size, line-length and bare-newline
    /// verdicts.
    #[test]
    fn rfc5321_4_5_2_lines_in_blocks_match_line_by_line() {
        let pieces: &[&[u8]] = &[
            b".",
            b"\r",
            b"\n",
            b"\r\n",
            b"ab",
            b"..",
            b".\r\n",
            b"\r\n.\r\n",
            b"0123456",
            b"\r\n\r\n",
            b"xy\r\n",
            b"xy\r\n",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let stream = rng.stream(pieces, 24);
            let (max_size, max_line) = (4 + rng.next() % 40, 3 + rng.next() % 10);
            let (max_size, max_line) = (max_size as usize, max_line as usize);
            let mut one = DataReader::new(max_size, max_line);
            let mut used_one = 0;
            let mut done_one = false;
            for line in stream.split_inclusive(|b| *b == b'\n') {
                if !line.ends_with(b"\n") {
                    break;
                }
                used_one += line.len();
                if one.line(line) {
                    done_one = true;
                    break;
                }
            }
            // The same stream in blocks that end at random line ends.
            let complete = stream
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let mut blocks = DataReader::new(max_size, max_line);
            let (mut pos, mut done) = (0, false);
            while pos < complete && !done {
                let ends: Vec<usize> = stream[pos..complete]
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| pos + i + 1)
                    .collect();
                let cut = ends[(rng.next() % ends.len() as u64) as usize];
                let (used, d) = blocks.lines(&stream[pos..cut]);
                assert!(
                    d || used == cut - pos,
                    "a block without the end is used whole"
                );
                pos += used;
                done = d;
            }
            let shown = String::from_utf8_lossy(&stream);
            assert_eq!((pos, done), (used_one, done_one), "{shown:?}");
            assert_eq!(
                state(&blocks),
                state(&one),
                "{shown:?} max {max_size}/{max_line}"
            );
        }
    }

    #[test]
    fn rfc5321_4_5_2_lines_stops_at_the_terminator_and_leaves_what_follows() {
        let mut r = DataReader::new(100, 20);
        let block = b"a\r\n..b\r\n.\r\nQUIT\r\n";
        assert_eq!(r.lines(block), (block.len() - 6, true));
        assert_eq!(r.finish().unwrap(), b"a\r\n.b\r\n");
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
