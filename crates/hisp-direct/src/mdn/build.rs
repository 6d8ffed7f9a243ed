//! Writing an MDN (RFC 8098 §3, RFC 6522 `multipart/report`) as the Direct IG wants it:
//! a human-readable part and a `message/disposition-notification` part, CRLF throughout.
//! The MDN never carries `Disposition-Notification-To`: no MDN is ever asked for an MDN.

use super::{DispositionType, MdnSpec};
use crate::notification::write::{self, push_field};
use crate::notification::FINAL_DESTINATION_DELIVERY;

/// Build a complete RFC 5322 MDN message from `spec`. Values taken from the original
/// message are sanitised (see `notification::write`), so the output is always well formed.
pub fn build_mdn(spec: &MdnSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    write::push_reply_headers(
        &mut out,
        &write::ReplyHeaders {
            from: &spec.from,
            to: &spec.to,
            date: &spec.date,
            message_id: &spec.message_id,
            subject: &subject(spec),
            in_reply_to: &spec.original_message_id,
        },
    );
    let text = spec.text.clone().unwrap_or_else(|| default_text(spec));
    let parts = [write::text_part(&text), notification_part(spec)];
    write::push_multipart_report(
        &mut out,
        "disposition-notification",
        &spec.message_id,
        &parts,
    );
    out
}

/// "Processed: <original subject>", the form the Java RI writes.
fn subject(spec: &MdnSpec) -> String {
    let label = label(&spec.disposition.disposition_type);
    match spec
        .original_subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => format!("{label}: {}", write::encode_unstructured(s)),
        None => label,
    }
}

fn label(t: &DispositionType) -> String {
    let word = t.as_str();
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The `message/disposition-notification` part (RFC 8098 §3.1, field order of §3.2).
fn notification_part(spec: &MdnSpec) -> Vec<u8> {
    let mut part = Vec::new();
    part.extend_from_slice(b"Content-Type: message/disposition-notification\r\n");
    part.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
    let ua = match spec
        .reporting_ua_product
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(product) => format!("{}; {product}", spec.reporting_ua_name.trim()),
        None => spec.reporting_ua_name.trim().to_string(),
    };
    push_field(&mut part, "Reporting-UA", &write::ascii_text(&ua));
    if let Some(orig) = &spec.original_recipient {
        push_field(
            &mut part,
            "Original-Recipient",
            &format!("rfc822;{}", write::address(orig)),
        );
    }
    push_field(
        &mut part,
        "Final-Recipient",
        &format!("rfc822;{}", write::address(&spec.final_recipient)),
    );
    push_field(
        &mut part,
        "Original-Message-ID",
        &write::ascii_text(&spec.original_message_id),
    );
    push_field(
        &mut part,
        "Disposition",
        &write::ascii_text(&spec.disposition.to_string()),
    );
    if let Some(failure) = &spec.failure {
        push_field(&mut part, "Failure", &write::ascii_text(failure));
    }
    if let Some(error) = &spec.error {
        push_field(&mut part, "Error", &write::ascii_text(error));
    }
    if spec.final_destination_delivery {
        // Direct IG §3.2: the extension field confirms the final-destination semantics; the
        // Java RI writes it with an empty value and so do we.
        push_field(&mut part, FINAL_DESTINATION_DELIVERY, "");
    }
    part
}

fn default_text(spec: &MdnSpec) -> String {
    let what = match &spec.disposition.disposition_type {
        DispositionType::Processed => {
            "was received and processed by the recipient's HISP".to_string()
        }
        DispositionType::Dispatched => {
            "was delivered to the recipient's final destination".to_string()
        }
        DispositionType::Failed | DispositionType::Denied => "could not be delivered".to_string(),
        DispositionType::Displayed => "was displayed to the recipient".to_string(),
        DispositionType::Deleted => "was deleted without being displayed".to_string(),
        DispositionType::Extension(t) => format!("has disposition \"{t}\""),
    };
    let mut text = format!(
        "This is an automatically generated Message Disposition Notification.\n\n\
         The message with Message-ID {} sent to {} {what}.\n",
        spec.original_message_id.trim(),
        write::address(&spec.final_recipient),
    );
    if let Some(s) = spec
        .original_subject
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        text.push_str(&format!("Subject: {}\n", s.trim()));
    }
    for detail in [&spec.failure, &spec.error].into_iter().flatten() {
        text.push_str(&format!("\nReason: {detail}\n"));
    }
    text
}
