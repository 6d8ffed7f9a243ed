//! A small DER writer (X.690 §10): definite lengths, minimal length octets. Structures are
//! built bottom-up from byte vectors; the one large element (the encrypted content) is
//! written by the caller straight after a header produced by [`header`].

/// Append the DER length octets for `len`.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Append the identifier octets copied from `encoded` (the start of an existing encoding)
/// followed by a definite length.
pub(crate) fn push_header(out: &mut Vec<u8>, encoded: &[u8], len: usize) {
    let mut n = 1;
    if encoded.first().is_some_and(|b| b & 0x1f == 0x1f) {
        while encoded.get(n).is_some_and(|b| b & 0x80 != 0) {
            n += 1;
        }
        n += 1;
    }
    out.extend_from_slice(&encoded[..n.min(encoded.len())]);
    push_len(out, len);
}

/// Identifier + length for a single-octet tag.
pub fn header(tag: u8, len: usize) -> Vec<u8> {
    with_header(tag, len, 0)
}

/// Identifier and length octets in a vector with room for `room` content bytes after them,
/// so the content is appended without a reallocation.
fn with_header(tag: u8, len: usize, room: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + room);
    v.push(tag);
    push_len(&mut v, len);
    v
}

/// A complete TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = with_header(tag, content.len(), content.len());
    v.extend_from_slice(content);
    v
}

/// A constructed TLV from parts written one after another.
pub fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut v = with_header(tag, len, len);
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// SEQUENCE { parts... }
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(0x30, parts)
}

/// SET { parts... } with the elements sorted as DER requires for SET OF (X.690 §11.6).
pub fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    cons(0x31, &refs)
}

/// OBJECT IDENTIFIER from its content octets.
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

/// OCTET STRING
pub fn octets(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// INTEGER from a small non-negative value.
pub fn uint(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut c = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        c.push(0);
    }
    c.extend_from_slice(&bytes[skip..]);
    tlv(0x02, &c)
}

/// AlgorithmIdentifier { algorithm, parameters } with explicit parameters.
pub fn alg(oid_content: &[u8], params: &[u8]) -> Vec<u8> {
    seq(&[&oid(oid_content), params])
}

/// NULL
pub const NULL: [u8; 2] = [0x05, 0x00];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x690_10_1_minimal_length_octets() {
        assert_eq!(header(0x04, 5), [0x04, 5]);
        assert_eq!(header(0x04, 0x80), [0x04, 0x81, 0x80]);
        assert_eq!(header(0x04, 0x1_0000), [0x04, 0x83, 1, 0, 0]);
        assert_eq!(uint(0), [2, 1, 0]);
        assert_eq!(uint(128), [2, 2, 0, 128]);
        assert_eq!(uint(2), [2, 1, 2]);
    }

    #[test]
    fn x690_11_6_set_of_sorted() {
        assert_eq!(
            set_of(vec![vec![2, 1, 5], vec![2, 1, 1]]),
            [0x31, 6, 2, 1, 1, 2, 1, 5]
        );
    }
}
