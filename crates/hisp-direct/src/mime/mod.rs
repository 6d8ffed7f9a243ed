//! The MIME layer (RFC 5322, RFC 2045–2047, RFC 1847) at byte level. It reports exact
//! offsets instead of building a tree, because signatures cover exact bytes and the large
//! bodies are decoded in place. Parsing is lenient in the ways the reference
//! implementations require and never panics on input.

pub mod address;
pub mod base64;
pub mod content_type;
pub mod header;
mod lex;
pub mod multipart;

pub use address::{domain_of, parse_address_list, same_address, Mailbox};
pub use content_type::ContentType;
pub use header::{Headers, Split};

use std::ops::Range;

/// Malformed MIME structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// Nothing to read.
    #[error("empty input")]
    Empty,
    /// A base64 body with a character outside the alphabet or data after the padding.
    #[error("invalid base64 at byte {offset}")]
    Base64 {
        /// Where decoding stopped.
        offset: usize,
    },
    /// A multipart type without a usable boundary parameter.
    #[error("multipart boundary missing or invalid")]
    BadBoundary,
    /// A multipart body in which the boundary never occurs.
    #[error("no body part delimited by boundary \"{boundary}\"")]
    NoParts {
        /// The boundary that was looked for.
        boundary: String,
    },
    /// A Content-Transfer-Encoding we cannot undo for this part.
    #[error("unsupported Content-Transfer-Encoding \"{0}\"")]
    Encoding(String),
}

/// A MIME entity (header block + body) located inside a larger buffer.
#[derive(Debug, Clone)]
pub struct Entity<'a> {
    bytes: &'a [u8],
    /// The parsed header fields.
    pub headers: Headers<'a>,
    split: Split,
}

impl<'a> Entity<'a> {
    /// Parse the header block of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Entity<'a> {
        let split = header::split(bytes);
        Entity {
            bytes,
            headers: Headers::parse(&bytes[..split.header_end]),
            split,
        }
    }

    /// The whole entity.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The body bytes.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.split.body_start..]
    }

    /// The body's range relative to the entity.
    pub fn body_range(&self) -> Range<usize> {
        self.split.body_start..self.bytes.len()
    }

    /// The header block's end (relative to the entity).
    pub fn header_end(&self) -> usize {
        self.split.header_end
    }

    /// The Content-Type, defaulted per RFC 2045 §5.2.
    pub fn content_type(&self) -> ContentType {
        self.headers.content_type()
    }

    /// The Content-Transfer-Encoding, lower-cased; `7bit` when absent (RFC 2045 §6.1).
    pub fn transfer_encoding(&self) -> String {
        self.headers
            .get("Content-Transfer-Encoding")
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "7bit".into())
    }

    /// The body with its transfer encoding removed (base64, quoted-printable, or identity).
    pub fn decoded_body(&self) -> Result<Vec<u8>, MimeError> {
        match self.transfer_encoding().as_str() {
            "base64" => base64::decode(self.body()),
            "quoted-printable" => Ok(decode_quoted_printable(self.body())),
            "7bit" | "8bit" | "binary" => Ok(self.body().to_vec()),
            other => Err(MimeError::Encoding(other.to_string())),
        }
    }
}

/// Quoted-printable decoding (RFC 2045 §6.7), lenient about bad escapes (kept literally).
pub fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'=' if body[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if body[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < body.len() => {
                let h = (body[i + 1] as char).to_digit(16);
                let l = (body[i + 2] as char).to_digit(16);
                match (h, l) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Convert bare LF line endings to CRLF (RFC 5751 §3.1.1 canonical form). Returns `None`
/// when the input is already canonical, so the common case costs no copy.
pub fn to_crlf(data: &[u8]) -> Option<Vec<u8>> {
    let needs = memchr::memchr_iter(b'\n', data).any(|i| i == 0 || data[i - 1] != b'\r');
    if !needs {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut last = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        if i == 0 || data[i - 1] != b'\r' {
            out.extend_from_slice(&data[last..i]);
            out.extend_from_slice(b"\r\n");
            last = i + 1;
        }
    }
    out.extend_from_slice(&data[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5751_3_1_1_canonical_crlf() {
        assert_eq!(to_crlf(b"a\r\nb"), None);
        assert_eq!(to_crlf(b"a\nb\r\nc\n").unwrap(), b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn rfc2045_6_7_quoted_printable() {
        assert_eq!(decode_quoted_printable(b"a=3Db=\r\nc=ZZ"), b"a=bc=ZZ");
    }
}
