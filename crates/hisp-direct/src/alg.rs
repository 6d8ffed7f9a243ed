//! The algorithms Direct uses (Applicability Statement §3; RFC 5751 §2.7, RFC 8551), their
//! identifiers and names, and the crypto [`Profile`] that says which are acceptable.
//! The profile is a value passed to seal and open, never a global.

use crate::asn1::oid;
use openssl::hash::MessageDigest;
use openssl::symm::Cipher;
use std::sync::OnceLock;

/// Content-encryption algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// AES-128 in CBC mode (RFC 3565).
    Aes128Cbc,
    /// AES-192 in CBC mode.
    Aes192Cbc,
    /// AES-256 in CBC mode; the default for sending.
    Aes256Cbc,
    /// AES-128-GCM in AuthEnvelopedData (RFC 5083, RFC 5084).
    Aes128Gcm,
    /// AES-192-GCM.
    Aes192Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// Triple DES in CBC mode: legacy receipt only.
    DesEde3Cbc,
}

impl ContentCipher {
    /// Every cipher, for lookups.
    pub const ALL: [ContentCipher; 7] = [
        Self::Aes128Cbc,
        Self::Aes192Cbc,
        Self::Aes256Cbc,
        Self::Aes128Gcm,
        Self::Aes192Gcm,
        Self::Aes256Gcm,
        Self::DesEde3Cbc,
    ];

    /// The OBJECT IDENTIFIER content octets.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Self::Aes128Cbc => oid::AES128_CBC,
            Self::Aes192Cbc => oid::AES192_CBC,
            Self::Aes256Cbc => oid::AES256_CBC,
            Self::Aes128Gcm => oid::AES128_GCM,
            Self::Aes192Gcm => oid::AES192_GCM,
            Self::Aes256Gcm => oid::AES256_GCM,
            Self::DesEde3Cbc => oid::DES_EDE3_CBC,
        }
    }

    /// Look a cipher up by OID.
    pub fn from_oid(o: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.oid() == o)
    }

    /// The name used in verdicts and on the command line (OpenSSL's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "aes-128-cbc",
            Self::Aes192Cbc => "aes-192-cbc",
            Self::Aes256Cbc => "aes-256-cbc",
            Self::Aes128Gcm => "aes-128-gcm",
            Self::Aes192Gcm => "aes-192-gcm",
            Self::Aes256Gcm => "aes-256-gcm",
            Self::DesEde3Cbc => "des-ede3-cbc",
        }
    }

    /// Look a cipher up by name.
    pub fn from_name(n: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(n))
    }

    /// The cipher, fetched from the provider once per process. OpenSSL 3.0 fetches the
    /// legacy `EVP_aes_*()` objects again at every init, under the method store's lock,
    /// which two sealing threads contend for.
    pub fn fetched(self) -> &'static openssl::cipher::CipherRef {
        static FETCHED: [OnceLock<Option<openssl::cipher::Cipher>>; 7] =
            [const { OnceLock::new() }; 7];
        let slot = &FETCHED[self as usize];
        match slot.get_or_init(|| openssl::cipher::Cipher::fetch(None, self.name(), None).ok()) {
            Some(c) => c,
            None => self.legacy(),
        }
    }

    fn legacy(self) -> &'static openssl::cipher::CipherRef {
        use openssl::cipher::Cipher as C;
        match self {
            Self::Aes128Cbc => C::aes_128_cbc(),
            Self::Aes192Cbc => C::aes_192_cbc(),
            Self::Aes256Cbc => C::aes_256_cbc(),
            Self::Aes128Gcm => C::aes_128_gcm(),
            Self::Aes192Gcm => C::aes_192_gcm(),
            Self::Aes256Gcm => C::aes_256_gcm(),
            Self::DesEde3Cbc => C::des_ede3_cbc(),
        }
    }

    /// The OpenSSL cipher.
    pub fn openssl(self) -> Cipher {
        match self {
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes192Cbc => Cipher::aes_192_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
            Self::Aes128Gcm => Cipher::aes_128_gcm(),
            Self::Aes192Gcm => Cipher::aes_192_gcm(),
            Self::Aes256Gcm => Cipher::aes_256_gcm(),
            Self::DesEde3Cbc => Cipher::des_ede3_cbc(),
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc | Self::Aes128Gcm => 16,
            Self::Aes192Cbc | Self::Aes192Gcm | Self::DesEde3Cbc => 24,
            Self::Aes256Cbc | Self::Aes256Gcm => 32,
        }
    }

    /// True for the AEAD ciphers carried in AuthEnvelopedData.
    pub fn is_aead(self) -> bool {
        matches!(self, Self::Aes128Gcm | Self::Aes192Gcm | Self::Aes256Gcm)
    }
}

/// Message digests for signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1: legacy receipt only.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256: the default for sending.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// Every digest, for lookups.
    pub const ALL: [Digest; 5] = [
        Self::Sha1,
        Self::Sha224,
        Self::Sha256,
        Self::Sha384,
        Self::Sha512,
    ];

    /// The OBJECT IDENTIFIER content octets.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Self::Sha1 => oid::SHA1,
            Self::Sha224 => oid::SHA224,
            Self::Sha256 => oid::SHA256,
            Self::Sha384 => oid::SHA384,
            Self::Sha512 => oid::SHA512,
        }
    }

    /// Look a digest up by OID.
    pub fn from_oid(o: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.oid() == o)
    }

    /// Name in verdicts ("sha256").
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// Look a digest up by name (`sha256`, `SHA-256`, `sha-256` all work).
    pub fn from_name(n: &str) -> Option<Self> {
        let n: String = n.chars().filter(|c| *c != '-').collect();
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(&n))
    }

    /// The `micalg` parameter value (RFC 5751 §3.4.3.2).
    pub fn micalg(self) -> &'static str {
        match self {
            Self::Sha1 => "sha-1",
            Self::Sha224 => "sha-224",
            Self::Sha256 => "sha-256",
            Self::Sha384 => "sha-384",
            Self::Sha512 => "sha-512",
        }
    }

    /// Start a running digest.
    pub fn start(self) -> Hashing {
        use openssl::sha;
        match self {
            Self::Sha1 => Hashing::Sha1(sha::Sha1::new()),
            Self::Sha224 => Hashing::Sha224(sha::Sha224::new()),
            Self::Sha256 => Hashing::Sha256(sha::Sha256::new()),
            Self::Sha384 => Hashing::Sha384(sha::Sha384::new()),
            Self::Sha512 => Hashing::Sha512(sha::Sha512::new()),
        }
    }

    /// The digest of `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.start();
        h.update(data);
        h.finish()
    }

    /// The OpenSSL digest.
    pub fn openssl(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha224 => MessageDigest::sha224(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// A running digest through OpenSSL's SHA functions directly: no provider fetch, context
/// allocation or lock per message, which the EVP layer of OpenSSL 3.0 takes each time.
/// A clone is a copy of the running state.
#[derive(Clone)]
pub enum Hashing {
    /// SHA-1.
    Sha1(openssl::sha::Sha1),
    /// SHA-224.
    Sha224(openssl::sha::Sha224),
    /// SHA-256.
    Sha256(openssl::sha::Sha256),
    /// SHA-384.
    Sha384(openssl::sha::Sha384),
    /// SHA-512.
    Sha512(openssl::sha::Sha512),
}

impl Hashing {
    /// Feed more input.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finish().to_vec(),
            Self::Sha224(h) => h.finish().to_vec(),
            Self::Sha256(h) => h.finish().to_vec(),
            Self::Sha384(h) => h.finish().to_vec(),
            Self::Sha512(h) => h.finish().to_vec(),
        }
    }
}

/// Key transport for the content-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5 (RFC 8017 §7.2): the default, understood by every RI.
    RsaPkcs1v15,
    /// RSAES-OAEP (RFC 8017 §7.1, RFC 8018 params) with the given hash for both the label
    /// hash and MGF1.
    RsaOaep(Digest),
}

impl KeyTransport {
    /// Name in verdicts.
    pub fn name(self) -> String {
        match self {
            Self::RsaPkcs1v15 => "rsa-pkcs1-v1_5".into(),
            Self::RsaOaep(d) => format!("rsa-oaep-{}", d.name()),
        }
    }
}

/// A crypto policy: what may be sent and what is accepted on receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `strict` or `legacy`.
    pub name: &'static str,
    /// Smallest RSA modulus accepted for signers, recipients and chain certificates.
    pub min_rsa_bits: u32,
    /// Whether SHA-1 signatures are accepted (flagged) on receipt.
    pub allow_sha1: bool,
    /// Whether 3DES content encryption is accepted (flagged) on receipt.
    pub allow_3des: bool,
}

/// A rule of the profile that an algorithm broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{algorithm} is not allowed by the {profile} profile{hint}")]
pub struct PolicyViolation {
    /// The weak algorithm, named.
    pub algorithm: String,
    /// The profile that refused it.
    pub profile: &'static str,
    /// What to do about it.
    pub hint: &'static str,
}

impl Profile {
    /// Default for sending and receiving: SHA-256+, AES, RSA ≥ 2048.
    pub fn strict() -> Profile {
        Profile {
            name: "strict",
            min_rsa_bits: 2048,
            allow_sha1: false,
            allow_3des: false,
        }
    }

    /// For 2010-era peers: accepts SHA-1, 3DES and 1024-bit RSA on receipt, each flagged.
    pub fn legacy() -> Profile {
        Profile {
            name: "legacy",
            min_rsa_bits: 1024,
            allow_sha1: true,
            allow_3des: true,
        }
    }

    /// Look a profile up by name.
    pub fn by_name(n: &str) -> Option<Profile> {
        match n.to_ascii_lowercase().as_str() {
            "strict" => Some(Self::strict()),
            "legacy" => Some(Self::legacy()),
            _ => None,
        }
    }

    fn violation(&self, algorithm: String) -> PolicyViolation {
        let hint = if self.name == "strict" {
            " (use the legacy profile for 2010-era peers)"
        } else {
            ""
        };
        PolicyViolation {
            algorithm,
            profile: self.name,
            hint,
        }
    }

    /// Check a digest; `Ok(Some(warning))` when accepted only as legacy.
    pub fn check_digest(&self, d: Digest) -> Result<Option<String>, PolicyViolation> {
        match d {
            Digest::Sha1 if !self.allow_sha1 => Err(self.violation("digest SHA-1".into())),
            Digest::Sha1 => Ok(Some("legacy: SHA-1 signature digest accepted".into())),
            _ => Ok(None),
        }
    }

    /// Check a content cipher.
    pub fn check_cipher(&self, c: ContentCipher) -> Result<Option<String>, PolicyViolation> {
        match c {
            ContentCipher::DesEde3Cbc if !self.allow_3des => {
                Err(self.violation("content encryption 3DES (des-ede3-cbc)".into()))
            }
            ContentCipher::DesEde3Cbc => {
                Ok(Some("legacy: 3DES content encryption accepted".into()))
            }
            _ => Ok(None),
        }
    }

    /// Check an RSA key size; `what` names the key ("signer certificate CN=…").
    pub fn check_rsa_bits(&self, bits: u32, what: &str) -> Result<Option<String>, PolicyViolation> {
        if bits < self.min_rsa_bits {
            return Err(self.violation(format!("{bits}-bit RSA key of {what}")));
        }
        if bits < 2048 {
            return Ok(Some(format!(
                "legacy: {bits}-bit RSA key of {what} accepted"
            )));
        }
        Ok(None)
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self::strict()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA functions used directly give the EVP digests (FIPS 180-4), for every digest.
    #[test]
    fn fips180_direct_digests_match_evp() {
        for d in Digest::ALL {
            let mut h = d.start();
            h.update(b"abc");
            h.update(&[7u8; 300]);
            let want = openssl::hash::hash(d.openssl(), &[b"abc".as_slice(), &[7u8; 300]].concat());
            assert_eq!(h.finish(), want.unwrap().to_vec(), "{d:?}");
        }
    }

    /// Every content cipher is fetched from the provider with the key and IV sizes of RFC
    /// 3565 / RFC 5084 (a failed fetch would fall back to the legacy object).
    #[test]
    fn rfc3565_fetched_ciphers_have_the_right_sizes() {
        for c in ContentCipher::ALL {
            let f = c.fetched();
            assert_eq!(f.key_length(), c.key_len(), "{c:?}");
            assert_eq!(f.key_length(), c.openssl().key_len(), "{c:?}");
            assert_eq!(f.iv_length(), c.openssl().iv_len().unwrap_or(0), "{c:?}");
        }
    }

    #[test]
    fn applicability_statement_strict_refuses_legacy_algorithms() {
        let s = Profile::strict();
        assert!(s
            .check_digest(Digest::Sha1)
            .unwrap_err()
            .to_string()
            .contains("SHA-1"));
        assert!(s.check_cipher(ContentCipher::DesEde3Cbc).is_err());
        assert!(s.check_rsa_bits(1024, "signer").is_err());
        assert_eq!(s.check_digest(Digest::Sha256), Ok(None));
        let l = Profile::legacy();
        assert!(l.check_digest(Digest::Sha1).unwrap().is_some());
        assert!(l.check_rsa_bits(1024, "signer").unwrap().is_some());
        assert!(l.check_rsa_bits(512, "signer").is_err());
    }

    #[test]
    fn rfc5751_3_4_3_2_micalg_names() {
        assert_eq!(Digest::from_name("SHA1"), Some(Digest::Sha1));
        assert_eq!(Digest::from_name("sha-256"), Some(Digest::Sha256));
        assert_eq!(Digest::Sha256.micalg(), "sha-256");
        assert_eq!(
            ContentCipher::from_oid(oid::AES128_CBC),
            Some(ContentCipher::Aes128Cbc)
        );
    }
}
