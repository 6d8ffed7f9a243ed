//! Trust bundles in the DirectTrust form: a PKCS#7 certs-only structure (DER or PEM), on
//! its own or as the encapsulated content of a signed CMS message whose signer is pinned
//! by configuration. Fetching and refreshing bundles is the server's job; this module only
//! reads and verifies bytes.

use crate::alg::Profile;
use crate::cms::verify::{parse_signed_data, verify};
use crate::error::{SignatureError, TrustError};
use crate::time::UnixTime;
use crate::trust::{evaluate, TrustAnchors, TrustInput, Usage};
use openssl::x509::X509;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not PKCS#7/CMS at all.
    #[error("not a trust bundle (expected PKCS#7 certs-only, DER or PEM): {0}")]
    Format(String),
    /// A signed bundle whose signature fails.
    #[error("bundle signature invalid: {0}")]
    Signature(SignatureError),
    /// A signed bundle whose signer is not the configured bundle signer.
    #[error("bundle signer not trusted: {0}")]
    Signer(TrustError),
    /// An unsigned bundle where a signature is required.
    #[error("bundle is not signed, and a signed bundle was required")]
    Unsigned,
    /// A bundle without certificates.
    #[error("bundle contains no certificates")]
    Empty,
}

/// Strip a PEM armour (`-----BEGIN PKCS7-----`, `CMS`, …) if present.
fn dearmor(bytes: &[u8]) -> Result<Vec<u8>, BundleError> {
    // Only text that starts with the armour is PEM: a DER signed bundle may carry a PEM
    // bundle inside its content.
    let lead = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if !bytes[lead..].starts_with(b"-----BEGIN ") {
        return Ok(bytes.to_vec());
    }
    let begin = lead;
    let body_start = memchr::memchr(b'\n', &bytes[begin..])
        .map(|i| begin + i + 1)
        .unwrap_or(bytes.len());
    let end = memchr::memmem::find(&bytes[body_start..], b"-----END ")
        .map(|i| body_start + i)
        .unwrap_or(bytes.len());
    crate::mime::base64::decode(&bytes[body_start..end])
        .map_err(|e| BundleError::Format(e.to_string()))
}

/// The certificates of a PKCS#7 certs-only bundle.
pub fn parse_certs_only(bytes: &[u8]) -> Result<Vec<X509>, BundleError> {
    let der = dearmor(bytes)?;
    let sd = parse_signed_data(&der, None).map_err(|e| BundleError::Format(e.to_string()))?;
    if sd.certs.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(sd.certs.into_iter().map(|c| c.x509.clone()).collect())
}

/// A verified signed bundle.
#[derive(Debug, Clone)]
pub struct SignedBundle {
    /// The anchors the bundle carries.
    pub anchors: Vec<X509>,
    /// The certificate that signed it.
    pub signer: X509,
}

/// Verify a signed bundle against the pinned signer certificates, then read its anchors.
pub fn open_signed_bundle(
    bytes: &[u8],
    signers: &TrustAnchors,
    at: UnixTime,
    profile: &Profile,
) -> Result<SignedBundle, BundleError> {
    let der = dearmor(bytes)?;
    let sd = parse_signed_data(&der, None).map_err(|e| BundleError::Format(e.to_string()))?;
    if sd.signers.is_empty() {
        return Err(BundleError::Unsigned);
    }
    let content = sd
        .econtent
        .clone()
        .ok_or_else(|| BundleError::Format("signed bundle has no content".into()))?;
    let outcome = verify(&sd, &content, profile).map_err(BundleError::Signature)?;
    let carried: Vec<X509> = sd.certs.iter().map(|c| c.x509.clone()).collect();
    let input = TrustInput {
        anchors: signers,
        intermediates: &carried,
        crls: &[],
        at,
        profile,
    };
    evaluate(&outcome.signer.x509, Usage::Signing, &input).map_err(BundleError::Signer)?;
    Ok(SignedBundle {
        anchors: parse_certs_only(&content)?,
        signer: outcome.signer.x509.clone(),
    })
}
