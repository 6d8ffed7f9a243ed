//! The directory's rows: trust anchors (with their direction), trust bundles, static
//! routes and static recipient certificates.

use crate::UnixTime;

/// A trust anchor to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnchor {
    /// The local domain it applies to; `None` for every local domain.
    pub domain: Option<String>,
    /// Which mail it is trusted for; `None` for both directions.
    pub direction: Option<Direction>,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// Subject, for listings.
    pub subject: String,
}

/// A stored trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Row id.
    pub id: i64,
    /// The local domain it applies to; `None` for every local domain.
    pub domain: Option<String>,
    /// Which mail it is trusted for; `None` for both directions.
    pub direction: Option<Direction>,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// Subject, for listings.
    pub subject: String,
    /// When it was added.
    pub added: UnixTime,
}

/// A static next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination domain (lower case).
    pub domain: String,
    /// `host:port`.
    pub target: String,
}

/// A static recipient certificate to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStaticCert {
    /// What it is bound to: an address or a domain (lower case).
    pub bound_to: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
}

/// A stored static certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCert {
    /// Row id.
    pub id: i64,
    /// An address or a domain (lower case).
    pub bound_to: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
}

/// A trust bundle to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBundle {
    /// Where it is published (`http://…` or `file://…`).
    pub url: String,
    /// The local domain its anchors apply to; `None` for every local domain.
    pub domain: Option<String>,
    /// Which mail its anchors are trusted for; `None` for both directions.
    pub direction: Option<Direction>,
    /// The pinned signer (DER); `None` accepts an unsigned bundle.
    pub signer_der: Option<Vec<u8>>,
    /// Seconds between fetches.
    pub refresh_secs: i64,
}

/// A stored trust bundle and the state of its last fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Row id.
    pub id: i64,
    /// What was added.
    pub spec: NewBundle,
    /// When it was added.
    pub added: UnixTime,
    /// When a version of it last verified and was loaded (`None`: never).
    pub loaded: Option<UnixTime>,
    /// When it is fetched next.
    pub next_fetch: UnixTime,
    /// Why the last fetch failed (`None` after a success).
    pub last_error: Option<String>,
    /// Anchors of the loaded version.
    pub anchors: Vec<NewAnchor>,
}

/// Which mail an anchor is trusted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Signers of mail we receive.
    Incoming,
    /// Certificates of recipients we send to (found by discovery).
    Outgoing,
}

impl Direction {
    /// `"incoming"` or `"outgoing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }

    /// Parse `incoming`/`outgoing` (`in`/`out`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "incoming" | "in" => Some(Direction::Incoming),
            "outgoing" | "out" => Some(Direction::Outgoing),
            _ => None,
        }
    }

    /// Whether an anchor stored with `stored` (None = both) applies to `self`.
    pub fn admits(self, stored: Option<Direction>) -> bool {
        stored.is_none_or(|d| d == self)
    }
}
