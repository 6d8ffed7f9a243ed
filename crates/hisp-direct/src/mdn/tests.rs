//! MDN tests: the interop vectors (each MANIFEST field), build → parse round trips, the
//! Direct IG rules and robustness on broken input.

use super::*;
use crate::mime::Entity;
use crate::notification::tests::{
    assert_crlf_and_998, DSN_JAVARI, MDN_DISPATCHED, MDN_DISPLAY_NAMES, MDN_FINAL_DESTINATION,
    MDN_PROCESSED, MDN_VECTORS,
};
use crate::notification::{
    is_notification, same_message_id, NotificationKind, NotificationRequest,
};

const ORIGINAL_ID: &str = "<9501051053.aa04167@IETF.CNR I.Reston.VA.US>";
const AUTO: &str = "automatic-action/MDN-sent-automatically";

fn spec(disposition: Disposition) -> MdnSpec {
    MdnSpec {
        reporting_ua_name: "direct.b.example".into(),
        reporting_ua_product: Some("Hisp 0.1".into()),
        from: "bob@direct.b.example".into(),
        to: "alice@direct.a.example".into(),
        message_id: "mdn-1@direct.b.example".into(),
        date: "Tue, 2 Jan 2024 10:00:00 +0000".into(),
        original_message_id: "<orig-1@direct.a.example>".into(),
        original_subject: Some("Referral for J. Doe".into()),
        original_recipient: None,
        final_recipient: "bob@direct.b.example".into(),
        disposition,
        error: None,
        failure: None,
        final_destination_delivery: false,
        text: None,
    }
}

#[test]
fn interop_mdn_processed() {
    let m = parse_mdn(MDN_PROCESSED).unwrap();
    assert_eq!(m.disposition.mode(), AUTO);
    assert_eq!(m.disposition.disposition_type, DispositionType::Processed);
    assert_eq!(
        m.reporting_ua.as_deref(),
        Some("starugh-stateline.com;NHIN Direct Security Agent")
    );
    assert_eq!(
        m.final_recipient.address,
        "externUser1@starugh-stateline.com"
    );
    assert_eq!(m.final_recipient.address_type, None);
    assert_eq!(m.original_message_id.as_deref(), Some(ORIGINAL_ID));
    assert_eq!(m.correlation_id(), Some(ORIGINAL_ID));
    assert_eq!(m.from.as_deref(), Some("externUser1@starugh-stateline.com"));
    assert_eq!(m.to, ["User1@Cerner.com"]);
    assert_eq!(
        m.message_id.as_deref(),
        Some("0c796d0e-4c76-43e8-be40-2cd5e30c1005")
    );
    assert_eq!(
        m.subject.as_deref(),
        Some("Processed: I-D ACTION:draft-ietf-mailext-pipeline-01.txt")
    );
    assert!(!m.final_destination_delivery);
    assert!(!m.disposition.is_negative());
}

#[test]
fn interop_mdn_processed_display_names() {
    let m = parse_mdn(MDN_DISPLAY_NAMES).unwrap();
    assert_eq!(m.disposition.disposition_type, DispositionType::Processed);
    assert_eq!(
        m.from.as_deref(),
        Some("llindsey@messaging.cernerdemos.com")
    );
    assert_eq!(m.to, ["gm2552@securehealthemail.com"]);
    assert_eq!(
        m.final_recipient.address,
        "llindsey@messaging.cernerdemos.com"
    );
    assert_eq!(m.original_message_id.as_deref(), Some(ORIGINAL_ID));
}

#[test]
fn interop_mdn_dispatched() {
    let m = parse_mdn(MDN_DISPATCHED).unwrap();
    assert_eq!(m.disposition.mode(), AUTO);
    assert_eq!(m.disposition.disposition_type, DispositionType::Dispatched);
    assert_eq!(
        m.final_recipient.address,
        "externUser1@starugh-stateline.com"
    );
    assert_eq!(m.original_message_id.as_deref(), Some(ORIGINAL_ID));
}

#[test]
fn interop_mdn_dispatched_final_destination() {
    let m = parse_mdn(MDN_FINAL_DESTINATION).unwrap();
    assert_eq!(m.disposition.disposition_type, DispositionType::Dispatched);
    assert!(m.final_destination_delivery, "present with an empty value");
    // MANIFEST: original_message_id = "" (no field); correlate via In-Reply-To.
    assert_eq!(m.original_message_id, None);
    assert_eq!(m.in_reply_to.as_deref(), Some(ORIGINAL_ID));
    assert_eq!(m.correlation_id(), Some(ORIGINAL_ID));
}

#[test]
fn rfc8098_3_2_6_disposition_field() {
    let d = Disposition::parse("automatic-action/MDN-sent-automatically;processed").unwrap();
    assert_eq!(d, Disposition::processed());
    assert_eq!(
        d.to_string(),
        "automatic-action/MDN-sent-automatically;processed"
    );
    let d = Disposition::parse(
        " Manual-Action / mdn-sent-MANUALLY ; Displayed (seen) / error , x-custom ",
    )
    .unwrap();
    assert_eq!(
        (d.action_mode, d.sending_mode),
        (ActionMode::Manual, SendingMode::Manual)
    );
    assert_eq!(d.disposition_type, DispositionType::Displayed);
    assert_eq!(
        d.modifiers,
        [
            DispositionModifier::Error,
            DispositionModifier::Extension("x-custom".into())
        ]
    );
    assert!(d.is_negative());
    assert_eq!(
        d.to_string(),
        "manual-action/MDN-sent-manually;displayed/error,x-custom"
    );
    for (v, t) in [
        ("deleted", DispositionType::Deleted),
        ("failed", DispositionType::Failed),
        ("denied", DispositionType::Denied),
    ] {
        let d = Disposition::parse(&format!("{AUTO};{v}")).unwrap();
        assert_eq!(d.disposition_type, t);
        assert_eq!(Disposition::parse(&d.to_string()).unwrap(), d);
    }
    assert_eq!(
        Disposition::parse(&format!("{AUTO};x-later"))
            .unwrap()
            .disposition_type,
        DispositionType::Extension("x-later".into())
    );
    for bad in [
        "",
        "processed",
        "automatic-action;processed",
        "robot-action/MDN-sent-automatically;processed",
        &format!("{AUTO};"),
        &format!("{AUTO};pro cessed?"),
    ] {
        assert!(
            matches!(
                Disposition::parse(bad),
                Err(NotificationError::MalformedField {
                    field: "Disposition",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn rfc8098_3_processed_round_trip() {
    let s = spec(Disposition::processed());
    let bytes = build_mdn(&s);
    assert_crlf_and_998(&bytes);
    let m = parse_mdn(&bytes).unwrap();
    assert_eq!(m.disposition, Disposition::processed());
    assert_eq!(m.from.as_deref(), Some("bob@direct.b.example"));
    assert_eq!(m.to, ["alice@direct.a.example"]);
    assert_eq!(m.message_id.as_deref(), Some("<mdn-1@direct.b.example>"));
    assert_eq!(m.subject.as_deref(), Some("Processed: Referral for J. Doe"));
    assert_eq!(
        m.reporting_ua.as_deref(),
        Some("direct.b.example; Hisp 0.1")
    );
    assert_eq!(
        m.final_recipient,
        TypedAddress::rfc822("bob@direct.b.example")
    );
    assert_eq!(
        m.original_message_id.as_deref(),
        Some("<orig-1@direct.a.example>")
    );
    assert_eq!(m.in_reply_to.as_deref(), Some("<orig-1@direct.a.example>"));
    assert!(!m.final_destination_delivery);
    assert_eq!((m.error, m.failure), (None, None));
    let top = Entity::parse(&bytes);
    assert_eq!(top.headers.get("MIME-Version").as_deref(), Some("1.0"));
    assert_eq!(
        top.headers.get("Date").as_deref(),
        Some("Tue, 2 Jan 2024 10:00:00 +0000")
    );
    assert_eq!(
        top.content_type().param("report-type"),
        Some("disposition-notification")
    );
}

#[test]
fn direct_ig_3_2_dispatched_final_destination_round_trip() {
    let mut s = spec(Disposition::dispatched());
    s.final_destination_delivery = true;
    s.original_recipient = Some("Bob@Direct.B.Example".into());
    let bytes = build_mdn(&s);
    assert_crlf_and_998(&bytes);
    let m = parse_mdn(&bytes).unwrap();
    assert_eq!(m.disposition.disposition_type, DispositionType::Dispatched);
    assert!(m.final_destination_delivery);
    assert_eq!(
        m.original_recipient,
        Some(TypedAddress::rfc822("Bob@Direct.B.Example"))
    );
    assert_eq!(
        m.subject.as_deref(),
        Some("Dispatched: Referral for J. Doe")
    );
}

#[test]
fn direct_ig_3_3_failed_round_trip() {
    let mut s = spec(Disposition {
        modifiers: vec![DispositionModifier::Error],
        ..Disposition::failed()
    });
    s.final_destination_delivery = true;
    s.error = Some("edge mailbox unavailable".into());
    s.failure = Some("delivery to the edge timed out".into());
    s.original_subject = None;
    let bytes = build_mdn(&s);
    assert_crlf_and_998(&bytes);
    let m = parse_mdn(&bytes).unwrap();
    assert_eq!(
        m.disposition.to_string(),
        "automatic-action/MDN-sent-automatically;failed/error"
    );
    assert!(m.disposition.is_negative());
    assert_eq!(m.error.as_deref(), Some("edge mailbox unavailable"));
    assert_eq!(m.failure.as_deref(), Some("delivery to the edge timed out"));
    assert_eq!(m.subject.as_deref(), Some("Failed"));
    assert!(same_message_id(
        m.correlation_id().unwrap(),
        "orig-1@direct.a.example"
    ));
}

#[test]
fn direct_ig_no_mdn_for_mdn_built() {
    let bytes = build_mdn(&spec(Disposition::processed()));
    let top = Entity::parse(&bytes);
    assert!(top.headers.get("Disposition-Notification-To").is_none());
    assert!(top
        .headers
        .get("Disposition-Notification-Options")
        .is_none());
    assert_eq!(
        crate::notification::notification_kind(&bytes),
        Some(NotificationKind::Mdn)
    );
    assert!(is_notification(&bytes));
    assert_eq!(NotificationRequest::read(&bytes), None);
    assert_eq!(
        top.headers.get("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
}

#[test]
fn rfc5322_2_1_1_hostile_values_stay_in_bounds() {
    let mut s = spec(Disposition::processed());
    s.original_subject = Some(format!(
        "Überweisung {}\r\nBcc: x@evil.example",
        "z".repeat(2000)
    ));
    s.original_message_id = format!("<{}@a.example>", "i".repeat(1500));
    s.error = Some(format!("{}\nX-Injected: 1", "e".repeat(1200)));
    s.reporting_ua_product = Some("Hisp ™".into());
    s.text = Some(format!("long {}\nline with \u{7} bell", "w".repeat(3000)));
    let bytes = build_mdn(&s);
    assert_crlf_and_998(&bytes);
    let top = Entity::parse(&bytes);
    assert!(top.headers.get("Bcc").is_none());
    assert!(top
        .headers
        .get("Subject")
        .unwrap()
        .starts_with("Processed: =?UTF-8?B?"));
    let m = parse_mdn(&bytes).unwrap();
    assert!(m.fields.get("X-Injected").is_none());
    assert_eq!(m.reporting_ua.as_deref(), Some("direct.b.example; Hisp ?"));
}

#[test]
fn rfc8098_3_1_errors_on_broken_input() {
    assert_eq!(parse_mdn(b""), Err(NotificationError::Empty));
    assert!(matches!(
        parse_mdn(b"\x00\xff garbage"),
        Err(NotificationError::NotAReport { .. })
    ));
    assert!(matches!(
        parse_mdn(DSN_JAVARI),
        Err(NotificationError::WrongReportType { .. })
    ));
    let no_disposition =
        String::from_utf8_lossy(MDN_PROCESSED).replace("Disposition:", "Xisposition:");
    assert_eq!(
        parse_mdn(no_disposition.as_bytes()),
        Err(NotificationError::MissingField {
            field: "Disposition"
        })
    );
    let no_recipient =
        String::from_utf8_lossy(MDN_PROCESSED).replace("Final-Recipient:", "X-Recipient:");
    assert_eq!(
        parse_mdn(no_recipient.as_bytes()),
        Err(NotificationError::MissingField {
            field: "Final-Recipient"
        })
    );
    let no_part = String::from_utf8_lossy(MDN_PROCESSED)
        .replace("message/disposition-notification", "text/plain");
    assert!(matches!(
        parse_mdn(no_part.as_bytes()),
        Err(NotificationError::MissingPart { .. })
    ));
}

#[test]
fn rfc8098_3_truncated_vectors_never_panic() {
    for v in MDN_VECTORS {
        for end in 0..v.len() {
            let _ = parse_mdn(&v[..end]);
            let _ = is_notification(&v[..end]);
        }
    }
    let built = build_mdn(&spec(Disposition::failed()));
    for end in 0..built.len() {
        let _ = parse_mdn(&built[..end]);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn rfc8098_3_arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let mut m = b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\n".to_vec();
        m.extend_from_slice(&tail);
        let _ = parse_mdn(&m);
        let _ = parse_mdn(&tail);
    }
}
