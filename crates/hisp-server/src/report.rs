//! How queue state is shown: `hisp queue` (text and `--json`), `hisp queue summary`,
//! `hisp mailbox`, and the REST outbound timeline share these renderings.

use hisp_direct::time::format_rfc3339;
use hisp_store::{DestinationShape, Event, MailboxEntry, OutMessage, UnixTime};
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

/// The age buckets of `hisp queue summary`, in minutes, as Postfix's `qshape` has them:
/// a column counts the messages younger than its bound and not younger than the previous.
pub const SHAPE_MINUTES: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// The shape's bounds in seconds, for [`hisp_store::Store::queue_shape`].
pub fn shape_bounds() -> Vec<u64> {
    SHAPE_MINUTES.iter().map(|m| m * 60).collect()
}

/// `hisp queue summary --json`.
pub fn shape_json(shapes: &[DestinationShape], now: UnixTime) -> Value {
    let rows: Vec<Value> = shapes
        .iter()
        .map(|s| {
            json!({
                "domain": s.domain,
                "waiting": s.waiting,
                "tried": s.tried,
                "in_delivery": s.in_delivery,
                "held": s.held,
                "by_age": s.by_age,
                "oldest": s.oldest.map(format_rfc3339),
                "last_error": s.last_error,
                "awaiting_notification": s.awaiting_notification,
                "overdue": s.overdue,
            })
        })
        .collect();
    json!({ "at": format_rfc3339(now), "age_bounds_minutes": SHAPE_MINUTES, "destinations": rows })
}

/// `hisp queue summary`: a row per destination, the totals, then each destination's
/// oldest waiting message and last error.
pub fn shape_text(shapes: &[DestinationShape], now: UnixTime) -> String {
    if shapes.is_empty() {
        return "queue is empty: no recipient waits for delivery or for a notification\n".into();
    }
    let width = shapes
        .iter()
        .map(|s| s.domain.len())
        .max()
        .unwrap_or(0)
        .max(11);
    let mut out = format!(
        "queue by destination at {} (recipients; the age columns count waiting recipients \
         by minutes since their message was queued: under 5, under 10, …)\n",
        format_rfc3339(now)
    );
    let ages: Vec<String> = SHAPE_MINUTES.iter().map(|m| format!("{m:>6}")).collect();
    out.push_str(&format!(
        "{:<width$} waiting  tried  sending  held  awaiting-MDN  overdue |{}{:>6}\n",
        "destination",
        ages.join(""),
        format!("{}+", SHAPE_MINUTES[SHAPE_MINUTES.len() - 1])
    ));
    let mut total = DestinationShape::new("TOTAL", SHAPE_MINUTES.len() + 1);
    for s in shapes {
        out.push_str(&shape_row(s, width));
        total.waiting += s.waiting;
        total.tried += s.tried;
        total.in_delivery += s.in_delivery;
        total.held += s.held;
        total.awaiting_notification += s.awaiting_notification;
        total.overdue += s.overdue;
        for (t, n) in total.by_age.iter_mut().zip(&s.by_age) {
            *t += n;
        }
    }
    out.push_str(&shape_row(&total, width));
    for s in shapes.iter().filter(|s| s.waiting > 0) {
        let since = s.oldest.map(format_rfc3339).unwrap_or_default();
        let error = s.last_error.as_deref().unwrap_or("none yet");
        out.push_str(&format!(
            "{}: oldest waiting since {since}; last error: {error}\n",
            s.domain
        ));
    }
    out
}

fn shape_row(s: &DestinationShape, width: usize) -> String {
    let ages: String = s.by_age.iter().map(|n| format!("{n:>6}")).collect();
    format!(
        "{:<width$} {:>7} {:>6} {:>8} {:>5} {:>13} {:>8} |{ages}\n",
        s.domain, s.waiting, s.tried, s.in_delivery, s.held, s.awaiting_notification, s.overdue
    )
}
