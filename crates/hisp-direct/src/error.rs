//! The reasons an open or seal fails, one family per check, each variant a rule with its
//! evidence. [`OpenError::exit_code`] maps them to the DESIGN §3 exit statuses in one place.

use crate::alg::PolicyViolation;
use crate::asn1::Asn1Error;
use crate::mime::MimeError;

/// The message could not be read at all (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Zero bytes (or only whitespace).
    #[error("empty input: no message to open")]
    Empty,
}

/// The message could not be decrypted (exit 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// Not an encrypted S/MIME message.
    #[error("not S/MIME: Content-Type is {0}, expected application/pkcs7-mime; smime-type=enveloped-data")]
    NotSmime(String),
    /// S/MIME, but signed only: Direct requires encryption.
    #[error("message is signed but not encrypted (Direct requires application/pkcs7-mime enveloped-data)")]
    NotEncrypted,
    /// The body's transfer encoding could not be undone.
    #[error("cannot decode the S/MIME body: {0}")]
    Mime(#[from] MimeError),
    /// The CMS structure is malformed or truncated.
    #[error("malformed CMS EnvelopedData: {0}")]
    Asn1(#[from] Asn1Error),
    /// A CMS ContentInfo of another type.
    #[error("CMS content type {0} is not enveloped-data or auth-enveloped-data")]
    NotEnveloped(String),
    /// A content cipher this implementation does not accept.
    #[error("unsupported content encryption algorithm {0}")]
    UnsupportedCipher(String),
    /// A key transport this implementation does not accept.
    #[error("unsupported key transport algorithm {0}")]
    UnsupportedKeyTransport(String),
    /// The profile refuses the algorithm.
    #[error("{0}")]
    Policy(PolicyViolation),
    /// No RecipientInfo names our certificate.
    #[error("not a recipient: no RecipientInfo for our certificate (issuer {issuer}, serial {serial}); the message was encrypted for: {recipients}")]
    NoRecipient {
        /// Our certificate's issuer.
        issuer: String,
        /// Our certificate's serial (hex).
        serial: String,
        /// The recipients the message names.
        recipients: String,
    },
    /// The content could not be decrypted with the recovered key: wrong key, tampered
    /// ciphertext, or a failed GCM tag. (Reported alike, so no padding oracle exists.)
    #[error("content decryption failed: wrong key, or the ciphertext was altered")]
    Content,
    /// Encrypted content is absent (detached EnvelopedData is not used by Direct).
    #[error("EnvelopedData has no encrypted content")]
    NoContent,
}

/// The signature is missing or does not verify (exit 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The decrypted content is not signed.
    #[error(
        "decrypted content is not signed (Content-Type {0}); Direct requires multipart/signed"
    )]
    NotSigned(String),
    /// multipart/signed without exactly a content part and a signature part.
    #[error("multipart/signed must have 2 parts, found {0}")]
    PartCount(usize),
    /// A MIME problem inside the signed structure.
    #[error("malformed multipart/signed: {0}")]
    Mime(#[from] MimeError),
    /// The detached signature is not valid CMS SignedData.
    #[error("malformed CMS SignedData: {0}")]
    Asn1(#[from] Asn1Error),
    /// A CMS ContentInfo of another type where SignedData belongs.
    #[error("signature part holds CMS content type {0}, not signed-data")]
    NotSignedData(String),
    /// SignedData with no SignerInfo.
    #[error("SignedData has no SignerInfo")]
    NoSigner,
    /// The signer's certificate is not in the message.
    #[error("signer certificate not included in the message")]
    SignerCertMissing,
    /// Unknown digest.
    #[error("unsupported digest algorithm {0}")]
    UnsupportedDigest(String),
    /// Unknown signature algorithm.
    #[error("unsupported signature algorithm {0}")]
    UnsupportedSignature(String),
    /// The profile refuses the digest.
    #[error("{0}")]
    Policy(PolicyViolation),
    /// messageDigest attribute ≠ digest of the content: the content was altered.
    #[error("message digest mismatch: the signed content was altered")]
    DigestMismatch,
    /// The signed attributes lack a required attribute (RFC 5652 §5.3).
    #[error("signed attributes lack {0}")]
    MissingAttribute(&'static str),
    /// contentType attribute differs from the encapsulated content type (RFC 5652 §11.1).
    #[error("contentType attribute does not match the encapsulated content type")]
    ContentTypeMismatch,
    /// cmsAlgorithmProtection disagrees with the algorithms used (RFC 6211 §2).
    #[error("cmsAlgorithmProtection attribute does not match the algorithms used (RFC 6211)")]
    AlgorithmProtection,
    /// The signature value does not verify with the signer's public key.
    #[error("signature does not verify with the signer's public key")]
    BadSignature,
}

/// The signer is not trusted (exit 6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No anchors were configured.
    #[error("no trust anchors configured")]
    NoAnchors,
    /// Path validation failed (RFC 5280 §6).
    #[error("certificate path not trusted: {reason} (at depth {depth}: {subject})")]
    Path {
        /// OpenSSL's reason, e.g. "certificate has expired".
        reason: String,
        /// The X509_V_ERR code.
        code: i32,
        /// 0 = the signer itself.
        depth: u32,
        /// The certificate the failure is about.
        subject: String,
    },
    /// A CRL lists the certificate.
    #[error("certificate {subject} is revoked (serial {serial}, since {date})")]
    Revoked {
        /// The revoked certificate.
        subject: String,
        /// Its serial (hex).
        serial: String,
        /// Revocation time (RFC 3339).
        date: String,
    },
    /// The CRL for an issuer is past nextUpdate (or not yet valid), so status is unknown.
    #[error("CRL of {issuer} is not current at the check time (thisUpdate {this_update}, nextUpdate {next_update}): revocation status unknown")]
    CrlNotCurrent {
        /// The CRL issuer.
        issuer: String,
        /// thisUpdate (RFC 3339).
        this_update: String,
        /// nextUpdate (RFC 3339) or "none".
        next_update: String,
    },
    /// Key usage / extended key usage does not permit the use.
    #[error("certificate {subject} may not be used for {usage}: {detail}")]
    KeyUsage {
        /// The certificate.
        subject: String,
        /// "signing" or "encryption".
        usage: &'static str,
        /// What the extension says.
        detail: String,
    },
    /// The profile refuses a key or algorithm in the chain.
    #[error("{0}")]
    Policy(PolicyViolation),
}

/// The signer is not bound to the sender (exit 6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// No From address to check.
    #[error("message has no From address to bind the signer to")]
    NoFrom,
    /// The certificate binds no address or domain at all.
    #[error("signer certificate binds no address or domain (no rfc822Name/dNSName SAN, no emailAddress in the subject)")]
    Unbound,
    /// An address-bound certificate for other addresses.
    #[error("From {from} is not bound to the signer: certificate is bound to address {bound}")]
    AddressMismatch {
        /// The sender.
        from: String,
        /// The addresses the certificate names.
        bound: String,
    },
    /// A domain-bound certificate for another domain.
    #[error("From {from} is not bound to the signer: certificate is bound to domain {bound}")]
    DomainMismatch {
        /// The sender.
        from: String,
        /// The domains the certificate names.
        bound: String,
    },
}

/// Any reason an open fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Unreadable input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Decryption failed.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// Signature failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Trust failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Binding failed.
    #[error(transparent)]
    Binding(#[from] BindingError),
}

impl OpenError {
    /// The `hisp open` exit status for this failure (DESIGN §3).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::Decrypt(_) => 4,
            Self::Signature(_) => 5,
            Self::Trust(_) | Self::Binding(_) => 6,
        }
    }

    /// A short, fixed name for the failed rule (logs and metrics labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Input(_) => "input",
            Self::Decrypt(_) => "decrypt",
            Self::Signature(_) => "signature",
            Self::Trust(_) => "trust",
            Self::Binding(_) => "binding",
        }
    }
}

/// Why a seal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Nothing to seal.
    #[error("empty message: nothing to seal")]
    Empty,
    /// No recipients.
    #[error("no recipient certificates given")]
    NoRecipients,
    /// The chosen algorithm or a key is below the profile.
    #[error("{0}")]
    Policy(PolicyViolation),
    /// A recipient certificate without an RSA key.
    #[error("recipient certificate {0} has no RSA key (Direct key transport is RSA)")]
    RecipientKey(String),
    /// A recipient certificate that does not permit key encipherment.
    #[error("recipient certificate {subject} does not allow key encipherment: {detail}")]
    RecipientUsage {
        /// The certificate.
        subject: String,
        /// What its key usage says.
        detail: String,
    },
    /// An OpenSSL operation failed.
    #[error("cannot {what}: {source}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// The OpenSSL error.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The sealed message could not be written out ([`crate::seal::seal_to`]).
    #[error("cannot write the sealed message: {0}")]
    Write(#[source] std::io::Error),
}

impl SealError {
    /// Wrap an OpenSSL error with what was being done.
    pub fn crypto(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> SealError {
        move |source| SealError::Crypto { what, source }
    }
}
