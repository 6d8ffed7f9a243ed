//! RFC 5322 §2.2 header sections: finding the end of the header block, unfolding fields,
//! and looking fields up by name. Lenient where the reference implementations are sloppy
//! (LF-only lines, a first line that starts with a space, fields without a space after
//! the colon) but it never guesses at a body.

use std::ops::Range;

/// Where the header block ends and the body starts within an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Offset just past the last header line (its line ending included).
    pub header_end: usize,
    /// Offset of the first body byte (after the empty line).
    pub body_start: usize,
}

/// Find the empty line that ends the header block (RFC 5322 §2.1). An entity without one is
/// all header; one that starts with an empty line has no header fields (RFC 2046 §5.1.1).
pub fn split(entity: &[u8]) -> Split {
    let mut pos = 0;
    while pos < entity.len() {
        let line_end = match memchr::memchr(b'\n', &entity[pos..]) {
            Some(i) => pos + i + 1,
            None => entity.len(),
        };
        let line = &entity[pos..line_end];
        if line == b"\n" || line == b"\r\n" {
            return Split {
                header_end: pos,
                body_start: line_end,
            };
        }
        pos = line_end;
    }
    Split {
        header_end: entity.len(),
        body_start: entity.len(),
    }
}

/// One header field.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The field name as written.
    pub name: &'a str,
    /// The raw value after the colon, folding and all, without the final line ending.
    pub raw_value: &'a [u8],
    /// The whole field, line endings included, relative to the parsed slice.
    pub range: Range<usize>,
}

impl Field<'_> {
    /// The value unfolded (RFC 5322 §2.2.3) and trimmed, as text (invalid UTF-8 replaced).
    pub fn value(&self) -> String {
        unfold(self.raw_value)
    }
}

/// Remove folding line breaks and trim surrounding whitespace.
pub fn unfold(raw: &[u8]) -> String {
    if memchr::memchr2(b'\r', b'\n', raw).is_none() {
        if let Ok(s) = std::str::from_utf8(raw) {
            return s.trim().to_string(); // one line: one copy
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

/// The fields of a header block, in order.
#[derive(Debug, Clone, Default)]
pub struct Headers<'a> {
    fields: Vec<Field<'a>>,
}

impl<'a> Headers<'a> {
    /// Parse the header block `block` (everything before the empty line).
    pub fn parse(block: &'a [u8]) -> Headers<'a> {
        let mut fields: Vec<Field<'a>> = Vec::new();
        let mut pos = 0;
        while pos < block.len() {
            let line_end =
                memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1);
            let line = &block[pos..line_end];
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            if continuation {
                if let Some(last) = fields.last_mut() {
                    extend_field(last, block, line_end);
                    pos = line_end;
                    continue;
                }
            }
            // A first line that starts with whitespace (nhind EncryptedMessage.txt starts
            // " Received:") is read as a field of its own.
            let lead = line
                .iter()
                .take_while(|b| **b == b' ' || **b == b'\t')
                .count();
            if let Some(colon) = memchr::memchr(b':', &line[lead..]) {
                let name_bytes = trim_ascii(&line[lead..lead + colon]);
                if let (Ok(name), false) = (std::str::from_utf8(name_bytes), name_bytes.is_empty())
                {
                    let value_start = pos + lead + colon + 1;
                    let value_end = pos + trim_eol(line).len();
                    fields.push(Field {
                        name,
                        raw_value: &block[value_start..value_end.max(value_start)],
                        range: pos..line_end,
                    });
                }
            }
            pos = line_end;
        }
        Headers { fields }
    }

    /// All fields in order.
    pub fn fields(&self) -> &[Field<'a>] {
        &self.fields
    }

    /// The first field with this name (case-insensitive), unfolded.
    pub fn get(&self, name: &str) -> Option<String> {
        self.field(name).map(Field::value)
    }

    /// The first field with this name.
    pub fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Every field with this name, unfolded.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(Field::value)
            .collect()
    }

    /// The parsed Content-Type (RFC 2045 §5.2: `text/plain; charset=us-ascii` when absent).
    pub fn content_type(&self) -> super::ContentType {
        self.get("Content-Type")
            .map(|v| super::ContentType::parse(&v))
            .unwrap_or_else(super::ContentType::default_text)
    }
}

fn extend_field<'a>(field: &mut Field<'a>, block: &'a [u8], line_end: usize) {
    let value_start = field.raw_value.as_ptr() as usize - block.as_ptr() as usize;
    let value_end = line_end - (block[..line_end].len() - trim_eol(&block[..line_end]).len());
    field.raw_value = &block[value_start..value_end.max(value_start)];
    field.range.end = line_end;
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let end = b.len()
        - b[start..]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_2_2_3_unfolding_and_lookup() {
        let m = b"Subject: a\r\n b\r\nFrom:x@y\r\n\r\nbody";
        let s = split(m);
        assert_eq!(&m[s.body_start..], b"body");
        let h = Headers::parse(&m[..s.header_end]);
        assert_eq!(h.get("subject").as_deref(), Some("a b"));
        assert_eq!(h.get("FROM").as_deref(), Some("x@y"));
        assert_eq!(h.fields()[0].range, 0..16);
    }

    #[test]
    fn leading_space_first_line_is_a_field() {
        let m = b" Received: from a\n   by b\nFrom: u@d\n\nx";
        let s = split(m);
        let h = Headers::parse(&m[..s.header_end]);
        assert_eq!(h.get("Received").as_deref(), Some("from a   by b"));
        assert_eq!(h.get("From").as_deref(), Some("u@d"));
    }

    #[test]
    fn rfc2046_5_1_1_part_without_headers() {
        let s = split(b"\r\nhello");
        assert_eq!((s.header_end, s.body_start), (0, 2));
        let s = split(b"A: b\r\n");
        assert_eq!(s.body_start, 6);
    }
}
