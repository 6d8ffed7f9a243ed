//! `[crypto]`: the algorithm names an operator may write, as enums, and the values they mean.

use hisp_direct::alg::{ContentCipher, Digest, KeyTransport, Profile};
use serde::{Deserialize, Serialize};

/// Names of content ciphers accepted in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CipherName {
    /// AES-128-CBC
    #[serde(rename = "aes-128-cbc")]
    Aes128Cbc,
    /// AES-256-CBC
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
    /// AES-128-GCM
    #[serde(rename = "aes-128-gcm")]
    Aes128Gcm,
    /// AES-256-GCM
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl CipherName {
    /// The algorithm.
    pub fn cipher(self) -> ContentCipher {
        match self {
            Self::Aes128Cbc => ContentCipher::Aes128Cbc,
            Self::Aes256Cbc => ContentCipher::Aes256Cbc,
            Self::Aes128Gcm => ContentCipher::Aes128Gcm,
            Self::Aes256Gcm => ContentCipher::Aes256Gcm,
        }
    }
}

/// Key transport names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyTransportName {
    /// RSA PKCS#1 v1.5
    #[serde(rename = "rsa-pkcs1-v1_5")]
    RsaPkcs1V15,
    /// RSA-OAEP with SHA-256
    RsaOaep,
}

/// Digest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestName {
    /// SHA-256
    Sha256,
    /// SHA-384
    Sha384,
    /// SHA-512
    Sha512,
}

/// Profile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// SHA-256+, AES, RSA ≥ 2048.
    Strict,
    /// Also accepts SHA-1, 3DES and 1024-bit RSA on receipt.
    Legacy,
}

/// `[crypto]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    /// Profile applied to received mail.
    #[serde(default = "default_profile")]
    pub receive_profile: ProfileName,
    /// Content encryption for sending.
    #[serde(default = "default_cipher")]
    pub cipher: CipherName,
    /// Key transport for sending.
    #[serde(default = "default_kt")]
    pub key_transport: KeyTransportName,
    /// Signature digest for sending.
    #[serde(default = "default_digest")]
    pub digest: DigestName,
}

fn default_profile() -> ProfileName {
    ProfileName::Strict
}
fn default_cipher() -> CipherName {
    CipherName::Aes256Cbc
}
fn default_kt() -> KeyTransportName {
    KeyTransportName::RsaPkcs1V15
}
fn default_digest() -> DigestName {
    DigestName::Sha256
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            receive_profile: default_profile(),
            cipher: default_cipher(),
            key_transport: default_kt(),
            digest: default_digest(),
        }
    }
}

impl CryptoConfig {
    /// The receive profile as a value.
    pub fn profile(&self) -> Profile {
        match self.receive_profile {
            ProfileName::Strict => Profile::strict(),
            ProfileName::Legacy => Profile::legacy(),
        }
    }
    /// The sending key transport.
    pub fn key_transport(&self) -> KeyTransport {
        match self.key_transport {
            KeyTransportName::RsaPkcs1V15 => KeyTransport::RsaPkcs1v15,
            KeyTransportName::RsaOaep => KeyTransport::RsaOaep(Digest::Sha256),
        }
    }
    /// The sending digest.
    pub fn digest(&self) -> Digest {
        match self.digest {
            DigestName::Sha256 => Digest::Sha256,
            DigestName::Sha384 => Digest::Sha384,
            DigestName::Sha512 => Digest::Sha512,
        }
    }
}
