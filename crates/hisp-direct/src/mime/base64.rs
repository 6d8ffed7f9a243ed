//! Base64 content-transfer-encoding (RFC 2045 §6.8) for S/MIME bodies: decoding in place
//! with lines of any length (the .NET RI writes 64 KiB lines) and encoding in 76-column
//! CRLF lines. Decoding in place is what keeps a 100 MiB message at one copy in memory.

use super::MimeError;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::ops::Range;

/// Lenient about padding and trailing bits, strict about the alphabet.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Bytes of base64 text decoded per step: a multiple of 4.
const CHUNK: usize = 64 * 1024;

/// Decode the base64 text in `buf[range]`, writing the bytes to the front of the range, and
/// return where the decoded bytes are. Whitespace (CR, LF, space, tab) anywhere is skipped.
pub fn decode_in_place(buf: &mut [u8], range: Range<usize>) -> Result<Range<usize>, MimeError> {
    let start = range.start;
    let mut read = range.start;
    let mut write = range.start;
    let mut text = Vec::with_capacity(CHUNK);
    let mut out = vec![0u8; CHUNK / 4 * 3 + 3];
    let mut finished = false;
    while read < range.end && !finished {
        text.clear();
        // Gather up to CHUNK base64 characters, copying whole runs between whitespace.
        while read < range.end && text.len() < CHUNK {
            let want = CHUNK - text.len();
            let window = &buf[read..range.end.min(read + want)];
            let run = window
                .iter()
                .position(|b| is_ws(*b))
                .unwrap_or(window.len());
            text.extend_from_slice(&window[..run]);
            read += run;
            while read < range.end && is_ws(buf[read]) {
                read += 1;
            }
        }
        // Decode whole quanta now; keep the partial tail for the next chunk.
        let whole = if read < range.end {
            text.len() / 4 * 4
        } else {
            text.len()
        };
        if let Some(p) = text[..whole].iter().position(|b| *b == b'=') {
            finished = true;
            if text[p..].iter().any(|b| *b != b'=')
                || buf[read..range.end].iter().any(|b| !is_ws(*b))
            {
                return Err(MimeError::Base64 { offset: start + p });
            }
        }
        let n = LENIENT
            .decode_slice(&text[..whole], &mut out)
            .map_err(|e| MimeError::Base64 {
                offset: bad_offset(&e, read),
            })?;
        buf[write..write + n].copy_from_slice(&out[..n]);
        write += n;
        let tail = text.len() - whole;
        if tail > 0 {
            // Step back so the partial quantum is read again with the next chunk.
            read = rewind(buf, read, tail);
        }
    }
    Ok(start..write)
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
    let lines = data.len().div_ceil(LINE_IN);
    out.reserve(lines * 78);
    for chunk in data.chunks(LINE_IN) {
        let at = out.len();
        out.resize(at + 76, 0);
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(chunk, &mut out[at..])
            .unwrap_or(0);
        out.truncate(at + n);
        out.extend_from_slice(b"\r\n");
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

/// Move `read` back over `chars` base64 characters (skipping whitespace).
fn rewind(buf: &[u8], mut read: usize, mut chars: usize) -> usize {
    while chars > 0 {
        read -= 1;
        if !is_ws(buf[read]) {
            chars -= 1;
        }
    }
    read
}

fn bad_offset(e: &base64::DecodeSliceError, read: usize) -> usize {
    match e {
        base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidByte(i, _)) => *i,
        _ => read,
    }
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
    fn padding_and_garbage() {
        assert_eq!(decode(b"YWJj\r\nZA==\r\n").unwrap(), b"abcd");
        assert_eq!(decode(b"YWJjZA").unwrap(), b"abcd");
        assert!(decode(b"YW*j").is_err());
        assert!(decode(b"YQ==YQ==").is_err());
        assert_eq!(decode(b"").unwrap(), b"");
    }
}
