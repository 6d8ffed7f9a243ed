//! A backup taken while the store is in use holds the database as one snapshot and exactly
//! the body files its rows name, and opens as a store that reads every body back.

use super::bodies::body;
use super::{fresh, message};
use crate::sqlite::blobs::IN_FILES;
use crate::sqlite::SqliteStore;
use crate::Store;

#[tokio::test]
async fn a_backup_opens_with_every_body_and_only_the_files_its_rows_name() {
    let (dir, store) = fresh();
    let (small, big) = (body(100), body(IN_FILES + 5));
    let mut ids = Vec::new();
    for (i, b) in [&small, &big, &big].into_iter().enumerate() {
        let mut msg = message(&format!("<b{i}@a.example>"), &["bob@b.example"], 100);
        msg.body = b.clone();
        ids.push(store.enqueue(msg).await.unwrap());
    }
    // A file no row names (staged for a job not yet run) is not copied.
    let bodies = dir.path().join("hisp.db-bodies");
    std::fs::write(bodies.join("stage-0123456789abcdef"), b"staged").unwrap();

    let out = dir.path().join("backup");
    let report = store.backup(&out).unwrap();
    assert_eq!(report.files, 2, "{report:?}");
    assert!(report.missing.is_empty());
    assert_eq!(report.file_bytes, 2 * big.len() as u64);
    let mut copied: Vec<_> = std::fs::read_dir(out.join("hisp.db-bodies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    copied.sort();
    assert!(
        copied.iter().all(|f| f.starts_with("message_bodies-")),
        "{copied:?}"
    );

    // The live store goes on; the backup is a store of its own.
    store
        .enqueue(message("<later@a.example>", &["bob@b.example"], 200))
        .await
        .unwrap();
    let restored = SqliteStore::open(&out.join("hisp.db")).unwrap();
    for (id, want) in ids.iter().zip([&small, &big, &big]) {
        assert_eq!(&restored.outbound_body(id).await.unwrap().unwrap(), want);
    }
    assert_eq!(restored.list_outbound(10).await.unwrap().len(), 3);

    // Into a directory that is not empty: refused by name.
    let err = store.backup(&out).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}
