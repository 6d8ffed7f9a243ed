//! Message Disposition Notifications (RFC 8098, read also as RFC 3798 because the Direct
//! IG for Delivery Notification predates 8098 and uses its `failed` type and `Failure`
//! field). [`build_mdn`] writes the `processed`, `dispatched` and `failed` MDNs a receiving
//! HISP owes; [`parse_mdn`] reads any producer's MDN leniently. Signing and encrypting the
//! result is the S/MIME layer's job; what is shared with DSNs is in [`crate::notification`].

mod build;
mod parse;

pub use build::build_mdn;
pub use parse::parse_mdn;

use crate::notification::{FieldGroup, NotificationError, TypedAddress};
use std::fmt;

/// RFC 8098 §3.2.6.1 action mode: did a person or the software act?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionMode {
    /// `manual-action`.
    Manual,
    /// `automatic-action` (what a HISP always reports).
    Automatic,
}

/// RFC 8098 §3.2.6.1 sending mode: was the MDN itself sent by a person or automatically?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendingMode {
    /// `MDN-sent-manually`.
    Manual,
    /// `MDN-sent-automatically`.
    Automatic,
}

/// RFC 8098 §3.2.6.2 disposition type, plus RFC 3798's `denied` and `failed`, which the
/// Direct IG uses for negative notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispositionType {
    /// Shown to the recipient.
    Displayed,
    /// Deleted without being shown.
    Deleted,
    /// Direct: delivered to the recipient's edge (final destination).
    Dispatched,
    /// Direct: received, decrypted and trusted by the destination HISP.
    Processed,
    /// RFC 3798: the recipient refused the request.
    Denied,
    /// RFC 3798 / Direct IG: the message could not be delivered.
    Failed,
    /// Any other token, kept as written (read only; never written by Hisp).
    Extension(String),
}

impl DispositionType {
    /// The token as written in the `Disposition` field.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Displayed => "displayed",
            Self::Deleted => "deleted",
            Self::Dispatched => "dispatched",
            Self::Processed => "processed",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Extension(t) => t,
        }
    }

    fn parse(token: &str) -> DispositionType {
        match token.to_ascii_lowercase().as_str() {
            "displayed" => Self::Displayed,
            "deleted" => Self::Deleted,
            "dispatched" => Self::Dispatched,
            "processed" => Self::Processed,
            "denied" => Self::Denied,
            "failed" => Self::Failed,
            _ => Self::Extension(token.to_string()),
        }
    }
}

/// RFC 8098 §3.2.6.3 disposition modifier (RFC 3798 also had `warning`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispositionModifier {
    /// `error`: an error occurred; the `Error` field says which.
    Error,
    /// `warning` (RFC 3798).
    Warning,
    /// Any other token, kept as written.
    Extension(String),
}

impl DispositionModifier {
    /// The token as written in the `Disposition` field.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Extension(t) => t,
        }
    }
}

/// The `Disposition` field of an MDN (RFC 8098 §3.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// Who acted.
    pub action_mode: ActionMode,
    /// Who sent the MDN.
    pub sending_mode: SendingMode,
    /// What happened to the message.
    pub disposition_type: DispositionType,
    /// Qualifiers such as `error`.
    pub modifiers: Vec<DispositionModifier>,
}

impl Disposition {
    /// `automatic-action/MDN-sent-automatically;<type>`, the only mode a HISP uses.
    pub fn automatic(disposition_type: DispositionType) -> Disposition {
        Disposition {
            action_mode: ActionMode::Automatic,
            sending_mode: SendingMode::Automatic,
            disposition_type,
            modifiers: Vec::new(),
        }
    }

    /// Direct AS: sent for every message the destination HISP accepts.
    pub fn processed() -> Disposition {
        Self::automatic(DispositionType::Processed)
    }

    /// Direct IG: sent once the message reached the edge, when final delivery was asked for.
    pub fn dispatched() -> Disposition {
        Self::automatic(DispositionType::Dispatched)
    }

    /// Direct IG: the destination could not deliver the message.
    pub fn failed() -> Disposition {
        Self::automatic(DispositionType::Failed)
    }

    /// Whether this disposition tells the sender the message did not get through.
    pub fn is_negative(&self) -> bool {
        matches!(
            self.disposition_type,
            DispositionType::Failed | DispositionType::Denied
        ) || self.modifiers.contains(&DispositionModifier::Error)
    }

    /// The disposition mode as written, e.g. `automatic-action/MDN-sent-automatically`.
    pub fn mode(&self) -> String {
        let action = match self.action_mode {
            ActionMode::Manual => "manual-action",
            ActionMode::Automatic => "automatic-action",
        };
        let sending = match self.sending_mode {
            SendingMode::Manual => "MDN-sent-manually",
            SendingMode::Automatic => "MDN-sent-automatically",
        };
        format!("{action}/{sending}")
    }

    /// Parse a `Disposition` field value. Lenient about case, white space and comments
    /// anywhere (`automatic-action / MDN-sent-automatically ; processed (ok)`).
    pub fn parse(value: &str) -> Result<Disposition, NotificationError> {
        let malformed = || NotificationError::MalformedField {
            field: "Disposition",
            value: value.to_string(),
        };
        let compact: String = strip_comments(value)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let (mode, rest) = compact.split_once(';').ok_or_else(malformed)?;
        let (action, sending) = mode.split_once('/').ok_or_else(malformed)?;
        let action_mode = if action.eq_ignore_ascii_case("automatic-action") {
            ActionMode::Automatic
        } else if action.eq_ignore_ascii_case("manual-action") {
            ActionMode::Manual
        } else {
            return Err(malformed());
        };
        let sending_mode = if sending.eq_ignore_ascii_case("MDN-sent-automatically") {
            SendingMode::Automatic
        } else if sending.eq_ignore_ascii_case("MDN-sent-manually") {
            SendingMode::Manual
        } else {
            return Err(malformed());
        };
        let (ty, mods) = rest.split_once('/').unwrap_or((rest, ""));
        if ty.is_empty()
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(malformed());
        }
        let modifiers = mods
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| match m.to_ascii_lowercase().as_str() {
                "error" => DispositionModifier::Error,
                "warning" => DispositionModifier::Warning,
                _ => DispositionModifier::Extension(m.to_string()),
            })
            .collect();
        Ok(Disposition {
            action_mode,
            sending_mode,
            disposition_type: DispositionType::parse(ty),
            modifiers,
        })
    }
}

impl fmt::Display for Disposition {
    /// Written without spaces, as the Direct RI does: `automatic-action/MDN-sent-automatically;processed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{}", self.mode(), self.disposition_type.as_str())?;
        let mods: Vec<&str> = self
            .modifiers
            .iter()
            .map(DispositionModifier::as_str)
            .collect();
        if !mods.is_empty() {
            write!(f, "/{}", mods.join(","))?;
        }
        Ok(())
    }
}

/// Remove RFC 5322 comments (nested, with quoted pairs), which RFC 8098 allows in fields.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '\\' if depth > 0 => {
                chars.next();
            }
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// What to put in an MDN. Ids and dates are passed in: this crate reads no clock and no RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnSpec {
    /// The `ua-name` of `Reporting-UA`, usually the HISP's domain.
    pub reporting_ua_name: String,
    /// The optional `ua-product` of `Reporting-UA`, e.g. `Hisp 0.1`.
    pub reporting_ua_product: Option<String>,
    /// The MDN's `From`: the final recipient of the original message (Direct IG).
    pub from: String,
    /// The MDN's `To`: the original sender, or its `Disposition-Notification-To`.
    pub to: String,
    /// The MDN's own Message-ID (angle brackets added when missing).
    pub message_id: String,
    /// The MDN's `Date`, an RFC 5322 date-time.
    pub date: String,
    /// The Message-ID of the message reported on, written to `Original-Message-ID` as given.
    pub original_message_id: String,
    /// The subject of the message reported on, echoed in the MDN's subject.
    pub original_subject: Option<String>,
    /// The recipient as the sender's envelope named it, if known (`Original-Recipient`).
    pub original_recipient: Option<String>,
    /// The recipient the disposition is about (`Final-Recipient: rfc822;…`).
    pub final_recipient: String,
    /// The disposition reported.
    pub disposition: Disposition,
    /// Text for the `Error` field (RFC 8098 §3.2.7), e.g. why delivery failed.
    pub error: Option<String>,
    /// Text for the RFC 3798 `Failure` field, which Direct failure MDNs may carry.
    pub failure: Option<String>,
    /// Add the `X-DIRECT-FINAL-DESTINATION-DELIVERY` field: this MDN answers a request for
    /// final-destination delivery (Direct IG §3.2).
    pub final_destination_delivery: bool,
    /// The human-readable part; a standard sentence when `None`.
    pub text: Option<String>,
}

/// An MDN as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mdn {
    /// The address of the MDN's `From`.
    pub from: Option<String>,
    /// The addresses of the MDN's `To`.
    pub to: Vec<String>,
    /// The MDN's own Message-ID, as written.
    pub message_id: Option<String>,
    /// The MDN's subject.
    pub subject: Option<String>,
    /// The MDN's `In-Reply-To` header.
    pub in_reply_to: Option<String>,
    /// `Reporting-UA`, as written.
    pub reporting_ua: Option<String>,
    /// `Final-Recipient`: whose disposition this is.
    pub final_recipient: TypedAddress,
    /// `Original-Recipient`, if given.
    pub original_recipient: Option<TypedAddress>,
    /// The `Original-Message-ID` field only; see [`Mdn::correlation_id`] for the fallback.
    pub original_message_id: Option<String>,
    /// The disposition.
    pub disposition: Disposition,
    /// The `X-DIRECT-FINAL-DESTINATION-DELIVERY` field is present (its value is ignored:
    /// the Java RI writes it empty).
    pub final_destination_delivery: bool,
    /// The first `Error` field.
    pub error: Option<String>,
    /// The first `Failure` field (RFC 3798).
    pub failure: Option<String>,
    /// Every field of the notification part, for what is not modelled above.
    pub fields: FieldGroup,
}

impl Mdn {
    /// The id of the message this MDN is about: `Original-Message-ID`, else `In-Reply-To`
    /// (the Java RI's timely-and-reliable fixture carries only the latter).
    pub fn correlation_id(&self) -> Option<&str> {
        self.original_message_id
            .as_deref()
            .or(self.in_reply_to.as_deref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
