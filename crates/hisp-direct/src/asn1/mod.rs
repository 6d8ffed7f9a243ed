//! ASN.1 encoding for CMS (X.690 BER/DER) and the object identifiers Direct needs.
//! OpenSSL parses certificates and CRLs; this module handles the CMS containers around
//! them so that BER from Bouncy Castle, 64 KiB base64 lines from .NET and 100 MiB
//! messages all go through one code path that never copies the bulk content.

pub mod oid;
pub mod reader;
pub mod writer;

pub use reader::{Class, Tag, Tlv};

/// A malformed encoding, with the byte offset where decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Asn1Error {
    /// The input ended inside an element.
    #[error("truncated ASN.1 at byte {offset}")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
    },
    /// A length field that is not valid BER.
    #[error("invalid ASN.1 length at byte {offset}")]
    BadLength {
        /// Offset of the element.
        offset: usize,
    },
    /// A tag number too large to be real.
    #[error("invalid ASN.1 tag at byte {offset}")]
    BadTag {
        /// Offset of the element.
        offset: usize,
    },
    /// Nesting beyond any real CMS structure.
    #[error("ASN.1 nested too deeply at byte {offset}")]
    TooDeep {
        /// Offset of the element.
        offset: usize,
    },
    /// A well-formed element of the wrong kind.
    #[error("expected {what} at byte {offset}")]
    Unexpected {
        /// What the grammar called for.
        what: &'static str,
        /// Offset of the element found instead.
        offset: usize,
    },
}
