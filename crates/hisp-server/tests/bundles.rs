//! Trust bundles (DirectTrust form) from the reference implementation's vectors, served by a
//! real HTTP server (Python's http.server): a signed bundle verified against its pinned
//! signer at a time it was valid, a tampered copy refused with the old anchors kept, the
//! wrong signer refused, an unsigned bundle loaded, and the anchors in the directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hisp_direct::alg::Profile;
use hisp_discovery::fetch::Fetcher;
use hisp_discovery::testservers::HttpDir;
use hisp_server::bundles::refresh;
use hisp_server::directory::Directory;
use hisp_store::{NewBundle, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// 2013-06-01T00:00:00Z, when the reference bundle's signer was valid.
const AT_2013: i64 = 1_370_044_800;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/interop/nhind/bundles")
}

#[tokio::test]
async fn signed_bundle_verified_tampered_refused_old_anchors_kept_unsigned_loaded() {
    let root = tempfile::tempdir().unwrap();
    let a = instance(root.path(), ALPHA, "dr.alice", "pw").await;
    let www = tempfile::tempdir().unwrap();
    for f in ["signedbundle.p7m", "providerTestBundle.p7b"] {
        std::fs::copy(vectors().join(f), www.path().join(f)).unwrap();
    }
    let http = HttpDir::start(www.path());
    let url = |f: &str| http.url(f);
    let fetcher = Fetcher::new(Duration::from_secs(5));
    let profile = Profile::legacy();
    let signer = std::fs::read(vectors().join("bundleSigner.der")).unwrap();
    let bundle_of = |id: i64| {
        let store = a.store.clone();
        async move {
            store
                .bundles()
                .await
                .unwrap()
                .into_iter()
                .find(|b| b.id == id)
                .unwrap()
        }
    };

    // Signed, pinned signer, at a time it was valid: one anchor (serial 0A3598C44D6DAE41).
    let spec = NewBundle {
        url: url("signedbundle.p7m"),
        domain: None,
        direction: None,
        signer_der: Some(signer.clone()),
        refresh_secs: 3600,
    };
    let id = a.store.add_bundle(spec, AT_2013).await.unwrap();
    let b = bundle_of(id).await;
    assert_eq!(
        refresh(a.store.as_ref(), &fetcher, &b, AT_2013, &profile).await,
        Ok(1)
    );
    let b = bundle_of(id).await;
    let anchor = openssl::x509::X509::from_der(&b.anchors[0].der).unwrap();
    let serial = anchor
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    assert_eq!(serial, "0A3598C44D6DAE41");
    assert_eq!(b.loaded, Some(AT_2013));
    assert_eq!(b.next_fetch, AT_2013 + 3600);

    // The same URL now serves a tampered copy: refused, the anchor stays, the error is kept.
    let mut bytes = std::fs::read(vectors().join("signedbundle.p7m")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(www.path().join("signedbundle.p7m"), &bytes).unwrap();
    let later = AT_2013 + 3600;
    let err = refresh(a.store.as_ref(), &fetcher, &b, later, &profile)
        .await
        .unwrap_err();
    let b = bundle_of(id).await;
    assert_eq!(b.anchors.len(), 1, "the verified anchors stay");
    assert_eq!(b.last_error.as_deref(), Some(err.as_str()));
    assert_eq!(b.loaded, Some(AT_2013));

    // Another signer pinned: refused even untampered.
    std::fs::copy(
        vectors().join("signedbundle.p7m"),
        www.path().join("signedbundle.p7m"),
    )
    .unwrap();
    let other = NewBundle {
        url: format!("{}?other", url("signedbundle.p7m")),
        domain: None,
        direction: None,
        signer_der: Some(std::fs::read(vectors().join("sm1.direct.com-RootCA.der")).unwrap()),
        refresh_secs: 3600,
    };
    let oid = a.store.add_bundle(other, AT_2013).await.unwrap();
    let ob = bundle_of(oid).await;
    let err = refresh(a.store.as_ref(), &fetcher, &ob, AT_2013, &profile)
        .await
        .unwrap_err();
    assert!(err.contains("signer"), "{err}");
    assert!(bundle_of(oid).await.anchors.is_empty());

    // Unsigned, no signer pinned: six anchors.
    let unsigned = NewBundle {
        url: url("providerTestBundle.p7b"),
        domain: Some(ALPHA.into()),
        direction: None,
        signer_der: None,
        refresh_secs: 3600,
    };
    let uid = a.store.add_bundle(unsigned, AT_2013).await.unwrap();
    let ub = bundle_of(uid).await;
    assert_eq!(
        refresh(a.store.as_ref(), &fetcher, &ub, AT_2013, &profile).await,
        Ok(6)
    );

    // The directory trusts what the bundles carry: 1 + 6 beside the configured CA.
    let dir = Directory::load(&a.config, a.store.as_ref()).await.unwrap();
    assert_eq!(dir.domains[0].anchors.certs().len(), 1 + 1 + 6);
    assert!(a.store.remove_bundle(uid).await.unwrap());
    let dir = Directory::load(&a.config, a.store.as_ref()).await.unwrap();
    assert_eq!(dir.domains[0].anchors.certs().len(), 1 + 1);
}
