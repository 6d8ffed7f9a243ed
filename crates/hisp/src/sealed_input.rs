//! Reading a large sealed message from a file with its base64 body decoded as it is read:
//! the opener then gets the headers and the DER (marked `Content-Transfer-Encoding: binary`),
//! so a 100 MiB message never has its 137 MiB base64 form in memory, only the ~100 MiB DER
//! that is decrypted in place. Anything unexpected (not S/MIME, not base64, bad base64)
//! falls back to the file as it is, so the opener reports the precise problem.

use anyhow::{Context, Result};
use hisp_direct::mime::{self, Entity};
use std::io::Read;
use std::path::Path;

/// Files smaller than this are read whole.
const STREAM_FROM: u64 = 8 << 20;
/// Read and decoded this much at a time.
const PIECE: usize = 1 << 20;

/// The message in `path`, its base64 body decoded when that is safe.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read message {}", path.display()))?
        .len();
    if size < STREAM_FROM {
        return whole(path);
    }
    match decoded(path, size)? {
        Some(v) => Ok(v),
        None => whole(path),
    }
}

fn whole(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read message {}", path.display()))
}

/// The headers (with the transfer encoding made `binary`) and the decoded body, or `None`
/// when the file is not a base64 S/MIME message that decodes cleanly.
fn decoded(path: &Path, size: u64) -> Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read message {}", path.display()))?;
    let mut piece = vec![0u8; PIECE];
    let n = read_full(&mut f, &mut piece)?;
    let head = piece.get(..n).unwrap_or_default();
    let Some(body_start) = header_end(head) else {
        return Ok(None);
    };
    let headers = head.get(..body_start).unwrap_or_default();
    {
        let e = Entity::parse(headers);
        let ct = e.content_type();
        let smime = matches!(
            ct.mime.as_str(),
            "application/pkcs7-mime" | "application/x-pkcs7-mime"
        );
        if !smime || e.transfer_encoding() != "base64" {
            return Ok(None);
        }
    }
    let mut out = Vec::with_capacity(body_start + usize::try_from(size).unwrap_or(0) / 4 * 3 + 64);
    out.extend_from_slice(&binary_headers(headers));
    let mut carry: Vec<u8> = Vec::with_capacity(PIECE + 4);
    let mut feed = |bytes: &[u8], out: &mut Vec<u8>, last: bool| -> Option<()> {
        carry.extend(bytes.iter().filter(|b| !b.is_ascii_whitespace()));
        let take = if last {
            carry.len()
        } else {
            carry.len() / 4 * 4
        };
        let chunk: Vec<u8> = carry.drain(..take).collect();
        out.extend_from_slice(&mime::base64::decode(&chunk).ok()?);
        Some(())
    };
    if feed(head.get(body_start..).unwrap_or_default(), &mut out, false).is_none() {
        return Ok(None);
    }
    loop {
        let n = read_full(&mut f, &mut piece)?;
        if n == 0 {
            break;
        }
        if feed(piece.get(..n).unwrap_or_default(), &mut out, false).is_none() {
            return Ok(None);
        }
    }
    if feed(&[], &mut out, true).is_none() {
        return Ok(None);
    }
    Ok(Some(out))
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(buf.get_mut(n..).unwrap_or_default())? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Where the header block ends (after its blank line), CRLF or LF.
fn header_end(b: &[u8]) -> Option<usize> {
    let crlf = memchr_find(b, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr_find(b, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header block with any Content-Transfer-Encoding (and its folded lines) replaced by
/// `binary`.
fn binary_headers(headers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() + 40);
    let mut skipping = false;
    let lines: Vec<&[u8]> = headers.split_inclusive(|b| *b == b'\n').collect();
    for line in lines {
        let folded = line.first().is_some_and(|c| *c == b' ' || *c == b'\t');
        if folded && skipping {
            continue;
        }
        skipping =
            line.len() >= 26 && line[..26].eq_ignore_ascii_case(b"content-transfer-encoding:");
        if skipping {
            continue;
        }
        if line == b"\r\n" || line == b"\n" {
            out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2045 §6.1: the encoding header is replaced, folded continuation included.
    #[test]
    fn transfer_encoding_becomes_binary() {
        let h = b"From: a@b\r\nContent-Transfer-Encoding:\r\n base64\r\nSubject: x\r\n\r\n";
        let out = binary_headers(h);
        assert_eq!(
            out,
            b"From: a@b\r\nSubject: x\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec()
        );
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
    }
}
