//! The outcome of opening: each check separately (decrypted, signature valid, trusted,
//! bound), the algorithms seen, the signer, and every reason for failure. The CLI prints it
//! as the DESIGN §3 JSON object; the daemon stores it with the message.

use crate::binding::CertBinding;
use crate::error::OpenError;

/// The algorithms a message used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// Content encryption, e.g. `aes-256-cbc`.
    pub content_encryption: Option<String>,
    /// Key transport, e.g. `rsa-pkcs1-v1_5`.
    pub key_transport: Option<String>,
    /// Signature digest, e.g. `sha256`.
    pub digest: Option<String>,
    /// Signature scheme, e.g. `rsa-pkcs1-v1_5-sha256`.
    pub signature: Option<String>,
}

/// Who signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerSummary {
    /// Subject DN, one line.
    pub subject: String,
    /// Addresses and domains the certificate binds.
    pub addresses: Vec<String>,
    /// SHA-256 of the certificate DER, lowercase hex.
    pub sha256: String,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
}

/// Every check's outcome and the reasons for failures.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The profile applied.
    pub profile: &'static str,
    /// The content was decrypted with our key.
    pub decrypted: bool,
    /// The signature verified over the signed content.
    pub signature_valid: bool,
    /// The signer chains to an anchor at the check time, is not revoked, and may sign.
    pub trusted: bool,
    /// The signer is bound to the sender's address or domain.
    pub bound: bool,
    /// The signer's certificate.
    pub signer: Option<SignerSummary>,
    /// The first From address of the unwrapped message.
    pub from: Option<String>,
    /// The From address of the outer (transport) message.
    pub outer_from: Option<String>,
    /// Content-Type of the unwrapped message.
    pub content_type: Option<String>,
    /// Content-Type of the signed entity (`message/rfc822` when the sender wrapped).
    pub signed_content_type: Option<String>,
    /// Whether the sender wrapped the whole message (Applicability Statement §3.3).
    pub wrapped: bool,
    /// The algorithms used.
    pub algorithms: Algorithms,
    /// The signingTime attribute (Unix seconds).
    pub signing_time: Option<i64>,
    /// Subjects of the trusted path, signer first.
    pub chain: Vec<String>,
    /// The binding that matched.
    pub binding: Option<CertBinding>,
    /// Why checks failed, in the order of the checks.
    pub errors: Vec<OpenError>,
    /// Legacy algorithms accepted, revocation not checked, and similar.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// An empty verdict for a profile.
    pub fn new(profile: &'static str) -> Verdict {
        Verdict {
            profile,
            ..Verdict::default()
        }
    }

    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.decrypted
            && self.signature_valid
            && self.trusted
            && self.bound
    }

    /// The `hisp open` exit status: 0, or that of the first failed check (DESIGN §3).
    pub fn exit_code(&self) -> u8 {
        if self.ok() {
            return 0;
        }
        match self.errors.first() {
            Some(e) => e.exit_code(),
            None if !self.decrypted => 4,
            None if !self.signature_valid => 5,
            None => 6,
        }
    }
}
