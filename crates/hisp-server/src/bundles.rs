//! Trust bundles (DirectTrust form): fetched from their URL on a schedule, verified against
//! the pinned signer when one is configured, and loaded only then. A version that fails
//! (unreachable, tampered, signer not trusted) changes nothing but the recorded error: the
//! anchors of the last good version stay in force.

use hisp_direct::alg::Profile;
use hisp_direct::bundle::{open_signed_bundle, parse_certs_only};
use hisp_direct::cert::ParsedCert;
use hisp_direct::trust::TrustAnchors;
use hisp_discovery::fetch::Fetcher;
use hisp_store::{Bundle, NewAnchor, Store};

/// Longest wait before a failed bundle is tried again.
const RETRY_SECS: i64 = 900;

/// Fetch and verify bundle `b` at `now`; the anchors it carries.
pub async fn fetch_verified(
    fetcher: &Fetcher,
    b: &Bundle,
    now: i64,
    profile: &Profile,
) -> Result<Vec<NewAnchor>, String> {
    let bytes = fetcher.bytes(&b.spec.url).await?;
    let certs = match &b.spec.signer_der {
        Some(der) => {
            let signer = openssl::x509::X509::from_der(der)
                .map_err(|e| format!("the pinned signer certificate cannot be read: {e}"))?;
            let signers = TrustAnchors::new(vec![signer]);
            open_signed_bundle(&bytes, &signers, now, profile)
                .map_err(|e| e.to_string())?
                .anchors
        }
        None => parse_certs_only(&bytes).map_err(|e| e.to_string())?,
    };
    let mut out = Vec::new();
    for c in certs {
        let p = ParsedCert::from_x509(c).map_err(|e| format!("an anchor cannot be read: {e}"))?;
        out.push(NewAnchor {
            domain: b.spec.domain.clone(),
            direction: b.spec.direction,
            sha256: p.sha256_hex(),
            subject: p.subject.clone(),
            der: p.der,
        });
    }
    Ok(out)
}

/// Refresh bundle `b` now and record the outcome; the number of anchors loaded, or why
/// nothing changed.
pub async fn refresh<S: Store>(
    store: &S,
    fetcher: &Fetcher,
    b: &Bundle,
    now: i64,
    profile: &Profile,
) -> Result<usize, String> {
    match fetch_verified(fetcher, b, now, profile).await {
        Ok(anchors) => {
            let n = anchors.len();
            let next = now + b.spec.refresh_secs.max(60);
            store
                .bundle_loaded(b.id, anchors, now, next)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(bundle = b.id, url = %b.spec.url, anchors = n, "trust bundle loaded");
            Ok(n)
        }
        Err(why) => {
            let next = now + b.spec.refresh_secs.clamp(60, RETRY_SECS);
            if let Err(e) = store.bundle_failed(b.id, &why, next).await {
                tracing::error!(error = %e, "cannot record a trust bundle failure");
            }
            tracing::warn!(bundle = b.id, url = %b.spec.url, error = %why,
                "trust bundle not loaded; its previous anchors stay");
            Err(why)
        }
    }
}

/// Refresh every bundle due at `now`; how many loaded a new version.
pub async fn refresh_due<S: Store>(
    store: &S,
    fetcher: &Fetcher,
    now: i64,
    profile: &Profile,
) -> usize {
    let bundles = match store.bundles().await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot list trust bundles");
            return 0;
        }
    };
    let mut loaded = 0;
    for b in bundles.iter().filter(|b| b.next_fetch <= now) {
        if refresh(store, fetcher, b, now, profile).await.is_ok() {
            loaded += 1;
        }
    }
    loaded
}
