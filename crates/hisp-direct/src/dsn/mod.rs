//! Delivery Status Notifications (RFC 3464 inside an RFC 6522 `multipart/report`). A HISP
//! sends one when it cannot deliver or when no `processed` MDN arrives in time (Direct IG
//! for Delivery Notification §3.3); [`parse_dsn`] reads those of other HISPs and MTAs,
//! finding the original Message-ID wherever the producer put it. Shared pieces live in
//! [`crate::notification`].

mod build;
mod parse;

pub use build::build_dsn;
pub use parse::parse_dsn;

use crate::notification::{FieldGroup, TypedAddress};
use std::fmt;

/// RFC 3464 §2.3.3 `Action` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The message could not be delivered and will not be.
    Failed,
    /// Not delivered yet; still being tried.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Passed on to an environment that sends no DSNs.
    Relayed,
    /// Delivered and forwarded to further recipients.
    Expanded,
}

impl Action {
    /// The token as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::Delivered => "delivered",
            Self::Relayed => "relayed",
            Self::Expanded => "expanded",
        }
    }

    /// Parse an `Action` value: case-insensitive, trailing comment ignored.
    pub fn parse(value: &str) -> Option<Action> {
        let token = value
            .split(|c: char| c.is_whitespace() || c == '(')
            .find(|t| !t.is_empty())?;
        [
            Self::Failed,
            Self::Delayed,
            Self::Delivered,
            Self::Relayed,
            Self::Expanded,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }
}

/// RFC 3463 enhanced status code, as carried in the DSN `Status` field (RFC 3464 §2.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (0–999), e.g. 1 for addressing, 7 for security.
    pub subject: u16,
    /// The detail (0–999).
    pub detail: u16,
}

impl EnhancedStatus {
    /// A status code; `None` when the class is not 2, 4 or 5 or a part is over 999.
    pub fn new(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
        (matches!(class, 2 | 4 | 5) && subject <= 999 && detail <= 999).then_some(EnhancedStatus {
            class,
            subject,
            detail,
        })
    }

    /// Parse `class.subject.detail`, ignoring anything after the first white space
    /// (`5.1.1 (unknown user)` is common).
    pub fn parse(value: &str) -> Option<EnhancedStatus> {
        let token = value
            .split(|c: char| c.is_whitespace() || c == '(')
            .find(|t| !t.is_empty())?;
        let mut it = token.split('.');
        let (c, s, d) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || [c, s, d].iter().any(|p| p.is_empty() || p.len() > 3) {
            return None;
        }
        Self::new(c.parse().ok()?, s.parse().ok()?, d.parse().ok()?)
    }

    /// Class 5: the failure is permanent.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One per-recipient block (RFC 3464 §2.3), written by [`build_dsn`] and read by [`parse_dsn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Final-Recipient` (required).
    pub final_recipient: TypedAddress,
    /// `Original-Recipient`, the address as the sender gave it.
    pub original_recipient: Option<TypedAddress>,
    /// `Action` (required).
    pub action: Action,
    /// `Status` (required).
    pub status: EnhancedStatus,
    /// `Diagnostic-Code` as written, `type; text`, e.g. `smtp; 550 5.1.1 no such user`.
    pub diagnostic_code: Option<String>,
    /// `Remote-MTA` as written, e.g. `dns; mx.example`.
    pub remote_mta: Option<String>,
    /// `Last-Attempt-Date`, an RFC 5322 date-time.
    pub last_attempt_date: Option<String>,
}

/// What to put in a DSN. Ids and dates are passed in: this crate reads no clock and no RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnSpec {
    /// The reporting MTA's host name, written `dns; <name>` (a value with `;` is kept as is).
    pub reporting_mta: String,
    /// `Original-Envelope-Id` (the ENVID of RFC 3461), if the sender gave one.
    pub original_envelope_id: Option<String>,
    /// `Arrival-Date` of the original message.
    pub arrival_date: Option<String>,
    /// The original Message-ID, written to `X-Original-Message-ID` (as the Direct RI does)
    /// and `In-Reply-To`, so the sender's tracker can correlate.
    pub original_message_id: String,
    /// The original subject, quoted in the human-readable part.
    pub original_subject: Option<String>,
    /// The DSN's `From`, e.g. `postmaster@<domain>`.
    pub from: String,
    /// The DSN's `To`: the original sender.
    pub to: String,
    /// The DSN's own Message-ID (angle brackets added when missing).
    pub message_id: String,
    /// The DSN's `Date`, an RFC 5322 date-time.
    pub date: String,
    /// One block per recipient reported on.
    pub recipients: Vec<RecipientStatus>,
    /// The original message's header block, returned as `text/rfc822-headers`.
    pub original_headers: Option<Vec<u8>>,
    /// The human-readable part; a standard summary when `None`.
    pub text: Option<String>,
}

/// A DSN as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// The address of the DSN's `From`.
    pub from: Option<String>,
    /// The addresses of the DSN's `To`.
    pub to: Vec<String>,
    /// The DSN's own Message-ID, as written.
    pub message_id: Option<String>,
    /// The DSN's subject.
    pub subject: Option<String>,
    /// The DSN's `In-Reply-To` header.
    pub in_reply_to: Option<String>,
    /// `Reporting-MTA` as written, e.g. `dns; Example.ORG`.
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id`.
    pub original_envelope_id: Option<String>,
    /// `Arrival-Date`.
    pub arrival_date: Option<String>,
    /// The original Message-ID from a per-message correlation field (`X-Original-Message-ID`,
    /// vendor forms such as `X-CERN-Original-Message-Id`, or `Original-Message-ID`).
    pub original_message_id: Option<String>,
    /// The name of the field that gave [`Dsn::original_message_id`], as written.
    pub original_message_id_field: Option<String>,
    /// The `Message-ID` of the returned headers (`text/rfc822-headers` or `message/rfc822`).
    pub returned_message_id: Option<String>,
    /// The per-recipient blocks, in order (at least one).
    pub recipients: Vec<RecipientStatus>,
    /// Every per-message field, for what is not modelled above.
    pub per_message_fields: FieldGroup,
}

impl Dsn {
    /// The id of the message this DSN is about: the per-message correlation field, else
    /// `In-Reply-To`, else the Message-ID of the returned headers.
    pub fn correlation_id(&self) -> Option<&str> {
        self.original_message_id
            .as_deref()
            .or(self.in_reply_to.as_deref())
            .or(self.returned_message_id.as_deref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
