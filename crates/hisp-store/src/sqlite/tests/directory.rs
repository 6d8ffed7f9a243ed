//! Users, anchors, routes and static certificates: round trips, case folding, duplicate
//! detection, and the directory version the daemon polls.

use super::fresh;
use crate::{NewAnchor, NewStaticCert, Store};

fn anchor(domain: Option<&str>, sha256: &str) -> NewAnchor {
    NewAnchor {
        direction: None,
        domain: domain.map(str::to_owned),
        der: vec![0x30, 0x82, 0x01, 0x00],
        sha256: sha256.into(),
        subject: "CN=Test Anchor".into(),
    }
}

#[tokio::test]
async fn users_round_trip_case_insensitive_and_bump_version() {
    let (_dir, store) = fresh();
    assert_eq!(store.directory_version().await.unwrap(), 0);
    assert_eq!(
        store.user_password_hash("nobody@a.example").await.unwrap(),
        None
    );

    store
        .set_user("Dr.Bob@B.example", "$argon2id$one", 10)
        .await
        .unwrap();
    store
        .set_user("dr.alice@a.example", "$argon2id$two", 11)
        .await
        .unwrap();
    assert_eq!(store.directory_version().await.unwrap(), 2);
    assert_eq!(
        store
            .user_password_hash("DR.BOB@b.EXAMPLE")
            .await
            .unwrap()
            .as_deref(),
        Some("$argon2id$one")
    );
    assert_eq!(
        store.users().await.unwrap(),
        vec![
            "dr.alice@a.example".to_string(),
            "dr.bob@b.example".to_string()
        ]
    );

    // Replacing the hash keeps one user and bumps again.
    store
        .set_user("dr.bob@b.example", "$argon2id$three", 12)
        .await
        .unwrap();
    assert_eq!(store.users().await.unwrap().len(), 2);
    assert_eq!(
        store
            .user_password_hash("dr.bob@b.example")
            .await
            .unwrap()
            .as_deref(),
        Some("$argon2id$three")
    );
    assert_eq!(store.directory_version().await.unwrap(), 3);
}

#[tokio::test]
async fn anchors_dedupe_per_domain_and_remove_by_fingerprint() {
    let (_dir, store) = fresh();
    assert!(store.add_anchor(anchor(None, "aa11"), 1).await.unwrap());
    assert!(
        !store.add_anchor(anchor(None, "AA11"), 2).await.unwrap(),
        "same global anchor"
    );
    assert!(store
        .add_anchor(anchor(Some("Direct.A.example"), "aa11"), 3)
        .await
        .unwrap());
    assert!(!store
        .add_anchor(anchor(Some("direct.a.example"), "aa11"), 4)
        .await
        .unwrap());
    assert!(store
        .add_anchor(anchor(Some("direct.a.example"), "bb22"), 5)
        .await
        .unwrap());
    assert_eq!(
        store.directory_version().await.unwrap(),
        3,
        "only additions bump"
    );

    let anchors = store.anchors().await.unwrap();
    assert_eq!(anchors.len(), 3);
    assert_eq!(anchors[0].domain, None);
    assert_eq!(anchors[0].added, 1);
    assert_eq!(anchors[1].domain.as_deref(), Some("direct.a.example"));
    assert_eq!(anchors[1].der, vec![0x30, 0x82, 0x01, 0x00]);
    assert_eq!(anchors[1].subject, "CN=Test Anchor");

    assert_eq!(store.remove_anchor("aa11").await.unwrap(), 2);
    assert_eq!(store.directory_version().await.unwrap(), 4);
    assert_eq!(store.remove_anchor("aa11").await.unwrap(), 0);
    assert_eq!(
        store.directory_version().await.unwrap(),
        4,
        "nothing removed, no bump"
    );
    let left = store.anchors().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sha256, "bb22");
}

#[tokio::test]
async fn routes_replace_and_remove() {
    let (_dir, store) = fresh();
    store
        .set_route("B.example", "127.0.0.1:2525", 1)
        .await
        .unwrap();
    store
        .set_route("b.example", "127.0.0.1:2526", 2)
        .await
        .unwrap();
    store
        .set_route("a.example", "mx.a.example:25", 3)
        .await
        .unwrap();
    assert_eq!(store.directory_version().await.unwrap(), 3);
    let routes = store.routes().await.unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(
        (routes[0].domain.as_str(), routes[0].target.as_str()),
        ("a.example", "mx.a.example:25")
    );
    assert_eq!(
        (routes[1].domain.as_str(), routes[1].target.as_str()),
        ("b.example", "127.0.0.1:2526")
    );

    assert!(store.remove_route("B.EXAMPLE").await.unwrap());
    assert!(!store.remove_route("b.example").await.unwrap());
    assert_eq!(store.directory_version().await.unwrap(), 4);
    assert_eq!(store.routes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn static_certs_dedupe_per_binding() {
    let (_dir, store) = fresh();
    let cert = |bound_to: &str| NewStaticCert {
        bound_to: bound_to.into(),
        der: vec![1, 2, 3],
        sha256: "cc33".into(),
    };
    assert!(store.add_cert(cert("Dr.Bob@b.example"), 1).await.unwrap());
    assert!(!store.add_cert(cert("dr.bob@b.example"), 2).await.unwrap());
    assert!(store.add_cert(cert("b.example"), 3).await.unwrap());
    assert_eq!(store.directory_version().await.unwrap(), 2);
    let certs = store.certs().await.unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].bound_to, "dr.bob@b.example");
    assert_eq!(certs[0].der, vec![1, 2, 3]);
    assert_eq!(certs[1].bound_to, "b.example");
}

/// Schema v4: an anchor's direction (incoming, outgoing, or both as NULL) round-trips, and
/// a bundle's direction reaches its anchors.
#[tokio::test]
async fn anchor_and_bundle_directions_round_trip() {
    use crate::{Direction, NewBundle};
    let (_dir, store) = fresh();
    let mut a = anchor(None, "aa");
    a.direction = Some(Direction::Incoming);
    assert!(store.add_anchor(a, 1).await.unwrap());
    assert!(store.add_anchor(anchor(None, "bb"), 1).await.unwrap());
    let got = store.anchors().await.unwrap();
    assert_eq!(got[0].direction, Some(Direction::Incoming));
    assert_eq!(got[1].direction, None);
    let spec = NewBundle {
        url: "file:///b.p7b".into(),
        domain: None,
        direction: Some(Direction::Outgoing),
        signer_der: None,
        refresh_secs: 3600,
    };
    let id = store.add_bundle(spec, 1).await.unwrap();
    store
        .bundle_loaded(id, vec![anchor(None, "cc")], 2, 3)
        .await
        .unwrap();
    let b = store.bundles().await.unwrap();
    assert_eq!(b[0].anchors[0].direction, Some(Direction::Outgoing));
    assert!(
        Direction::Outgoing.admits(None) && !Direction::Incoming.admits(Some(Direction::Outgoing))
    );
}
