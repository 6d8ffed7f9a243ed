//! The notices a HISP writes: DSNs to its own senders (RFC 3464; delivered straight to their
//! mailbox, since they are our users) and MDNs to the senders of mail it received (RFC 8098,
//! Direct IG: queued as outbound notifications, sealed like any message).

use hisp_direct::dsn::{build_dsn, Action, DsnSpec, EnhancedStatus, RecipientStatus};
use hisp_direct::mdn::{build_mdn, Disposition, MdnSpec};
use hisp_direct::notification::TypedAddress;
use hisp_direct::time::format_rfc5322;
use hisp_store::{EntryKind, NewMailboxEntry, NewOutbound, OutKind, QueueId};

/// A fresh Message-ID in our host's name: `<random.time@host>`.
pub fn new_message_id(host: &str, now: i64) -> String {
    format!("<{:016x}.{now}@{host}>", rand::random::<u64>())
}

/// One recipient that could not be delivered, for a DSN.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The recipient.
    pub rcpt: String,
    /// RFC 3463 status, e.g. (5, 7, 0).
    pub status: (u8, u16, u16),
    /// What happened, as the sender should read it.
    pub reason: String,
    /// The remote server, when one answered.
    pub remote: Option<String>,
}

/// What the DSN is about.
#[derive(Debug, Clone)]
pub struct Original<'a> {
    /// Its queue id.
    pub queue_id: &'a QueueId,
    /// Its Message-ID.
    pub message_id: &'a str,
    /// Its sender (a local user).
    pub sender: &'a str,
}

/// A failure DSN for a local sender, ready to put in their mailbox.
pub fn dsn_for_sender(
    host: &str,
    original: &Original<'_>,
    failures: &[Failure],
    now: i64,
) -> NewMailboxEntry {
    let domain = hisp_direct::mime::domain_of(original.sender).unwrap_or_else(|| host.to_string());
    let from = format!("mailer-daemon@{domain}");
    let message_id = new_message_id(host, now);
    let recipients = failures
        .iter()
        .map(|f| RecipientStatus {
            final_recipient: TypedAddress::rfc822(&f.rcpt),
            original_recipient: None,
            action: Action::Failed,
            status: EnhancedStatus::new(f.status.0, f.status.1, f.status.2)
                .or_else(|| EnhancedStatus::new(5, 0, 0))
                .unwrap_or(EnhancedStatus {
                    class: 5,
                    subject: 0,
                    detail: 0,
                }),
            diagnostic_code: Some(format!("x-hisp; {}", f.reason)),
            remote_mta: f.remote.as_ref().map(|r| format!("dns; {r}")),
            last_attempt_date: Some(format_rfc5322(now)),
        })
        .collect();
    let text = failures
        .iter()
        .map(|f| format!("{}: {}", f.rcpt, f.reason))
        .collect::<Vec<_>>()
        .join("\r\n");
    let spec = DsnSpec {
        reporting_mta: host.to_string(),
        original_envelope_id: Some(original.queue_id.0.clone()),
        arrival_date: None,
        original_message_id: original.message_id.to_string(),
        original_subject: None,
        from: from.clone(),
        to: original.sender.to_string(),
        message_id: message_id.clone(),
        date: format_rfc5322(now),
        recipients,
        original_headers: None,
        text: Some(format!(
            "Your message {} could not be delivered:\r\n\r\n{text}",
            original.message_id
        )),
    };
    NewMailboxEntry {
        owner: original.sender.to_string(),
        kind: EntryKind::Dsn,
        message_id,
        from,
        subject: "Delivery Status Notification (Failure)".into(),
        body: build_dsn(&spec),
        wants_dispatched: false,
        source: Some(original.queue_id.clone()),
        now,
    }
}

/// What an MDN answers.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    /// Our local recipient (the MDN's sender and final recipient).
    pub rcpt: &'a str,
    /// Who sent the message (the MDN goes back to them).
    pub sender: &'a str,
    /// The message's Message-ID.
    pub message_id: &'a str,
    /// Its subject.
    pub subject: Option<&'a str>,
}

/// An MDN from our recipient to the original sender, as an outbound notification.
pub fn mdn(
    host: &str,
    r: &Received<'_>,
    disposition: Disposition,
    final_destination: bool,
    now: i64,
) -> NewOutbound {
    let message_id = new_message_id(host, now);
    let spec = MdnSpec {
        reporting_ua_name: host.to_string(),
        reporting_ua_product: Some(format!("Hisp {}", env!("CARGO_PKG_VERSION"))),
        from: r.rcpt.to_string(),
        to: r.sender.to_string(),
        message_id: message_id.clone(),
        date: format_rfc5322(now),
        original_message_id: r.message_id.to_string(),
        original_subject: r.subject.map(str::to_string),
        original_recipient: None,
        final_recipient: r.rcpt.to_string(),
        disposition,
        error: None,
        failure: None,
        final_destination_delivery: final_destination,
        text: None,
    };
    NewOutbound {
        sender: r.rcpt.to_ascii_lowercase(),
        message_id,
        recipients: vec![r.sender.to_ascii_lowercase()],
        body: build_mdn(&spec),
        wants_dispatched: false,
        kind: OutKind::Notification,
        via: "mdn".into(),
        now,
    }
}
