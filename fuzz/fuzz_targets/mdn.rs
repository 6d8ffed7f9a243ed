//! `mdn`: reading MDNs (RFC 8098, RFC 6522 multipart/report) and the notification request
//! fields of any message (RFC 8098 §2, Direct IG §3) from arbitrary bytes. Nothing may panic;
//! a message that is a notification never asks for one; and what we read, we can write and
//! read back: an MDN built from a parsed one parses again with the same disposition.
#![no_main]

use hisp_direct::mdn::{build_mdn, parse_mdn, MdnSpec};
use hisp_direct::mime::Entity;
use hisp_direct::notification::{is_notification, notification_kind, NotificationRequest};
use libfuzzer_sys::fuzz_target;

const RECIPIENT: &str = "receiver@fuzz.hisp.example";

/// An address that survives writing unchanged: printable ASCII, nothing with a meaning in
/// a header field (brackets, separators, quotes, comments).
fn plain_address(a: &str) -> bool {
    a.contains('@')
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !"<>;,()\"\\[]:".contains(c))
}

fuzz_target!(|data: &[u8]| {
    let kind = notification_kind(data);
    assert_eq!(is_notification(data), kind.is_some());
    let request = NotificationRequest::read(data);
    // A notification never asks for one (reports of other kinds and automatic mail are
    // not answered either, so the converse does not hold).
    assert!(
        kind.is_none() || request.is_none(),
        "a notification must never ask for one"
    );
    if let Some(req) = &request {
        // Writing the request and reading it back gives the same request.
        if req
            .disposition_notification_to
            .as_deref()
            .is_none_or(plain_address)
        {
            let fields = req.to_header_fields();
            let back = NotificationRequest::from_headers(&Entity::parse(&fields).headers);
            assert_eq!(&back, req);
        }
    }

    let Ok(mdn) = parse_mdn(data) else {
        return;
    };
    let _ = mdn.correlation_id();
    let _ = mdn.disposition.is_negative();
    let final_recipient = if plain_address(&mdn.final_recipient.address) {
        mdn.final_recipient.address.clone()
    } else {
        RECIPIENT.to_string()
    };
    let spec = MdnSpec {
        reporting_ua_name: "fuzz.hisp.example".into(),
        reporting_ua_product: mdn.reporting_ua.clone(),
        from: RECIPIENT.into(),
        to: "sender@fuzz.hisp.example".into(),
        message_id: "<mdn.1@fuzz.hisp.example>".into(),
        date: "Sun, 15 Jun 2025 12:00:00 +0000".into(),
        original_message_id: mdn
            .correlation_id()
            .unwrap_or("<orig.1@fuzz.hisp.example>")
            .to_string(),
        original_subject: mdn.subject.clone(),
        original_recipient: None,
        final_recipient: final_recipient.clone(),
        disposition: mdn.disposition.clone(),
        error: mdn.error.clone(),
        failure: mdn.failure.clone(),
        final_destination_delivery: mdn.final_destination_delivery,
        text: None,
    };
    let built = build_mdn(&spec);
    let back = match parse_mdn(&built) {
        Ok(back) => back,
        Err(e) => panic!(
            "an MDN we built does not parse: {e}\n{}",
            String::from_utf8_lossy(&built)
        ),
    };
    assert!(is_notification(&built));
    assert_eq!(NotificationRequest::read(&built), None);
    assert_eq!(back.final_recipient.address, final_recipient);
    assert_eq!(
        back.final_destination_delivery,
        spec.final_destination_delivery
    );
    // Disposition values are written as US-ASCII text; compare when that loses nothing.
    if spec
        .disposition
        .to_string()
        .chars()
        .all(|c| c.is_ascii_graphic())
    {
        assert_eq!(back.disposition, spec.disposition);
    }
});
