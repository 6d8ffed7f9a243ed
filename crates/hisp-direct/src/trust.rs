//! Trust evaluation (RFC 5280 §6 via OpenSSL's path validation; Applicability Statement
//! §4 "trust anchors"): a path from a certificate to a configured anchor at a given time,
//! key usage fit for the use, key sizes under the profile, and revocation against the CRLs
//! handed in (fetching CRLs is discovery's job, not the core's).

use crate::alg::Profile;
use crate::cert::{name_string, subject_string};
use crate::error::TrustError;
use crate::time::{format_rfc3339, from_asn1, UnixTime};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{
    CrlStatus, X509Crl, X509ExtendedKeyUsage, X509KeyUsage, X509Ref, X509StoreContext, X509,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a certificate is being trusted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    /// Signing messages (digitalSignature or nonRepudiation).
    Signing,
    /// Receiving encrypted messages (keyEncipherment).
    Encryption,
}

impl Usage {
    fn name(self) -> &'static str {
        match self {
            Usage::Signing => "signing",
            Usage::Encryption => "encryption",
        }
    }
}

/// A set of trust anchors. OpenSSL fixes the verification time when a store is built, so a
/// store is built per check time and the last one is kept for the next message.
pub struct TrustAnchors {
    certs: Vec<X509>,
    id: [u8; 32],
    cache: Mutex<Option<(UnixTime, Arc<X509Store>)>>,
    paths: Mutex<HashMap<PathKey, Arc<CachedPath>>>,
}

/// Validated paths are remembered per (certificate, intermediates, use, profile): a path
/// that held at one time holds at any time inside every certificate's validity, since the
/// anchors are fixed for the life of a `TrustAnchors`. Revocation is checked every time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PathKey {
    leaf: [u8; 32],
    intermediates: [u8; 32],
    usage: Usage,
    profile: &'static str,
}

#[derive(Debug)]
struct CachedPath {
    chain: Vec<X509>,
    subjects: Vec<String>,
    notes: Vec<String>,
    valid_from: UnixTime,
    valid_until: UnixTime,
}

/// Cached paths kept before the cache starts over.
const MAX_CACHED_PATHS: usize = 10_000;

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("count", &self.certs.len())
            .finish()
    }
}

impl TrustAnchors {
    /// Anchors from certificates (root or intermediate CAs, or pinned end entities).
    pub fn new(certs: Vec<X509>) -> TrustAnchors {
        let mut set = openssl::sha::Sha256::new();
        for c in &certs {
            set.update(&c.to_der().unwrap_or_default());
        }
        TrustAnchors {
            id: set.finish(),
            certs,
            cache: Mutex::new(None),
            paths: Mutex::new(HashMap::new()),
        }
    }

    fn cached_path(&self, key: &PathKey, at: UnixTime) -> Option<Arc<CachedPath>> {
        let paths = self.paths.lock().ok()?;
        let p = paths.get(key)?;
        (p.valid_from <= at && at <= p.valid_until).then(|| p.clone())
    }

    fn remember_path(&self, key: PathKey, path: CachedPath) {
        if let Ok(mut paths) = self.paths.lock() {
            if paths.len() >= MAX_CACHED_PATHS {
                paths.clear();
            }
            paths.insert(key, Arc::new(path));
        }
    }

    /// A digest of the anchor set (SHA-256 over each anchor's DER, in order): equal sets
    /// built alike share it, so results judged against one may be reused for the other.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// The anchor certificates.
    pub fn certs(&self) -> &[X509] {
        &self.certs
    }

    fn store_at(&self, at: UnixTime) -> Result<Arc<X509Store>, openssl::error::ErrorStack> {
        if let Ok(guard) = self.cache.lock() {
            if let Some((t, s)) = guard.as_ref() {
                if *t == at {
                    return Ok(s.clone());
                }
            }
        }
        let mut b = X509StoreBuilder::new()?;
        for c in &self.certs {
            b.add_cert(c.clone())?;
        }
        let mut p = X509VerifyParam::new()?;
        p.set_time(at as _);
        // PARTIAL_CHAIN: an anchor may be an intermediate CA or the end entity itself, as
        // Direct trust bundles and domain anchors often are.
        p.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
        b.set_param(&p)?;
        let store = Arc::new(b.build());
        if let Ok(mut guard) = self.cache.lock() {
            *guard = Some((at, store.clone()));
        }
        Ok(store)
    }
}

/// A trusted path and what was learned on the way.
#[derive(Debug, Clone)]
pub struct TrustPath {
    /// Leaf first, anchor last.
    pub chain: Vec<X509>,
    /// The subjects of `chain`, one line each (formatted once per cached path).
    pub subjects: Vec<String>,
    /// Legacy algorithms accepted and revocation checks that could not be made.
    pub notes: Vec<String>,
}

/// What a trust check needs besides the certificate.
#[derive(Clone, Copy)]
pub struct TrustInput<'a> {
    /// The anchors.
    pub anchors: &'a TrustAnchors,
    /// Untrusted intermediates (from the message, or configured).
    pub intermediates: &'a [X509],
    /// CRLs to check revocation against.
    pub crls: &'a [X509Crl],
    /// The check time.
    pub at: UnixTime,
    /// Key size policy.
    pub profile: &'a Profile,
}

/// [`evaluate`] for a certificate already described, which spares the fingerprint.
pub fn evaluate_known(
    cert: &crate::cert::ParsedCert,
    usage: Usage,
    input: &TrustInput<'_>,
) -> Result<TrustPath, TrustError> {
    evaluate_with(&cert.x509, Some(cert.sha256), usage, input)
}

/// Decide whether `cert` is trusted for `usage` at `input.at`.
pub fn evaluate(
    cert: &X509Ref,
    usage: Usage,
    input: &TrustInput<'_>,
) -> Result<TrustPath, TrustError> {
    evaluate_with(cert, None, usage, input)
}

fn evaluate_with(
    cert: &X509Ref,
    leaf_sha256: Option<[u8; 32]>,
    usage: Usage,
    input: &TrustInput<'_>,
) -> Result<TrustPath, TrustError> {
    if input.anchors.certs.is_empty() {
        return Err(TrustError::NoAnchors);
    }
    let key = path_key(cert, leaf_sha256, usage, input);
    if let Some(p) = key
        .as_ref()
        .and_then(|k| input.anchors.cached_path(k, input.at))
    {
        let mut notes = p.notes.clone();
        notes.extend(check_revocation(&p.chain, input.crls, input.at)?);
        return Ok(TrustPath {
            chain: p.chain.clone(),
            subjects: p.subjects.clone(),
            notes,
        });
    }
    let chain = build_path(cert, input)?;
    let subjects: Vec<String> = chain.iter().map(|c| subject_string(c)).collect();
    let mut notes = Vec::new();
    check_usage(cert, usage)?;
    for c in &chain {
        if let Some(bits) = crate::cert::rsa_bits(c) {
            let what = format!("certificate {}", subject_string(c));
            if let Some(n) = input
                .profile
                .check_rsa_bits(bits, &what)
                .map_err(TrustError::Policy)?
            {
                notes.push(n);
            }
        }
    }
    if let Some(key) = key {
        let times = |f: fn(&X509) -> Option<UnixTime>| chain.iter().map(f);
        let path = CachedPath {
            valid_from: times(|c| from_asn1(c.not_before()))
                .map(|t| t.unwrap_or(i64::MAX))
                .max()
                .unwrap_or(i64::MAX),
            valid_until: times(|c| from_asn1(c.not_after()))
                .map(|t| t.unwrap_or(i64::MIN))
                .min()
                .unwrap_or(i64::MIN),
            chain: chain.clone(),
            subjects: subjects.clone(),
            notes: notes.clone(),
        };
        input.anchors.remember_path(key, path);
    }
    notes.extend(check_revocation(&chain, input.crls, input.at)?);
    Ok(TrustPath {
        chain,
        subjects,
        notes,
    })
}

fn path_key(
    cert: &X509Ref,
    leaf: Option<[u8; 32]>,
    usage: Usage,
    input: &TrustInput<'_>,
) -> Option<PathKey> {
    let leaf = match leaf {
        Some(l) => l,
        None => openssl::sha::sha256(&cert.to_der().ok()?),
    };
    let mut h = openssl::sha::Sha256::new();
    for c in input.intermediates {
        h.update(&c.to_der().ok()?);
    }
    Some(PathKey {
        leaf,
        intermediates: h.finish(),
        usage,
        profile: input.profile.name,
    })
}

fn build_path(cert: &X509Ref, input: &TrustInput<'_>) -> Result<Vec<X509>, TrustError> {
    let internal = |e: openssl::error::ErrorStack| TrustError::Path {
        reason: format!("OpenSSL error: {e}"),
        code: -1,
        depth: 0,
        subject: subject_string(cert),
    };
    let store = input.anchors.store_at(input.at).map_err(internal)?;
    let mut untrusted = Stack::new().map_err(internal)?;
    for c in input.intermediates {
        untrusted.push(c.clone()).map_err(internal)?;
    }
    let mut ctx = X509StoreContext::new().map_err(internal)?;
    let outcome = ctx
        .init(&store, cert, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let chain: Vec<X509> = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            let failed_subject = c.current_cert().map(subject_string);
            Ok((ok, c.error(), c.error_depth(), failed_subject, chain))
        })
        .map_err(internal)?;
    let (ok, err, depth, failed, chain) = outcome;
    if ok {
        return Ok(chain);
    }
    Err(TrustError::Path {
        reason: err.error_string().to_string(),
        code: err.as_raw(),
        depth,
        subject: failed.unwrap_or_else(|| subject_string(cert)),
    })
}

/// RFC 5280 §4.2.1.3 / §4.2.1.12 and RFC 8550 §4.4: key usage must allow the use, and an
/// extended key usage, when present, must include emailProtection (or anyExtendedKeyUsage).
pub fn check_usage(cert: &X509Ref, usage: Usage) -> Result<(), TrustError> {
    let err = |detail: String| TrustError::KeyUsage {
        subject: subject_string(cert),
        usage: usage.name(),
        detail,
    };
    if let Some(ku) = cert.key_usage() {
        let needed = match usage {
            Usage::Signing => X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION,
            Usage::Encryption => X509KeyUsage::KEY_ENCIPHERMENT,
        };
        if !ku.intersects(needed) {
            return Err(err(format!("keyUsage is {ku:?}")));
        }
    }
    if let Some(eku) = cert.extended_key_usage() {
        if !eku.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU) {
            return Err(err(format!(
                "extendedKeyUsage lacks emailProtection ({eku:?})"
            )));
        }
    }
    Ok(())
}

/// Check each non-anchor certificate against a CRL from its issuer (RFC 5280 §6.3). A CRL
/// that is past nextUpdate makes the status unknown, which fails the check. A certificate
/// for which no CRL was supplied is noted, not failed.
pub fn check_revocation(
    chain: &[X509],
    crls: &[X509Crl],
    at: UnixTime,
) -> Result<Vec<String>, TrustError> {
    let mut notes = Vec::new();
    for pair in chain.windows(2) {
        let (cert, issuer) = (&pair[0], &pair[1]);
        let Ok(issuer_key) = issuer.public_key() else {
            continue;
        };
        let crl = crls.iter().find(|crl| {
            crl.issuer_name()
                .try_cmp(cert.issuer_name())
                .is_ok_and(|o| o.is_eq())
                && crl.verify(&issuer_key).unwrap_or(false)
        });
        let Some(crl) = crl else {
            if !crls.is_empty() {
                notes.push(format!(
                    "revocation not checked for {}: no CRL from its issuer",
                    subject_string(cert)
                ));
            }
            continue;
        };
        check_one(cert, crl, at)?;
    }
    Ok(notes)
}

fn check_one(cert: &X509Ref, crl: &X509Crl, at: UnixTime) -> Result<(), TrustError> {
    let this = from_asn1(crl.last_update()).unwrap_or(i64::MAX);
    let next = crl.next_update().and_then(from_asn1);
    if this > at || next.is_some_and(|n| n < at) {
        return Err(TrustError::CrlNotCurrent {
            issuer: name_string(crl.issuer_name()),
            this_update: format_rfc3339(this),
            next_update: next.map(format_rfc3339).unwrap_or_else(|| "none".into()),
        });
    }
    let serial = cert.serial_number();
    if let CrlStatus::Revoked(r) = crl.get_by_serial(serial) {
        let date = from_asn1(r.revocation_date())
            .map(format_rfc3339)
            .unwrap_or_default();
        let serial = serial
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
            .unwrap_or_default();
        return Err(TrustError::Revoked {
            subject: subject_string(cert),
            serial,
            date,
        });
    }
    Ok(())
}
