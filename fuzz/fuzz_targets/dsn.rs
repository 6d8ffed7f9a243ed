//! `dsn`: reading DSNs (RFC 3464 inside RFC 6522 multipart/report) from arbitrary bytes.
//! Nothing may panic; a parsed DSN has at least one recipient and is a notification that
//! asks for none; and a DSN built from what was read (its recipient blocks, with the input's
//! header block as the returned headers) parses again with the same recipients.
#![no_main]

use hisp_direct::dsn::{build_dsn, parse_dsn, DsnSpec, RecipientStatus};
use hisp_direct::notification::{is_notification, NotificationRequest, TypedAddress};
use libfuzzer_sys::fuzz_target;

const SENDER: &str = "sender@fuzz.hisp.example";

/// An address that survives writing unchanged (see the `mdn` target).
fn plain_address(a: &str) -> bool {
    a.contains('@')
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !"<>;,()\"\\[]:".contains(c))
}

fn plain(t: &TypedAddress, fallback: &str) -> TypedAddress {
    if plain_address(&t.address) {
        TypedAddress::rfc822(&t.address)
    } else {
        TypedAddress::rfc822(fallback)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = is_notification(data);
    let Ok(dsn) = parse_dsn(data) else {
        return;
    };
    assert!(!dsn.recipients.is_empty());
    let _ = dsn.correlation_id();
    for r in &dsn.recipients {
        let _ = r.status.is_permanent();
        let _ = r.status.to_string();
    }

    let recipients: Vec<RecipientStatus> = dsn
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| RecipientStatus {
            final_recipient: plain(&r.final_recipient, &format!("r{i}@fuzz.hisp.example")),
            original_recipient: r
                .original_recipient
                .as_ref()
                .map(|o| plain(o, &format!("o{i}@fuzz.hisp.example"))),
            ..r.clone()
        })
        .collect();
    let spec = DsnSpec {
        reporting_mta: dsn
            .reporting_mta
            .clone()
            .unwrap_or_else(|| "mx.fuzz.hisp.example".into()),
        original_envelope_id: dsn.original_envelope_id.clone(),
        arrival_date: dsn.arrival_date.clone(),
        original_message_id: dsn
            .correlation_id()
            .unwrap_or("<orig.1@fuzz.hisp.example>")
            .to_string(),
        original_subject: dsn.subject.clone(),
        from: "postmaster@fuzz.hisp.example".into(),
        to: SENDER.into(),
        message_id: "<dsn.1@fuzz.hisp.example>".into(),
        date: "Sun, 15 Jun 2025 12:00:00 +0000".into(),
        recipients,
        original_headers: Some(data.to_vec()),
        text: None,
    };
    let built = build_dsn(&spec);
    let back = match parse_dsn(&built) {
        Ok(back) => back,
        Err(e) => panic!(
            "a DSN we built does not parse: {e}\n{}",
            String::from_utf8_lossy(&built)
        ),
    };
    assert!(is_notification(&built));
    assert_eq!(NotificationRequest::read(&built), None);
    assert_eq!(back.recipients.len(), spec.recipients.len());
    for (got, want) in back.recipients.iter().zip(&spec.recipients) {
        assert_eq!(got.final_recipient.address, want.final_recipient.address);
        assert_eq!(got.action, want.action);
        assert_eq!(got.status, want.status);
    }
});
