//! How queue state is shown: `hisp queue` (text and `--json`), `hisp mailbox`, and the REST
//! outbound timeline share these renderings.

use hisp_direct::time::format_rfc3339;
use hisp_store::{Event, MailboxEntry, OutMessage};
use serde_json::{json, Value};

/// One outbound message with recipients and (optionally) its timeline.
pub fn message_json(m: &OutMessage, events: &[Event]) -> Value {
    json!({
        "queue_id": m.id.0,
        "message_id": m.message_id,
        "sender": m.sender,
        "kind": m.kind.as_str(),
        "created": format_rfc3339(m.created),
        "size": m.size,
        "recipients": m.recipients.iter().map(|r| json!({
            "rcpt": r.rcpt,
            "state": r.state.as_str(),
            "attempts": r.attempts,
            "next_attempt": (r.state == hisp_store::RcptState::Queued).then(|| format_rfc3339(r.next_attempt)),
            "deadline": r.deadline.map(format_rfc3339),
            "last_error": r.last_error,
            "wants_dispatched": r.wants_dispatched,
        })).collect::<Vec<_>>(),
        "timeline": events.iter().map(|e| json!({
            "at": format_rfc3339(e.at),
            "rcpt": e.rcpt,
            "event": e.kind,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })
}

/// `hisp queue` as text: a line per recipient.
pub fn queue_text(messages: &[OutMessage]) -> String {
    let mut out = String::new();
    if messages.is_empty() {
        out.push_str("queue is empty\n");
    }
    for m in messages {
        out.push_str(&format!(
            "{} {} {} -> {} recipient(s), {} bytes, {}\n",
            m.id,
            format_rfc3339(m.created),
            m.sender,
            m.recipients.len(),
            m.size,
            m.message_id
        ));
        for r in &m.recipients {
            let err = r
                .last_error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:<11} {} attempts={}{err}\n",
                r.state.as_str(),
                r.rcpt,
                r.attempts
            ));
        }
    }
    out
}

/// A mailbox entry.
pub fn entry_json(e: &MailboxEntry) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind.as_str(),
        "message_id": e.message_id,
        "from": e.from,
        "subject": e.subject,
        "size": e.size,
        "received": format_rfc3339(e.received),
        "picked_up": e.picked_up.map(format_rfc3339),
        "wants_dispatched": e.wants_dispatched,
    })
}

/// `hisp mailbox` as text.
pub fn mailbox_text(owner: &str, entries: &[MailboxEntry]) -> String {
    let mut out = format!("mailbox of {owner}: {} message(s)\n", entries.len());
    for e in entries {
        let picked = e
            .picked_up
            .map(|t| format!(" picked up {}", format_rfc3339(t)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  #{} {:<7} {} from {} \"{}\" {}{picked}\n",
            e.id,
            e.kind.as_str(),
            format_rfc3339(e.received),
            e.from,
            e.subject,
            e.message_id
        ));
    }
    out
}
