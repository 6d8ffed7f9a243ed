//! A minimal client for the REST API (HTTP/1.1, Basic auth, one request per connection):
//! what `hisp demo` and the benchmark use to act as the edge. Operators use curl.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// Connecting or exchanging bytes failed.
    #[error("HTTP request to {addr} failed: {source}")]
    Io {
        /// Where.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The response was not HTTP.
    #[error("malformed HTTP response from {0}")]
    Malformed(String),
}

/// Send one request and read the whole response.
///
/// The response is read while the body is still being sent: a server may answer early
/// (413 when the declared length is over its limit, RFC 9110 §15.5.14) and close without
/// reading the rest, which fails the remaining writes with EPIPE or a reset. A complete
/// response received that way is the answer, not an I/O error.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    credentials: (&str, &str),
    body: &[u8],
) -> Result<Response, EdgeError> {
    let io = |source| EdgeError::Io {
        addr: addr.to_string(),
        source,
    };
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.0, credentials.1));
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    let (mut rx, mut tx) = stream.into_split();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let send = async {
        tx.write_all(head.as_bytes()).await?;
        tx.write_all(body).await
    };
    let mut raw = Vec::new();
    let (sent, received) = tokio::join!(send, rx.read_to_end(&mut raw));
    // read_to_end keeps what arrived before an error (a reset after an early answer).
    match (parse(&raw), sent, received) {
        (Some((r, true)), _, _) => Ok(r),
        (_, Err(e), _) | (_, _, Err(e)) => Err(io(e)),
        (Some((r, false)), Ok(()), Ok(_)) => Ok(r),
        (None, Ok(()), Ok(_)) => Err(EdgeError::Malformed(addr.to_string())),
    }
}

/// The response in `raw`, and whether it is whole: its Content-Length all there, or its
/// chunked body ended (RFC 9112 §6.3). A response with neither ends at EOF, which an I/O
/// error does not prove.
fn parse(raw: &[u8]) -> Option<(Response, bool)> {
    let end = memchr_find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let head = head.to_ascii_lowercase();
    let rest = &raw[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        // dechunk answers only once the last chunk is there.
        let body = dechunk(rest)?;
        return Some((Response { status, body }, true));
    }
    let whole = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| rest.len() >= n);
    let body = rest.to_vec();
    Some((Response { status, body }, whole))
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = memchr_find(b, b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc9112_7_1_chunked_body() {
        let (r, _) = super::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    }

    /// RFC 9112 §6.3: a response's end is its Content-Length or its last chunk; only those
    /// make a response read before a reset complete.
    #[test]
    fn rfc9112_6_3_a_response_is_complete_at_its_length_or_last_chunk() {
        let complete = |raw: &[u8]| super::parse(raw).is_some_and(|(_, whole)| whole);
        assert!(complete(b"HTTP/1.1 413 X\r\nContent-Length: 2\r\n\r\nab"));
        assert!(!complete(b"HTTP/1.1 413 X\r\nContent-Length: 3\r\n\r\nab"));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        ));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
        ));
        assert!(!complete(b"HTTP/1.1 200 OK\r\n\r\nabc"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-"));
    }
}
