//! What MDNs (RFC 8098) and DSNs (RFC 3464) share: the error type, telling a notification
//! from an ordinary message (RFC 6522 `multipart/report`), reading a message's request for
//! notification (RFC 8098 §2, Direct IG for Delivery Notification §3) and locating the report
//! parts. Building and reading each kind lives in [`crate::mdn`] and [`crate::dsn`].

mod fields;
pub(crate) mod write;

pub use fields::{parse_field_groups, FieldGroup, ReportField};

use crate::mime::{multipart, parse_address_list, ContentType, Entity, Headers, MimeError};

/// The Direct IG extension that asks for, and confirms, delivery to the final destination.
pub const FINAL_DESTINATION_DELIVERY: &str = "X-DIRECT-FINAL-DESTINATION-DELIVERY";

/// A notification that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// Nothing to read.
    #[error("empty notification")]
    Empty,
    /// The top-level entity is not `multipart/report` (RFC 6522 §3).
    #[error("not a multipart/report notification (Content-Type {content_type})")]
    NotAReport {
        /// The media type found instead.
        content_type: String,
    },
    /// A report of the other kind (a DSN given to the MDN reader, or the reverse).
    #[error("report-type \"{found}\" where \"{expected}\" was expected")]
    WrongReportType {
        /// The report-type the reader handles.
        expected: &'static str,
        /// The report-type parameter as written.
        found: String,
    },
    /// The MIME structure of the report could not be split or decoded.
    #[error("malformed MIME in the {context}")]
    Mime {
        /// Which part we were reading.
        context: &'static str,
        /// What was wrong with it.
        #[source]
        source: MimeError,
    },
    /// The machine-readable part (`message/disposition-notification` or
    /// `message/delivery-status`) is absent.
    #[error("no {content_type} part in the report")]
    MissingPart {
        /// The media type looked for.
        content_type: &'static str,
    },
    /// A field the RFC requires is absent.
    #[error("missing {field} field")]
    MissingField {
        /// The field name.
        field: &'static str,
    },
    /// A field is present but its value does not parse.
    #[error("malformed {field} field: \"{value}\"")]
    MalformedField {
        /// The field name.
        field: &'static str,
        /// The value as written (unfolded).
        value: String,
    },
    /// A delivery-status body without any per-recipient block (RFC 3464 §2.1 needs one).
    #[error("delivery-status report names no recipient")]
    NoRecipients,
}

/// The two kinds of notification a HISP exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// A Message Disposition Notification (`report-type=disposition-notification`).
    Mdn,
    /// A Delivery Status Notification (`report-type=delivery-status`).
    Dsn,
}

impl NotificationKind {
    /// The `report-type` parameter value (RFC 6522 §3).
    pub fn report_type(self) -> &'static str {
        match self {
            Self::Mdn => "disposition-notification",
            Self::Dsn => "delivery-status",
        }
    }

    /// The media type of the machine-readable part.
    pub fn part_type(self) -> &'static str {
        match self {
            Self::Mdn => "message/disposition-notification",
            Self::Dsn => "message/delivery-status",
        }
    }

    /// Read a `report-type` value. Substring match so that the RFC 6533 `global-*` forms
    /// count too: an internationalised MDN must not be answered either.
    fn from_report_type(value: &str) -> Option<Self> {
        let v = value.to_ascii_lowercase();
        if v.contains("disposition-notification") {
            Some(Self::Mdn)
        } else if v.contains("delivery-status") {
            Some(Self::Dsn)
        } else {
            None
        }
    }

    fn from_part(ct: &ContentType) -> Option<Self> {
        let m = ct.mime.as_str();
        if m == "message/disposition-notification" || m == "message/global-disposition-notification"
        {
            Some(Self::Mdn)
        } else if m == "message/delivery-status" || m == "message/global-delivery-status" {
            Some(Self::Dsn)
        } else {
            None
        }
    }
}

/// Whether `message` is itself an MDN or DSN, and which. Direct IG: a HISP never sends (or
/// requests) an MDN for a notification, and the tracker never waits for one.
pub fn notification_kind(message: &[u8]) -> Option<NotificationKind> {
    open_report(message).ok().and_then(|r| r.kind())
}

/// True when `message` is an MDN or DSN (see [`notification_kind`]).
pub fn is_notification(message: &[u8]) -> bool {
    notification_kind(message).is_some()
}

/// What the sender of a message asked for (RFC 8098 §2.1, §2.2; Direct IG §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationRequest {
    /// The first address of `Disposition-Notification-To`, if present.
    pub disposition_notification_to: Option<String>,
    /// `Disposition-Notification-Options` asked for `X-DIRECT-FINAL-DESTINATION-DELIVERY`:
    /// the receiving HISP owes a `dispatched` (or `failed`) MDN as well as `processed`.
    pub final_destination_delivery: bool,
}

impl NotificationRequest {
    /// Read the request fields of a header block, whatever kind of message it is.
    pub fn from_headers(headers: &Headers<'_>) -> NotificationRequest {
        let disposition_notification_to = headers
            .get("Disposition-Notification-To")
            .and_then(|v| parse_address_list(&v).into_iter().next())
            .map(|m| m.address);
        let final_destination_delivery = headers
            .get_all("Disposition-Notification-Options")
            .iter()
            .any(|v| options_ask_final_destination(v));
        NotificationRequest {
            disposition_notification_to,
            final_destination_delivery,
        }
    }

    /// The request of `message`, or `None` when `message` is itself a notification: the
    /// Direct IG forbids answering an MDN or DSN with an MDN, whatever its headers say.
    pub fn read(message: &[u8]) -> Option<NotificationRequest> {
        if is_notification(message) {
            return None;
        }
        let e = Entity::parse(message);
        // No answer to any report, even of a kind we do not read, nor to anything sent
        // automatically (RFC 3834 §2): answering those is how notification loops start.
        let automatic = e
            .headers
            .get("Auto-Submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));
        if automatic || e.content_type().is("multipart/report") {
            return None;
        }
        Some(Self::from_headers(&e.headers))
    }

    /// The header fields (CRLF-terminated) that make this request on an outgoing message.
    pub fn to_header_fields(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(to) = &self.disposition_notification_to {
            write::push_field(&mut out, "Disposition-Notification-To", &write::address(to));
        }
        if self.final_destination_delivery {
            let v = format!("{FINAL_DESTINATION_DELIVERY}=optional,true");
            write::push_field(&mut out, "Disposition-Notification-Options", &v);
        }
        out
    }
}

/// RFC 8098 §2.2: `attribute "=" importance "," value *("," value)`, parameters separated by
/// `;`. Lenient: any case, spaces anywhere, quotes, a missing importance; a bare attribute
/// counts as asking, an explicit `false` does not.
fn options_ask_final_destination(value: &str) -> bool {
    value.split(';').any(|param| {
        let (attr, rest) = param.split_once('=').unwrap_or((param, ""));
        if !attr.trim().eq_ignore_ascii_case(FINAL_DESTINATION_DELIVERY) {
            return false;
        }
        let values: Vec<String> = rest
            .split(',')
            .map(|v| v.trim().trim_matches('"').trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v != "optional" && v != "required")
            .collect();
        values.is_empty() || values.iter().any(|v| v == "true")
    })
}

/// A report address field value (`address-type ";" generic-address`, RFC 8098 §3.2.3,
/// RFC 3464 §2.3.2): `Final-Recipient`, `Original-Recipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedAddress {
    /// The address type (`rfc822`, `utf-8`, …) as written, if given. The Java RI omits it.
    pub address_type: Option<String>,
    /// The address itself, without spaces or angle brackets.
    pub address: String,
}

impl TypedAddress {
    /// An `rfc822` address.
    pub fn rfc822(address: &str) -> TypedAddress {
        TypedAddress {
            address_type: Some("rfc822".into()),
            address: address.trim().to_string(),
        }
    }

    /// Parse a field value leniently: the type is optional and only taken when what precedes
    /// the first `;` is an atom, so an address is never cut.
    pub fn parse(value: &str) -> TypedAddress {
        let value = value.trim();
        let (ty, addr) = match value.split_once(';') {
            Some((t, a)) if is_atom(t.trim()) => (Some(t.trim().to_string()), a),
            _ => (None, value),
        };
        let addr: String = addr.split_whitespace().collect();
        let addr = addr
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix('>'))
            .unwrap_or(&addr);
        TypedAddress {
            address_type: ty,
            address: addr.to_string(),
        }
    }
}

impl std::fmt::Display for TypedAddress {
    /// `type;address` (no space, as the Direct RI writes it), or the bare address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.address_type {
            Some(t) => write!(f, "{t};{}", self.address),
            None => f.write_str(&self.address),
        }
    }
}

fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Compare two Message-IDs as a tracker must: angle brackets and surrounding space do not
/// matter (the Java RI writes its own ids without brackets), case does.
pub fn same_message_id(a: &str, b: &str) -> bool {
    let bare = |s: &str| {
        let s = s.trim();
        s.strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s)
            .trim()
            .to_string()
    };
    let (a, b) = (bare(a), bare(b));
    !a.is_empty() && a == b
}

/// What both readers take from the report's own header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReportHeader {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub in_reply_to: Option<String>,
}

impl ReportHeader {
    fn from_headers(h: &Headers<'_>) -> ReportHeader {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let list = |name: &str| {
            h.get_all(name)
                .iter()
                .flat_map(|v| parse_address_list(v))
                .map(|m| m.address)
                .collect::<Vec<_>>()
        };
        ReportHeader {
            from: list("From").into_iter().next(),
            to: list("To"),
            message_id: nonempty(h.get("Message-ID")),
            subject: nonempty(h.get("Subject")),
            in_reply_to: nonempty(h.get("In-Reply-To")),
        }
    }
}

/// A `multipart/report` split into its parts.
pub(crate) struct Report<'a> {
    pub header: ReportHeader,
    /// The `report-type` parameter, if given.
    pub report_type: Option<String>,
    pub parts: Vec<Entity<'a>>,
}

impl Report<'_> {
    /// The kind the report declares, else the kind its parts show (lenient: some producers
    /// drop the report-type parameter).
    pub fn kind(&self) -> Option<NotificationKind> {
        // An unknown report-type (x-other) still counts by its parts: a report that carries
        // a disposition notification is an MDN, whatever it calls itself.
        self.report_type
            .as_deref()
            .and_then(NotificationKind::from_report_type)
            .or_else(|| {
                self.parts
                    .iter()
                    .find_map(|p| NotificationKind::from_part(&p.content_type()))
            })
    }

    /// Check that the report is of `kind` and return its machine-readable part, decoded.
    pub fn status_part(&self, kind: NotificationKind) -> Result<Vec<u8>, NotificationError> {
        if let (Some(found), Some(k)) = (&self.report_type, self.kind()) {
            if k != kind {
                return Err(NotificationError::WrongReportType {
                    expected: kind.report_type(),
                    found: found.clone(),
                });
            }
        }
        let part = self
            .parts
            .iter()
            .find(|p| NotificationKind::from_part(&p.content_type()) == Some(kind))
            .ok_or(NotificationError::MissingPart {
                content_type: kind.part_type(),
            })?;
        part.decoded_body()
            .map_err(|source| NotificationError::Mime {
                context: kind.part_type(),
                source,
            })
    }
}

/// Parse the top level of a notification and split its parts.
pub(crate) fn open_report(bytes: &[u8]) -> Result<Report<'_>, NotificationError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(NotificationError::Empty);
    }
    let entity = Entity::parse(bytes);
    let ct = entity.content_type();
    if !ct.is("multipart/report") {
        return Err(NotificationError::NotAReport {
            content_type: ct.mime,
        });
    }
    let boundary = ct.param("boundary").ok_or(NotificationError::Mime {
        context: "multipart/report",
        source: MimeError::BadBoundary,
    })?;
    let body = entity.body();
    let split = multipart::split(body, boundary, 0).map_err(|source| NotificationError::Mime {
        context: "multipart/report",
        source,
    })?;
    let parts = split
        .parts
        .into_iter()
        .filter_map(|r| body.get(r))
        .map(Entity::parse)
        .collect();
    Ok(Report {
        header: ReportHeader::from_headers(&entity.headers),
        report_type: ct.param("report-type").map(str::to_string),
        parts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests;
