//! Multipart bodies (RFC 2046 §5.1.1) split at byte level. The ranges are exact: a part is
//! the bytes after its delimiter line up to, not including, the line break before the next
//! delimiter, which is also exactly what an RFC 1847 signature covers.

use super::MimeError;
use std::ops::Range;

/// The parts of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// Each body part, as offsets into the slice given to [`split`] plus `base`.
    pub parts: Vec<Range<usize>>,
    /// Whether the close-delimiter (`--boundary--`) was found. The Java RI's MDN fixtures
    /// omit it; readers accept that and report it.
    pub closed: bool,
}

/// Split `body` (which starts at absolute offset `base`) at the boundary.
pub fn split(body: &[u8], boundary: &str, base: usize) -> Result<Multipart, MimeError> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(MimeError::BadBoundary);
    }
    let dash = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(dash.as_bytes());
    let mut parts = Vec::new();
    let mut open: Option<usize> = None; // start of the current part's content
    let mut search = 0;
    while let Some(i) = finder.find(&body[search..]) {
        let at = search + i;
        search = at + dash.len();
        if at != 0 && body[at - 1] != b'\n' {
            continue;
        }
        let after = &body[at + dash.len()..];
        let close = after.starts_with(b"--");
        let rest = if close { &after[2..] } else { after };
        let pad = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let line_end = match &rest[pad..] {
            [b'\r', b'\n', ..] => pad + 2,
            [b'\n', ..] => pad + 1,
            [] => pad,
            // Not a delimiter: a longer boundary that merely starts with ours.
            _ if !close => continue,
            _ => pad, // "--boundary--" followed by text on the same line: still the end.
        };
        if let Some(start) = open.take() {
            let mut end = at;
            if end > start && body[end - 1] == b'\n' {
                end -= 1;
                if end > start && body[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(base + start..base + end.max(start));
        }
        if close {
            return Ok(Multipart {
                parts,
                closed: true,
            });
        }
        let content_start = at + dash.len() + line_end;
        open = Some(content_start);
        search = content_start;
    }
    if let Some(start) = open {
        // No close-delimiter: the last part runs to the end (lenient, see `closed`).
        let mut end = body.len();
        while end > start && matches!(body[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        parts.push(base + start..base + end);
    }
    if parts.is_empty() {
        return Err(MimeError::NoParts {
            boundary: boundary.to_string(),
        });
    }
    Ok(Multipart {
        parts,
        closed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2046_5_1_1_exact_part_ranges() {
        let b = b"preamble\r\n--xx\r\nA: 1\r\n\r\none\r\n--xx \r\n\r\ntwo\r\n--xx--\r\nepilogue";
        let m = split(b, "xx", 0).unwrap();
        assert!(m.closed);
        assert_eq!(&b[m.parts[0].clone()], b"A: 1\r\n\r\none");
        assert_eq!(&b[m.parts[1].clone()], b"\r\ntwo");
    }

    #[test]
    fn longer_boundary_is_not_a_delimiter_and_lf_works() {
        let b = b"--b\nx\n--bb\ny\n--b--\n";
        let m = split(b, "b", 10).unwrap();
        assert_eq!(m.parts, vec![14..22]);
        assert_eq!(&b[4..12], b"x\n--bb\ny");
    }

    #[test]
    fn missing_close_delimiter_is_lenient() {
        let m = split(b"--b\r\none\r\n--b\r\ntwo\r\n", "b", 0).unwrap();
        assert!(!m.closed);
        assert_eq!(m.parts.len(), 2);
        assert!(split(b"no parts here", "b", 0).is_err());
    }
}
