//! Reading an MDN leniently (RFC 8098 §3, with the Java RI's quirks: no `rfc822;` type in
//! `Final-Recipient`, ids without angle brackets, parts without Content-Type, no
//! close-delimiter, `Original-Message-ID` absent and only `In-Reply-To` to correlate).

use super::{Disposition, Mdn};
use crate::notification::{
    open_report, parse_field_groups, FieldGroup, NotificationError, NotificationKind, TypedAddress,
    FINAL_DESTINATION_DELIVERY,
};

/// Parse an MDN message (the plain `multipart/report`, after any S/MIME unwrapping).
pub fn parse_mdn(bytes: &[u8]) -> Result<Mdn, NotificationError> {
    let report = open_report(bytes)?;
    let body = report.status_part(NotificationKind::Mdn)?;
    // One block by the RFC; a producer that left a blank line inside still gets read whole.
    let mut fields = FieldGroup::default();
    for group in parse_field_groups(&body) {
        fields.extend(group);
    }
    let disposition = Disposition::parse(fields.get("Disposition").ok_or(
        NotificationError::MissingField {
            field: "Disposition",
        },
    )?)?;
    let final_recipient = match fields.get("Final-Recipient") {
        None => {
            return Err(NotificationError::MissingField {
                field: "Final-Recipient",
            })
        }
        Some(v) => {
            let a = TypedAddress::parse(v);
            if a.address.is_empty() {
                return Err(NotificationError::MalformedField {
                    field: "Final-Recipient",
                    value: v.to_string(),
                });
            }
            a
        }
    };
    let text = |name: &str| fields.text(name);
    let h = report.header;
    Ok(Mdn {
        reporting_ua: text("Reporting-UA"),
        original_recipient: text("Original-Recipient").map(|v| TypedAddress::parse(&v)),
        original_message_id: text("Original-Message-ID"),
        error: text("Error"),
        failure: text("Failure"),
        final_destination_delivery: fields.has(FINAL_DESTINATION_DELIVERY),
        final_recipient,
        disposition,
        from: h.from,
        to: h.to,
        message_id: h.message_id,
        subject: h.subject,
        in_reply_to: h.in_reply_to,
        fields,
    })
}
