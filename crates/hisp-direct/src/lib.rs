//! The Direct protocol core: everything a HISP computes, nothing it does over a network.
//!
//! Bytes in, bytes and verdicts out. The modules follow the layers of the Direct
//! Applicability Statement:
//!
//! - [`asn1`]: BER/DER for the CMS containers (indefinite lengths, chunked strings).
//! - [`mime`]: headers, multiparts, base64, addresses, at byte level.
//!
//! No function here reads the clock, a file or a socket; time is always a parameter.
#![warn(missing_docs)]

pub mod alg;
pub mod asn1;
pub mod binding;
pub mod bundle;
pub mod cert;
pub mod cms;
pub mod dsn;
pub mod error;
pub mod keys;
pub mod mdn;
pub mod mime;
pub mod notification;
pub mod open;
pub mod pki;
pub mod seal;
pub mod time;
pub mod trust;
