//! A BER reader (X.690 §8) over a borrowed buffer. It accepts what the reference
//! implementations write: indefinite lengths (Bouncy Castle), constructed OCTET STRINGs,
//! and plain DER. Every element keeps its absolute offsets so callers can decrypt
//! or decode in place without copying the (possibly 100 MiB) content.

use super::Asn1Error;
use std::ops::Range;

/// Deepest nesting accepted; real CMS is under 15 levels, hostile input can be far deeper.
const MAX_DEPTH: usize = 64;

/// Tag class (X.690 §8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Universal types (SEQUENCE, INTEGER, ...).
    Universal,
    /// Application-specific tags.
    Application,
    /// `[n]` tags in ASN.1 modules.
    Context,
    /// Private tags.
    Private,
}

/// An identifier octet (or octets) decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The tag class.
    pub class: Class,
    /// Whether the encoding is constructed.
    pub constructed: bool,
    /// The tag number.
    pub number: u32,
}

impl Tag {
    /// Universal, primitive.
    pub const fn universal(number: u32) -> Tag {
        Tag {
            class: Class::Universal,
            constructed: false,
            number,
        }
    }
    /// Context-specific `[n]`, primitive or constructed.
    pub const fn context(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Context,
            constructed,
            number,
        }
    }
    /// True for the same class and number, whatever the constructed bit (BER strings may be
    /// either).
    pub fn is(&self, class: Class, number: u32) -> bool {
        self.class == class && self.number == number
    }
}

/// Universal tag numbers used by CMS.
pub mod tags {
    /// BOOLEAN
    pub const BOOLEAN: u32 = 1;
    /// INTEGER
    pub const INTEGER: u32 = 2;
    /// BIT STRING
    pub const BIT_STRING: u32 = 3;
    /// OCTET STRING
    pub const OCTET_STRING: u32 = 4;
    /// NULL
    pub const NULL: u32 = 5;
    /// OBJECT IDENTIFIER
    pub const OID: u32 = 6;
    /// SEQUENCE
    pub const SEQUENCE: u32 = 16;
    /// SET
    pub const SET: u32 = 17;
    /// UTCTime
    pub const UTC_TIME: u32 = 23;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u32 = 24;
}

/// One decoded element: its tag and where its header, content and end lie in the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    buf: &'a [u8],
    /// The decoded tag.
    pub tag: Tag,
    /// Offset of the first identifier octet.
    pub start: usize,
    /// Offset of the first content octet.
    pub content_start: usize,
    /// Offset just past the content (before the end-of-contents octets when indefinite).
    pub content_end: usize,
    /// Offset just past the whole element (after the end-of-contents octets when indefinite).
    pub end: usize,
    /// True when the length was indefinite (`0x80`).
    pub indefinite: bool,
}

impl<'a> Tlv<'a> {
    /// Decode the element that starts at `pos` in `buf`.
    pub fn parse_at(buf: &'a [u8], pos: usize) -> Result<Tlv<'a>, Asn1Error> {
        parse_at(buf, pos, 0)
    }

    /// Decode the single element that fills `buf` from offset 0 (trailing bytes are allowed:
    /// several producers append CR/LF or padding after the DER).
    pub fn parse(buf: &'a [u8]) -> Result<Tlv<'a>, Asn1Error> {
        parse_at(buf, 0, 0)
    }

    /// The content octets.
    pub fn content(&self) -> &'a [u8] {
        &self.buf[self.content_start..self.content_end]
    }

    /// The whole encoding: identifier, length, content (and end-of-contents).
    pub fn raw(&self) -> &'a [u8] {
        &self.buf[self.start..self.end]
    }

    /// The buffer this element lives in.
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// Iterate over the elements inside a constructed element.
    pub fn children(&self) -> Children<'a> {
        Children {
            buf: self.buf,
            pos: self.content_start,
            end: self.content_end,
            depth: 1,
        }
    }

    /// Collect the children into a vector, failing on the first malformed one.
    pub fn child_vec(&self) -> Result<Vec<Tlv<'a>>, Asn1Error> {
        if !self.tag.constructed {
            return Err(Asn1Error::Unexpected {
                what: "constructed element",
                offset: self.start,
            });
        }
        self.children().collect()
    }

    /// Fail unless the element has the given class and number.
    pub fn expect(self, class: Class, number: u32, what: &'static str) -> Result<Self, Asn1Error> {
        if self.tag.is(class, number) {
            Ok(self)
        } else {
            Err(Asn1Error::Unexpected {
                what,
                offset: self.start,
            })
        }
    }

    /// Fail unless this is a universal SEQUENCE; return its children.
    pub fn sequence(&self, what: &'static str) -> Result<Vec<Tlv<'a>>, Asn1Error> {
        if !self.tag.is(Class::Universal, tags::SEQUENCE) || !self.tag.constructed {
            return Err(Asn1Error::Unexpected {
                what,
                offset: self.start,
            });
        }
        self.child_vec()
    }

    /// The value of a small non-negative INTEGER (versions, ICV lengths).
    pub fn small_uint(&self) -> Result<u64, Asn1Error> {
        let c = self.content();
        if !self.tag.is(Class::Universal, tags::INTEGER) || c.is_empty() || c.len() > 8 {
            return Err(Asn1Error::Unexpected {
                what: "small INTEGER",
                offset: self.start,
            });
        }
        if c[0] & 0x80 != 0 {
            return Err(Asn1Error::Unexpected {
                what: "non-negative INTEGER",
                offset: self.start,
            });
        }
        Ok(c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The ranges (absolute offsets) of the primitive pieces of an OCTET STRING, in order.
    /// BER allows a constructed string made of nested pieces (X.690 §8.7.3); Bouncy Castle
    /// writes 1000-byte pieces.
    pub fn octet_pieces(&self, out: &mut Vec<Range<usize>>) -> Result<(), Asn1Error> {
        self.pieces(out, 0)
    }

    fn pieces(&self, out: &mut Vec<Range<usize>>, depth: usize) -> Result<(), Asn1Error> {
        if depth > MAX_DEPTH {
            return Err(Asn1Error::TooDeep { offset: self.start });
        }
        if !self.tag.constructed {
            out.push(self.content_start..self.content_end);
            return Ok(());
        }
        for child in self.children() {
            let child = child?;
            if !child.tag.is(Class::Universal, tags::OCTET_STRING) {
                return Err(Asn1Error::Unexpected {
                    what: "OCTET STRING piece",
                    offset: child.start,
                });
            }
            child.pieces(out, depth + 1)?;
        }
        Ok(())
    }

    /// The content of an OCTET STRING (primitive or constructed) as one vector.
    pub fn octets(&self) -> Result<Vec<u8>, Asn1Error> {
        let mut ranges = Vec::new();
        self.octet_pieces(&mut ranges)?;
        let mut v = Vec::with_capacity(ranges.iter().map(|r| r.len()).sum());
        for r in ranges {
            v.extend_from_slice(&self.buf[r]);
        }
        Ok(v)
    }
}

/// Iterator over the children of a constructed element.
pub struct Children<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    depth: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Tlv<'a>, Asn1Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        match parse_at(&self.buf[..self.end], self.pos, self.depth) {
            Ok(t) => {
                self.pos = t.end;
                Some(Ok(t))
            }
            Err(e) => {
                self.pos = self.end;
                Some(Err(e))
            }
        }
    }
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Tlv<'_>, Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep { offset: pos });
    }
    let byte = |i: usize| {
        buf.get(i)
            .copied()
            .ok_or(Asn1Error::Truncated { offset: i })
    };
    let first = byte(pos)?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut i = pos + 1;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = byte(i)?;
            i += 1;
            if number > (u32::MAX >> 7) {
                return Err(Asn1Error::BadTag { offset: pos });
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let tag = Tag {
        class,
        constructed,
        number,
    };
    let lb = byte(i)?;
    i += 1;
    if lb == 0x80 {
        if !constructed {
            return Err(Asn1Error::BadLength { offset: pos });
        }
        // Indefinite: the content is the children up to the end-of-contents octets 00 00.
        let content_start = i;
        let mut p = i;
        loop {
            if byte(p)? == 0 && byte(p + 1)? == 0 {
                return Ok(Tlv {
                    buf,
                    tag,
                    start: pos,
                    content_start,
                    content_end: p,
                    end: p + 2,
                    indefinite: true,
                });
            }
            p = parse_at(buf, p, depth + 1)?.end;
        }
    }
    let len = if lb & 0x80 == 0 {
        usize::from(lb)
    } else {
        let n = usize::from(lb & 0x7f);
        if n > 8 || n == 0x7f {
            return Err(Asn1Error::BadLength { offset: pos });
        }
        let mut len: u64 = 0;
        for _ in 0..n {
            len = (len << 8) | u64::from(byte(i)?);
            i += 1;
        }
        usize::try_from(len).map_err(|_| Asn1Error::BadLength { offset: pos })?
    };
    let end = i
        .checked_add(len)
        .ok_or(Asn1Error::BadLength { offset: pos })?;
    if end > buf.len() {
        return Err(Asn1Error::Truncated { offset: buf.len() });
    }
    Ok(Tlv {
        buf,
        tag,
        start: pos,
        content_start: i,
        content_end: end,
        end,
        indefinite: false,
    })
}

/// Re-encode an element with definite lengths (DER length form), keeping primitive content
/// as is. Used where a signature covers the DER of a structure that arrived as BER
/// (RFC 5652 §5.4: signed attributes are always DER-encoded for the signature).
pub fn to_definite(t: &Tlv<'_>, out: &mut Vec<u8>) -> Result<(), Asn1Error> {
    definite_at(t, out, 0)
}

// Both walks carry their depth: a Tlv's children restart the parser's own count, and a
// hostile issuer Name of 10,000 nested SEQUENCEs must fail, not exhaust the stack.
fn definite_at(t: &Tlv<'_>, out: &mut Vec<u8>, depth: usize) -> Result<(), Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep { offset: t.start });
    }
    if !t.indefinite && !has_indefinite(t, depth)? {
        out.extend_from_slice(t.raw());
        return Ok(());
    }
    let mut inner = Vec::new();
    for c in t.children() {
        definite_at(&c?, &mut inner, depth + 1)?;
    }
    super::writer::push_header(out, &t.buf[t.start..], inner.len());
    out.extend_from_slice(&inner);
    Ok(())
}

fn has_indefinite(t: &Tlv<'_>, depth: usize) -> Result<bool, Asn1Error> {
    if depth > MAX_DEPTH {
        return Err(Asn1Error::TooDeep { offset: t.start });
    }
    if !t.tag.constructed {
        return Ok(false);
    }
    for c in t.children() {
        let c = c?;
        if c.indefinite || has_indefinite(&c, depth + 1)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x690_8_1_3_6_indefinite_length_with_nested_eoc() {
        // SEQUENCE (indef) { OCTET STRING (constructed, indef) { "ab", "c" } }
        let b = [
            0x30, 0x80, 0x24, 0x80, 0x04, 2, b'a', b'b', 0x04, 1, b'c', 0, 0, 0, 0,
        ];
        let t = Tlv::parse(&b).unwrap();
        assert!(t.indefinite);
        assert_eq!(t.end, b.len());
        let kids = t.child_vec().unwrap();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].octets().unwrap(), b"abc");
        let mut d = Vec::new();
        to_definite(&t, &mut d).unwrap();
        assert_eq!(d, [0x30, 9, 0x24, 7, 0x04, 2, b'a', b'b', 0x04, 1, b'c']);
    }

    #[test]
    fn x690_8_1_3_5_long_form_length() {
        let mut b = vec![0x04, 0x82, 0x01, 0x00];
        b.extend(std::iter::repeat_n(7u8, 256));
        let t = Tlv::parse(&b).unwrap();
        assert_eq!(t.content().len(), 256);
    }

    #[test]
    fn hostile_inputs_fail_cleanly() {
        for b in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x80, 0x04, 0x01],
            &[0x04, 0x80, 0, 0],
            &[0x30, 0x82, 0xff, 0xff, 0],
            &[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0],
        ] {
            assert!(Tlv::parse(b).is_err(), "{b:?}");
        }
        // Deep nesting is refused rather than overflowing the stack.
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(matches!(Tlv::parse(&deep), Err(Asn1Error::TooDeep { .. })));
        // Definite lengths parse lazily, one level at a time; the DER re-encoding walk
        // must count depth itself (fuzz/regressions/cms_ber).
        let mut nested = vec![0x05, 0x00];
        for _ in 0..20_000 {
            let mut outer = vec![0x30];
            crate::asn1::writer::push_len(&mut outer, nested.len());
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        let t = Tlv::parse(&nested).unwrap();
        assert!(matches!(
            to_definite(&t, &mut Vec::new()),
            Err(Asn1Error::TooDeep { .. })
        ));
    }
}
