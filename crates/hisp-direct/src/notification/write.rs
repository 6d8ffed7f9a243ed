//! Writing notifications safely: every value we echo (subject, ids, remote diagnostics)
//! came from someone else's message, so it is stripped of line breaks (no header
//! injection), folded under 78 columns where it has spaces and hard-wrapped under the 998
//! octet limit where it has none (RFC 5322 §2.1.1, §2.2.3), and non-ASCII text is encoded
//! (RFC 2047 in headers, base64 in the text part) so the report stays 7-bit.

use crate::mime::base64;

/// RFC 5322 §2.1.1: a line MUST NOT exceed 998 characters, CRLF excluded.
pub(crate) const MAX_LINE: usize = 998;
/// RFC 5322 §2.1.1: lines SHOULD NOT exceed 78 characters.
const SOFT_LINE: usize = 78;

/// Append `name: value` CRLF, folded. An empty value writes `name:` alone, which the Direct
/// RI does for `X-DIRECT-FINAL-DESTINATION-DELIVERY`.
/// The header block every notification starts with: the reply's own identity, the
/// original's id in In-Reply-To, and `Auto-Submitted` (RFC 3834 §5: an automatic reply,
/// so auto-responders stay quiet).
pub(crate) struct ReplyHeaders<'a> {
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) date: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) in_reply_to: &'a str,
}

pub(crate) fn push_reply_headers(out: &mut Vec<u8>, h: &ReplyHeaders<'_>) {
    push_field(out, "From", &address(h.from));
    push_field(out, "To", &address(h.to));
    push_field(out, "Date", h.date);
    push_field(out, "Message-ID", &msg_id(h.message_id));
    push_field(out, "Subject", h.subject);
    push_field(out, "In-Reply-To", &msg_id(h.in_reply_to));
    push_field(out, "Auto-Submitted", "auto-replied");
}

pub(crate) fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let value = one_line(value);
    let value = value.trim();
    let name_len = name.len() + 1;
    let mut line = name_len;
    if !value.is_empty() {
        let spaced = format!(" {value}");
        for seg in segments(&spaced) {
            // Fold before the segment's leading space; unfolding gives the value back.
            if line > name_len && line + seg.len() > SOFT_LINE {
                out.extend_from_slice(b"\r\n");
                line = 0;
            }
            push_hard_wrapped(out, seg, &mut line);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Write `seg`, breaking with CRLF SP where a run without spaces would pass 998 octets.
/// This adds a space to the value; it only happens to text no conforming producer writes.
fn push_hard_wrapped(out: &mut Vec<u8>, seg: &str, line: &mut usize) {
    let mut rest = seg;
    while *line + rest.len() > MAX_LINE {
        let mut cut = MAX_LINE.saturating_sub(*line).min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = (
            rest.get(..cut).unwrap_or_default(),
            rest.get(cut..).unwrap_or_default(),
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(b"\r\n ");
        *line = 1;
        rest = tail;
    }
    out.extend_from_slice(rest.as_bytes());
    *line += rest.len();
}

/// Split before each run of whitespace, so every piece but the first starts with a space.
fn segments(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = true;
    for (i, c) in s.char_indices() {
        let ws = c == ' ' || c == '\t';
        if ws && !prev_ws {
            out.extend(s.get(start..i));
            start = i;
        }
        prev_ws = ws;
    }
    out.extend(s.get(start..));
    out
}

/// Controls (CR and LF above all) become spaces: a value never spans lines of its own.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

/// A report field value (RFC 8098 and RFC 3464 fields are US-ASCII `text`): controls become
/// spaces and anything beyond ASCII becomes `?`.
pub(crate) fn ascii_text(s: &str) -> String {
    one_line(s)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// An addr-spec for a header: one line, no angle brackets.
pub(crate) fn address(a: &str) -> String {
    let a = one_line(a);
    let a = a.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .trim()
        .to_string()
}

/// A msg-id for `Message-ID`/`In-Reply-To`: angle brackets added when missing (RFC 5322
/// §3.6.4); the inside is kept as given so correlation still matches.
pub(crate) fn msg_id(id: &str) -> String {
    let id = one_line(id);
    let id = id.trim();
    if id.starts_with('<') && id.ends_with('>') && id.len() > 1 {
        id.to_string()
    } else {
        format!("<{id}>")
    }
}

/// Unstructured header text (RFC 2047 §2): ASCII as is, anything else as UTF-8 base64
/// encoded-words of at most 72 characters, space-separated so the folder can break them.
pub(crate) fn encode_unstructured(text: &str) -> String {
    let text = one_line(text);
    if text.is_ascii() {
        return text;
    }
    const CHUNK: usize = 45; // 45 octets → 60 base64 characters + 12 of framing
    let mut words = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = CHUNK.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // A single character longer than the chunk cannot exist (UTF-8 is ≤ 4 octets);
            // guard anyway so the loop always advances.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (head, tail) = (
            rest.get(..cut).unwrap_or_default(),
            rest.get(cut..).unwrap_or_default(),
        );
        let mut b64 = Vec::new();
        base64::encode_lines(head.as_bytes(), &mut b64);
        let b64: String = String::from_utf8_lossy(&b64)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        words.push(format!("=?UTF-8?B?{b64}?="));
        rest = tail;
    }
    words.join(" ")
}

/// A complete `text/plain` body part (headers, blank line, body), ending in CRLF.
pub(crate) fn text_part(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let lines: Vec<String> = text
        .lines()
        .map(|l| one_line(l).trim_end().to_string())
        .collect();
    if text.is_ascii() {
        out.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
        for line in &lines {
            push_wrapped_text(&mut out, line);
        }
    } else {
        out.extend_from_slice(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        );
        let joined: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
        base64::encode_lines(joined.as_bytes(), &mut out);
    }
    out
}

/// One text line, word-wrapped at 76 columns and hard-wrapped at 998.
fn push_wrapped_text(out: &mut Vec<u8>, line: &str) {
    // Keep the indentation; wrap what follows it.
    let body = line.trim_start_matches(' ');
    let indent = (line.len() - body.len()).min(8);
    out.resize(out.len() + indent, b' ');
    let mut col = indent;
    for (i, word) in body.split(' ').enumerate() {
        if i > 0 && col + 1 + word.len() > 76 {
            out.extend_from_slice(b"\r\n");
            col = 0;
        } else if i > 0 {
            out.push(b' ');
            col += 1;
        }
        let mut rest = word;
        while col + rest.len() > MAX_LINE {
            let mut cut = MAX_LINE.saturating_sub(col).min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.extend_from_slice(rest.get(..cut).unwrap_or_default().as_bytes());
            out.extend_from_slice(b"\r\n");
            col = 0;
            rest = rest.get(cut..).unwrap_or_default();
        }
        out.extend_from_slice(rest.as_bytes());
        col += rest.len();
    }
    out.extend_from_slice(b"\r\n");
}

/// Append `MIME-Version`, the `multipart/report` Content-Type, the blank line and the body
/// made of `parts` (each a complete entity ending in CRLF). The boundary is derived from
/// `seed` (no RNG in this crate) and re-derived until it occurs in no part (RFC 2046 §5.1.1).
pub(crate) fn push_multipart_report(
    out: &mut Vec<u8>,
    report_type: &str,
    seed: &str,
    parts: &[Vec<u8>],
) {
    let boundary = (0u64..)
        .map(|salt| format!("=_hisp_report_{:016x}", fnv1a(seed.as_bytes(), salt)))
        .find(|b| {
            parts
                .iter()
                .all(|p| memchr::memmem::find(p, b.as_bytes()).is_none())
        })
        .unwrap_or_default();
    push_field(out, "MIME-Version", "1.0");
    let ct = format!("multipart/report; report-type={report_type}; boundary=\"{boundary}\"");
    push_field(out, "Content-Type", &ct);
    out.extend_from_slice(b"\r\nThis is a multipart/report message (RFC 6522).\r\n\r\n");
    for part in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

fn fnv1a(data: &[u8], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mime::Headers;

    fn max_line(b: &[u8]) -> usize {
        b.split(|c| *c == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn rfc5322_2_2_3_folding_round_trips() {
        let value = "word ".repeat(60) + "end";
        let mut out = Vec::new();
        push_field(&mut out, "Subject", &value);
        assert!(max_line(&out) <= SOFT_LINE);
        assert!(out.ends_with(b"\r\n"));
        assert_eq!(Headers::parse(&out).get("Subject").unwrap(), value.trim());
    }

    #[test]
    fn rfc5322_2_1_1_no_line_over_998_and_no_injection() {
        let value = format!("{}\r\nBcc: evil@x\n{}", "x".repeat(3000), "é".repeat(700));
        let mut out = Vec::new();
        push_field(&mut out, "Subject", &value);
        assert!(max_line(&out) <= MAX_LINE);
        let h = Headers::parse(&out);
        assert_eq!(h.fields().len(), 1);
        assert!(h.get("Bcc").is_none());
        let mut text = Vec::new();
        push_wrapped_text(&mut text, &"y".repeat(2500));
        assert!(max_line(&text) <= MAX_LINE);
        let part = text_part("Summary:\n  bob@b.example: failed\n");
        assert!(part.ends_with(b"\r\n\r\nSummary:\r\n  bob@b.example: failed\r\n"));
    }

    #[test]
    fn rfc2047_2_encoded_words_for_non_ascii() {
        let e = encode_unstructured("Ärztebrief für Frau Müller, Überweisung");
        assert!(e.is_ascii());
        assert!(e
            .split(' ')
            .all(|w| w.starts_with("=?UTF-8?B?") && w.len() <= 75));
        assert_eq!(encode_unstructured("plain"), "plain");
        assert_eq!(msg_id("a@b"), "<a@b>");
        assert_eq!(msg_id(" <a@b> "), "<a@b>");
        assert_eq!(address("<x@y>"), "x@y");
    }
}
