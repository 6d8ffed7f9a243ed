//! `hisp trust add|list|refresh|remove` on an instance made by `hisp init`, with the
//! reference implementation's unsigned provider bundle as a local file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::hisp_run as hisp;

use std::path::Path;

#[test]
fn trust_bundles_are_added_listed_refreshed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("clinic");
    let (code, _, err) = hisp(&[
        "init",
        "--domain",
        "clinic.example",
        "--dir",
        inst.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let cfg = inst.join("hisp.toml");
    let cfg = cfg.to_str().unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/interop/nhind/bundles/providerTestBundle.p7b")
        .canonicalize()
        .unwrap();
    let url = format!("file://{}", bundle.display());

    let (code, out, err) = hisp(&[
        "trust",
        "add",
        "--config",
        cfg,
        "--url",
        &url,
        "--refresh",
        "6h",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("6 anchors"), "{out}");
    let (code, out, err) = hisp(&["trust", "add", "--config", cfg, "--url", &url]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("already configured"), "{err}");

    // Unreachable: registered, not loaded, exit 1 naming the problem.
    let (code, _, err) = hisp(&[
        "trust",
        "add",
        "--config",
        cfg,
        "--url",
        "file:///nonexistent/b.p7b",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not loaded") && err.contains("nonexistent"),
        "{err}"
    );

    let (code, out, _) = hisp(&["trust", "list", "--config", cfg, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bundles = v["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 2);
    assert_eq!(bundles[0]["anchors"].as_array().unwrap().len(), 6);
    assert_eq!(bundles[0]["refresh_secs"], 21_600);
    assert!(bundles[1]["last_error"]
        .as_str()
        .unwrap()
        .contains("nonexistent"));

    let (code, out, _) = hisp(&["trust", "refresh", "--config", cfg]);
    assert_eq!(code, 1, "one of the two fails: {out}");
    assert!(out.contains("bundle 1: 6 anchors loaded"), "{out}");
    let (code, _, _) = hisp(&["trust", "remove", "--config", cfg, "2"]);
    assert_eq!(code, 0);
    let (code, out, _) = hisp(&["trust", "refresh", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = hisp(&["trust", "remove", "--config", cfg, "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("no trust bundle 9"), "{err}");
}

/// `hisp trust explain`: every check on its own line; exit 0 trusted, 6 not, with the
/// failing checks marked.
#[test]
fn trust_explain_names_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let inst = dir.path().join("clinic");
    let (code, _, err) = hisp(&[
        "init",
        "--domain",
        "clinic.example",
        "--dir",
        inst.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let cfg = inst.join("hisp.toml");
    let cert = inst.join("domain.pem");
    let (code, out, err) = hisp(&[
        "trust",
        "explain",
        "--config",
        cfg.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--address",
        "dr.bob@clinic.example",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "pass  validity",
        "pass  chain",
        "pass  binding",
        "=> trusted for dr.bob@clinic.example",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let (code, out, _) = hisp(&[
        "trust",
        "explain",
        "--config",
        cfg.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--address",
        "eve@elsewhere.example",
        "--at",
        "2001-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 6, "{out}");
    for line in [
        "FAIL  validity",
        "FAIL  chain",
        "FAIL  binding",
        "=> NOT trusted",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
}
