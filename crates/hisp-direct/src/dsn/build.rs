//! Writing a DSN (RFC 3464 §2, RFC 6522): a human-readable summary, the
//! `message/delivery-status` part and, when given, the original headers as
//! `text/rfc822-headers` (RFC 6522 §4). CRLF throughout; lines stay under 998 octets.

use super::{Action, DsnSpec, RecipientStatus};
use crate::mime::{header, to_crlf};
use crate::notification::write::{self, push_field, MAX_LINE};

/// Build a complete RFC 5322 DSN message from `spec`.
pub fn build_dsn(spec: &DsnSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    write::push_reply_headers(
        &mut out,
        &write::ReplyHeaders {
            from: &spec.from,
            to: &spec.to,
            date: &spec.date,
            message_id: &spec.message_id,
            subject: subject(&spec.recipients),
            in_reply_to: &spec.original_message_id,
        },
    );
    let text = spec.text.clone().unwrap_or_else(|| default_text(spec));
    let mut parts = vec![write::text_part(&text), status_part(spec)];
    if let Some(headers) = &spec.original_headers {
        parts.push(headers_part(headers));
    }
    write::push_multipart_report(&mut out, "delivery-status", &spec.message_id, &parts);
    out
}

fn subject(recipients: &[RecipientStatus]) -> &'static str {
    let all =
        |f: fn(Action) -> bool| !recipients.is_empty() && recipients.iter().all(|r| f(r.action));
    if all(|a| a == Action::Failed) {
        "Delivery Status Notification (Failure)"
    } else if all(|a| a == Action::Delayed) {
        "Delivery Status Notification (Delay)"
    } else if all(|a| matches!(a, Action::Delivered | Action::Relayed | Action::Expanded)) {
        "Delivery Status Notification (Success)"
    } else {
        "Delivery Status Notification"
    }
}

/// The `message/delivery-status` part: per-message fields, then one blank-line-separated
/// block per recipient (RFC 3464 §2.1).
fn status_part(spec: &DsnSpec) -> Vec<u8> {
    let mut part = Vec::new();
    part.extend_from_slice(b"Content-Type: message/delivery-status\r\n");
    part.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n\r\n");
    let mta = spec.reporting_mta.trim();
    let mta = if mta.contains(';') {
        mta.to_string()
    } else {
        format!("dns; {mta}")
    };
    push_field(&mut part, "Reporting-MTA", &write::ascii_text(&mta));
    if let Some(envid) = &spec.original_envelope_id {
        push_field(&mut part, "Original-Envelope-Id", &write::ascii_text(envid));
    }
    // The Direct RI's correlation field; not in RFC 3464, which has no per-message place
    // for the original Message-ID.
    push_field(
        &mut part,
        "X-Original-Message-ID",
        &write::ascii_text(&spec.original_message_id),
    );
    if let Some(date) = &spec.arrival_date {
        push_field(&mut part, "Arrival-Date", &write::ascii_text(date));
    }
    for r in &spec.recipients {
        part.extend_from_slice(b"\r\n");
        if let Some(orig) = &r.original_recipient {
            push_field(
                &mut part,
                "Original-Recipient",
                &write::ascii_text(&orig.to_string()),
            );
        }
        push_field(
            &mut part,
            "Final-Recipient",
            &write::ascii_text(&r.final_recipient.to_string()),
        );
        push_field(&mut part, "Action", r.action.as_str());
        push_field(&mut part, "Status", &r.status.to_string());
        if let Some(mta) = &r.remote_mta {
            push_field(&mut part, "Remote-MTA", &write::ascii_text(mta));
        }
        if let Some(code) = &r.diagnostic_code {
            push_field(&mut part, "Diagnostic-Code", &write::ascii_text(code));
        }
        if let Some(date) = &r.last_attempt_date {
            push_field(&mut part, "Last-Attempt-Date", &write::ascii_text(date));
        }
    }
    part
}

/// `text/rfc822-headers` (RFC 6522 §4): the header block only (a whole message given by
/// mistake is cut at its blank line), CRLF, with over-long lines folded.
fn headers_part(original: &[u8]) -> Vec<u8> {
    let block = original
        .get(..header::split(original).header_end)
        .unwrap_or_default();
    let crlf = to_crlf(block).unwrap_or_else(|| block.to_vec());
    let cte = if crlf.is_ascii() { "7bit" } else { "8bit" };
    let mut part =
        format!("Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: {cte}\r\n\r\n")
            .into_bytes();
    for line in crlf.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        // Break at MAX_LINE - 1 so the continuation's leading space still fits.
        let mut chunks = line.chunks(MAX_LINE - 1);
        if let Some(first) = chunks.next() {
            part.extend_from_slice(first);
        }
        for chunk in chunks {
            part.extend_from_slice(b"\r\n ");
            part.extend_from_slice(chunk);
        }
        part.extend_from_slice(b"\r\n");
    }
    part
}

fn default_text(spec: &DsnSpec) -> String {
    let mut text =
        String::from("This is an automatically generated Delivery Status Notification.\n\n");
    text.push_str(&format!(
        "Your message with Message-ID {}",
        spec.original_message_id.trim()
    ));
    if let Some(s) = spec
        .original_subject
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        text.push_str(&format!(" (subject \"{}\")", s.trim()));
    }
    text.push_str(" was reported on as follows:\n\n");
    for r in &spec.recipients {
        let outcome = match r.action {
            Action::Failed => "could not be delivered",
            Action::Delayed => "has not been delivered yet; delivery is still being attempted",
            Action::Delivered => "was delivered",
            Action::Relayed => "was relayed; no further notification will follow",
            Action::Expanded => "was delivered and forwarded",
        };
        text.push_str(&format!(
            "  {}: {outcome} ({})",
            r.final_recipient.address, r.status
        ));
        if let Some(code) = &r.diagnostic_code {
            text.push_str(&format!(": {code}"));
        }
        text.push('\n');
    }
    text
}
