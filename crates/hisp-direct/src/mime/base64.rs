//! Base64 content-transfer-encoding (RFC 2045 §6.8) for S/MIME bodies: decoding in place
//! with lines of any length (the .NET RI writes 64 KiB lines) and encoding in 76-column
//! CRLF lines. Decoding in place is what keeps a 100 MiB message at one copy in memory.

use super::MimeError;
use std::ops::Range;

/// Decode the base64 text in `buf[range]`, writing the bytes to the front of the range, and
/// return where the decoded bytes are. Whitespace (CR, LF, space, tab) anywhere is skipped;
/// padding may be present or absent (WHATWG forgiving base64, which mail readers share).
pub fn decode_in_place(buf: &mut [u8], range: Range<usize>) -> Result<Range<usize>, MimeError> {
    let start = range.start;
    // Drop line breaks line by line (memchr finds them fast); anything else the decoder
    // skips itself.
    let (mut read, mut write) = (range.start, range.start);
    while read < range.end {
        // The RFC 2045 §6.8 line of 76 characters and CRLF, copied as a fixed-size block.
        if let Some(line) = buf.get(read..read + 78).filter(|l| l[76..] == *b"\r\n") {
            let block: [u8; 76] = line[..76].try_into().unwrap_or([b'='; 76]);
            buf[write..write + 76].copy_from_slice(&block);
            write += 76;
            read += 78;
            continue;
        }
        let nl = memchr::memchr(b'\n', &buf[read..range.end]).map_or(range.end, |i| read + i);
        let mut line_end = nl;
        if line_end > read && buf[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        buf.copy_within(read..line_end, write);
        write += line_end - read;
        read = nl + 1;
    }
    let decoded = base64_simd::forgiving_decode_inplace(&mut buf[start..write]).map(|d| d.len());
    match decoded {
        Ok(len) => Ok(start..start + len),
        Err(_) => Err(MimeError::Base64 {
            offset: start + first_bad(&buf[start..write]),
        }),
    }
}

/// Where the first character outside the alphabet is (for the error message).
fn first_bad(text: &[u8]) -> usize {
    let pad = text.iter().position(|b| *b == b'=').unwrap_or(text.len());
    text.iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') || is_ws(*b)))
        .or_else(|| {
            text[pad..]
                .iter()
                .position(|b| *b != b'=' && !is_ws(*b))
                .map(|i| pad + i)
        })
        .unwrap_or(0)
}

/// Decode base64 text into a new vector (small parts such as detached signatures).
pub fn decode(text: &[u8]) -> Result<Vec<u8>, MimeError> {
    let mut buf = text.to_vec();
    let len = buf.len();
    let r = decode_in_place(&mut buf, 0..len)?;
    buf.truncate(r.end);
    Ok(buf)
}

/// Append `data` as base64 in lines of 76 characters, each ended by CRLF.
pub fn encode_lines(data: &[u8], out: &mut Vec<u8>) {
    const LINE_IN: usize = 57; // 57 bytes → 76 characters
    const BLOCK: usize = LINE_IN * 1024;
    let lines = data.len().div_ceil(LINE_IN);
    out.reserve(lines * 78);
    let mut scratch = vec![0u8; data.len().min(BLOCK).div_ceil(3) * 4];
    for block in data.chunks(BLOCK) {
        let text = base64_simd::STANDARD.encode(block, base64_simd::Out::from_slice(&mut scratch));
        for line in text.chunks(76) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Base64 in 76-column CRLF lines, fed in pieces of any size (a streaming
/// [`encode_lines`]).
pub struct LineEncoder<'a> {
    out: &'a mut Vec<u8>,
    pending: Vec<u8>,
}

impl<'a> LineEncoder<'a> {
    /// Encode into `out`.
    pub fn new(out: &'a mut Vec<u8>) -> LineEncoder<'a> {
        LineEncoder {
            out,
            pending: Vec::with_capacity(57),
        }
    }

    /// Add bytes.
    pub fn write(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            let take = (57 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 57 {
                return;
            }
            encode_lines(&self.pending, self.out);
            self.pending.clear();
        }
        let whole = data.len() / 57 * 57;
        encode_lines(&data[..whole], self.out);
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// Bytes encoded so far and not yet taken by [`Self::output`].
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// The encoded output so far, for a caller that writes it out and clears it.
    pub fn output(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Write the last, shorter line.
    pub fn finish(self) {
        encode_lines(&self.pending, self.out);
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2045_6_8_any_line_length_and_whitespace() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut enc = Vec::new();
        encode_lines(&data, &mut enc);
        assert!(enc.split(|b| *b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(decode(&enc).unwrap(), data);
        // One giant line, LF only, and stray spaces.
        let one: Vec<u8> = enc.iter().copied().filter(|b| !is_ws(*b)).collect();
        assert_eq!(decode(&one).unwrap(), data);
        let mut spaced = one.clone();
        spaced.insert(5, b' ');
        spaced.insert(70_000, b'\n');
        assert_eq!(decode(&spaced).unwrap(), data);
    }

    #[test]
    fn streaming_encoder_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut one = Vec::new();
        encode_lines(&data, &mut one);
        let mut streamed = Vec::new();
        let mut e = LineEncoder::new(&mut streamed);
        for piece in data.chunks(37).chain(std::iter::once(&[][..])) {
            e.write(piece);
        }
        e.finish();
        assert_eq!(one, streamed);
    }

    #[test]
    fn padding_and_garbage() {
        assert_eq!(decode(b"YWJj\r\nZA==\r\n").unwrap(), b"abcd");
        assert_eq!(decode(b"YWJjZA").unwrap(), b"abcd");
        assert!(decode(b"YW*j").is_err());
        assert!(decode(b"YQ==YQ==").is_err());
        assert_eq!(decode(b"").unwrap(), b"");
    }
}
