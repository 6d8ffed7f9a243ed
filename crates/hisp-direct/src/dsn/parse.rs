//! Reading a DSN leniently (RFC 3464 §2): the per-message block, each per-recipient block,
//! and the original Message-ID from whichever place the producer used: a per-message
//! `X-…Original-Message-Id` field (Direct RI, Cerner), `In-Reply-To`, or the returned headers.

use super::{Action, Dsn, EnhancedStatus, RecipientStatus};
use crate::mime::Entity;
use crate::notification::{
    open_report, parse_field_groups, FieldGroup, NotificationError, NotificationKind, TypedAddress,
};

/// Parse a DSN message (the plain `multipart/report`, after any S/MIME unwrapping).
pub fn parse_dsn(bytes: &[u8]) -> Result<Dsn, NotificationError> {
    let report = open_report(bytes)?;
    let body = report.status_part(NotificationKind::Dsn)?;
    let mut per_message = FieldGroup::default();
    let mut recipients = Vec::new();
    for (i, group) in parse_field_groups(&body).into_iter().enumerate() {
        let is_recipient = ["Final-Recipient", "Original-Recipient", "Action", "Status"]
            .iter()
            .any(|f| group.has(f));
        // The first block is per-message unless the producer skipped it; a block naming no
        // recipient is per-message text split off by a stray blank line.
        if (i == 0 && !group.has("Final-Recipient")) || !is_recipient {
            per_message.extend(group);
        } else {
            recipients.push(recipient(&group)?);
        }
    }
    if recipients.is_empty() {
        return Err(NotificationError::NoRecipients);
    }
    let (original_message_id, original_message_id_field) = match correlation_field(&per_message) {
        Some((name, value)) => (Some(value), Some(name)),
        None => (None, None),
    };
    let returned_message_id = report
        .parts
        .iter()
        .filter(|p| {
            let ct = p.content_type();
            ct.is("text/rfc822-headers")
                || ct.is("message/rfc822")
                || ct.is("message/rfc822-headers")
        })
        .filter_map(|p| p.decoded_body().ok())
        .find_map(|b| {
            Entity::parse(&b)
                .headers
                .get("Message-ID")
                .filter(|v| !v.is_empty())
        });
    let text = |name: &str| per_message.text(name);
    let h = report.header;
    Ok(Dsn {
        reporting_mta: text("Reporting-MTA"),
        original_envelope_id: text("Original-Envelope-Id"),
        arrival_date: text("Arrival-Date"),
        original_message_id,
        original_message_id_field,
        returned_message_id,
        recipients,
        from: h.from,
        to: h.to,
        message_id: h.message_id,
        subject: h.subject,
        in_reply_to: h.in_reply_to,
        per_message_fields: per_message,
    })
}

/// RFC 3464 §2.3: `Final-Recipient`, `Action` and `Status` are required. A missing
/// `Final-Recipient` is taken from `Original-Recipient` rather than losing the block.
fn recipient(group: &FieldGroup) -> Result<RecipientStatus, NotificationError> {
    let text = |name: &str| {
        group
            .get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let original_recipient = text("Original-Recipient").map(|v| TypedAddress::parse(&v));
    let final_recipient = match text("Final-Recipient") {
        Some(v) => TypedAddress::parse(&v),
        None => original_recipient
            .clone()
            .ok_or(NotificationError::MissingField {
                field: "Final-Recipient",
            })?,
    };
    if final_recipient.address.is_empty() {
        let value = group.get("Final-Recipient").unwrap_or_default().to_string();
        return Err(NotificationError::MalformedField {
            field: "Final-Recipient",
            value,
        });
    }
    let action_value = group
        .get("Action")
        .ok_or(NotificationError::MissingField { field: "Action" })?;
    let action = Action::parse(action_value).ok_or_else(|| NotificationError::MalformedField {
        field: "Action",
        value: action_value.to_string(),
    })?;
    let status_value = group
        .get("Status")
        .ok_or(NotificationError::MissingField { field: "Status" })?;
    let status =
        EnhancedStatus::parse(status_value).ok_or_else(|| NotificationError::MalformedField {
            field: "Status",
            value: status_value.to_string(),
        })?;
    Ok(RecipientStatus {
        final_recipient,
        original_recipient,
        action,
        status,
        diagnostic_code: text("Diagnostic-Code"),
        remote_mta: text("Remote-MTA"),
        last_attempt_date: text("Last-Attempt-Date"),
    })
}

/// The first per-message field naming the original Message-ID: `Original-Message-ID` or any
/// `X-…Original-Message-Id` (case-insensitive). Returns (field name, value).
fn correlation_field(fields: &FieldGroup) -> Option<(String, String)> {
    fields
        .fields()
        .iter()
        .filter(|f| !f.value.trim().is_empty())
        .find(|f| {
            let n = f.name.to_ascii_lowercase();
            n == "original-message-id"
                || (n.starts_with("x-") && n.ends_with("original-message-id"))
        })
        .map(|f| (f.name.clone(), f.value.trim().to_string()))
}
