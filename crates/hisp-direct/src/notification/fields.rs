//! The "name: value" blocks inside `message/disposition-notification` (RFC 8098 §3.1) and
//! `message/delivery-status` (RFC 3464 §2.1) bodies. They use header syntax, folding
//! included, and a DSN separates its per-message block from each per-recipient block with a
//! blank line. Unfolding and field syntax are the MIME layer's; here we only cut groups.

use crate::mime::Headers;

/// One field of a report block, unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportField {
    /// The field name as written.
    pub name: String,
    /// The value, unfolded and trimmed.
    pub value: String,
}

/// One blank-line-separated group of report fields, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldGroup {
    fields: Vec<ReportField>,
}

impl FieldGroup {
    /// All fields, in order.
    pub fn fields(&self) -> &[ReportField] {
        &self.fields
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(|f| f.value.as_str())
    }

    /// The first field named `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&ReportField> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The trimmed value of the first field named `name`, if present and not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Whether a field named `name` is present, even with an empty value.
    pub fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// True when the group has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Append the fields of `other` (a producer that split one block in two).
    pub(crate) fn extend(&mut self, other: FieldGroup) {
        self.fields.extend(other.fields);
    }
}

/// Split a report body into field groups at blank lines and parse each. Lines that are not
/// fields are skipped and groups left empty are dropped, so stray text never fails a read.
pub fn parse_field_groups(body: &[u8]) -> Vec<FieldGroup> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = memchr::memchr(b'\n', body.get(pos..).unwrap_or_default())
            .map_or(body.len(), |i| pos + i + 1);
        let line = body.get(pos..line_end).unwrap_or_default();
        // A line of only whitespace separates groups too: lenient towards producers that
        // indent their blank lines, and a fold cannot be empty anyway (RFC 5322 §3.2.2).
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            push_group(&mut groups, body.get(start..pos).unwrap_or_default());
            start = line_end;
        }
        pos = line_end;
    }
    push_group(&mut groups, body.get(start..).unwrap_or_default());
    groups
}

fn push_group(groups: &mut Vec<FieldGroup>, block: &[u8]) {
    let fields: Vec<ReportField> = Headers::parse(block)
        .fields()
        .iter()
        .map(|f| ReportField {
            name: f.name.to_string(),
            value: f.value(),
        })
        .collect();
    if !fields.is_empty() {
        groups.push(FieldGroup { fields });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc3464_2_1_blank_line_separated_groups() {
        let body = b"Reporting-MTA: dns; a.example\r\n\r\nFinal-Recipient: rfc822;x@y\r\nAction: failed\r\n\r\n\r\n\
                     Final-Recipient: rfc822;z@y\r\nStatus: 5.1.1\r\n";
        let g = parse_field_groups(body);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].get("reporting-mta"), Some("dns; a.example"));
        assert_eq!(g[1].get("ACTION"), Some("failed"));
        assert_eq!(g[2].get("Status"), Some("5.1.1"));
    }

    #[test]
    fn rfc8098_3_1_folded_fields_and_empty_values() {
        let body = b"Reporting-UA: a.example;\n  Hisp\nX-DIRECT-FINAL-DESTINATION-DELIVERY:\n \t \nnot a field\nError: e";
        let g = parse_field_groups(body);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].get("Reporting-UA"), Some("a.example;  Hisp"));
        assert!(g[0].has("x-direct-final-destination-delivery"));
        assert_eq!(g[0].get("X-DIRECT-FINAL-DESTINATION-DELIVERY"), Some(""));
        assert_eq!(g[1].fields().len(), 1);
        assert!(parse_field_groups(b"").is_empty());
        assert!(parse_field_groups(b"\r\n\r\n").is_empty());
    }
}
