//! DSN tests: the interop vectors (each MANIFEST field), a two-recipient round trip, the
//! Direct correlation rules and robustness on broken input.

use super::*;
use crate::mime::Entity;
use crate::notification::tests::{
    assert_crlf_and_998, DSN_JAVARI, DSN_NHIND, DSN_VECTORS, MDN_PROCESSED,
};
use crate::notification::{
    is_notification, NotificationError, NotificationKind, NotificationRequest,
};

const ORIGINAL_ID: &str = "<9501051053.aa04167@IETF.CNR I.Reston.VA.US>";

fn failed(addr: &str) -> RecipientStatus {
    RecipientStatus {
        final_recipient: TypedAddress::rfc822(addr),
        original_recipient: Some(TypedAddress::rfc822(addr)),
        action: Action::Failed,
        status: EnhancedStatus::new(5, 1, 1).unwrap(),
        diagnostic_code: Some("smtp; 550 5.1.1 no such user".into()),
        remote_mta: Some("dns; mx.b.example".into()),
        last_attempt_date: Some("Tue, 2 Jan 2024 09:59:00 +0000".into()),
    }
}

fn spec() -> DsnSpec {
    DsnSpec {
        reporting_mta: "direct.a.example".into(),
        original_envelope_id: Some("QQ314159".into()),
        arrival_date: Some("Tue, 2 Jan 2024 09:00:00 +0000".into()),
        original_message_id: "<orig-1@direct.a.example>".into(),
        original_subject: Some("Referral".into()),
        from: "postmaster@direct.a.example".into(),
        to: "alice@direct.a.example".into(),
        message_id: "<dsn-1@direct.a.example>".into(),
        date: "Tue, 2 Jan 2024 10:00:00 +0000".into(),
        recipients: vec![
            failed("bob@direct.b.example"),
            RecipientStatus {
                action: Action::Delayed,
                status: EnhancedStatus::new(4, 4, 7).unwrap(),
                diagnostic_code: None,
                remote_mta: None,
                last_attempt_date: None,
                original_recipient: None,
                ..failed("carol@direct.c.example")
            },
        ],
        original_headers: Some(
            b"From: alice@direct.a.example\nMessage-ID: <orig-1@direct.a.example>\n\nbody".to_vec(),
        ),
        text: None,
    }
}

#[test]
fn interop_dsn_failed_javari() {
    let d = parse_dsn(DSN_JAVARI).unwrap();
    assert_eq!(d.recipients.len(), 1);
    let r = &d.recipients[0];
    assert_eq!(r.action, Action::Failed);
    assert_eq!(r.status.to_string(), "5.0.0");
    assert_eq!(r.final_recipient.to_string(), "rfc822;Carol@Ivory.EDU");
    assert_eq!(
        r.original_recipient.as_ref().unwrap().to_string(),
        "rfc822;Carol@Ivory.EDU"
    );
    assert_eq!(
        r.diagnostic_code.as_deref(),
        Some("smtp; 550 error - no such recipient")
    );
    assert_eq!(d.reporting_mta.as_deref(), Some("dns; Example.ORG"));
    assert_eq!(d.original_envelope_id.as_deref(), Some("QQ314159"));
    assert_eq!(
        d.original_message_id_field.as_deref(),
        Some("X-CERN-Original-Message-Id")
    );
    assert_eq!(d.original_message_id.as_deref(), Some(ORIGINAL_ID));
    assert_eq!(d.correlation_id(), Some(ORIGINAL_ID));
    assert_eq!(d.from.as_deref(), Some("externUser1@starugh-stateline.com"));
    assert_eq!(d.to, ["User1@Cerner.com"]);
    assert_eq!(
        d.message_id.as_deref(),
        Some("0c796d0e-4c76-43e8-be40-2cd5e30c1006")
    );
}

#[test]
fn interop_dsn_failed_nhind() {
    let d = parse_dsn(DSN_NHIND).unwrap();
    let r = &d.recipients[0];
    assert_eq!(
        (r.action, r.status.to_string().as_str()),
        (Action::Failed, "5.0.0")
    );
    assert_eq!(r.final_recipient.to_string(), "rfc822;Carol@Ivory.EDU");
    assert_eq!(
        d.original_message_id_field.as_deref(),
        Some("X-Original-Message-Id")
    );
    assert_eq!(d.original_message_id.as_deref(), Some(ORIGINAL_ID));
    assert_eq!(d.from.as_deref(), Some("postmaster@mail.Example.COM"));
    assert_eq!(d.to, ["Alice@Example.ORG"]);
}

#[test]
fn rfc3464_2_3_per_recipient_fields() {
    let a = |v| Action::parse(v);
    assert_eq!(a("FAILED"), Some(Action::Failed));
    assert_eq!(a(" delayed (retrying)"), Some(Action::Delayed));
    assert_eq!(a("bounced"), None);
    assert_eq!(a(""), None);
    let s = |v| EnhancedStatus::parse(v);
    assert_eq!(s("5.1.1 (unknown user)"), EnhancedStatus::new(5, 1, 1));
    assert_eq!(s("4.4.7"), EnhancedStatus::new(4, 4, 7));
    assert_eq!(s("2.0.0"), EnhancedStatus::new(2, 0, 0));
    for bad in [
        "", "5.1", "5.1.1.1", "3.0.0", "5.1000.0", "5..1", "x.y.z", "550",
    ] {
        assert_eq!(s(bad), None, "{bad:?}");
    }
    assert!(EnhancedStatus::new(5, 7, 1).unwrap().is_permanent());
    assert_eq!(EnhancedStatus::new(6, 0, 0), None);
}

#[test]
fn rfc3464_2_two_recipients_round_trip() {
    let s = spec();
    let bytes = build_dsn(&s);
    assert_crlf_and_998(&bytes);
    let d = parse_dsn(&bytes).unwrap();
    assert_eq!(d.recipients, s.recipients);
    assert_eq!(d.reporting_mta.as_deref(), Some("dns; direct.a.example"));
    assert_eq!(d.original_envelope_id.as_deref(), Some("QQ314159"));
    assert_eq!(
        d.arrival_date.as_deref(),
        Some("Tue, 2 Jan 2024 09:00:00 +0000")
    );
    assert_eq!(
        d.original_message_id.as_deref(),
        Some("<orig-1@direct.a.example>")
    );
    assert_eq!(
        d.original_message_id_field.as_deref(),
        Some("X-Original-Message-ID")
    );
    assert_eq!(d.in_reply_to.as_deref(), Some("<orig-1@direct.a.example>"));
    assert_eq!(
        d.returned_message_id.as_deref(),
        Some("<orig-1@direct.a.example>")
    );
    assert_eq!(d.from.as_deref(), Some("postmaster@direct.a.example"));
    assert_eq!(d.to, ["alice@direct.a.example"]);
    assert_eq!(d.message_id.as_deref(), Some("<dsn-1@direct.a.example>"));
    assert_eq!(d.subject.as_deref(), Some("Delivery Status Notification"));
    let top = Entity::parse(&bytes);
    assert_eq!(
        top.content_type().param("report-type"),
        Some("delivery-status")
    );
    assert!(top.headers.get("Disposition-Notification-To").is_none());
    assert!(is_notification(&bytes));
    assert_eq!(NotificationRequest::read(&bytes), None);
    assert_eq!(
        crate::notification::notification_kind(&bytes),
        Some(NotificationKind::Dsn)
    );
}

#[test]
fn direct_ig_3_3_failure_dsn_minimal() {
    let mut s = spec();
    s.recipients.truncate(1);
    s.original_envelope_id = None;
    s.arrival_date = None;
    s.original_headers = None;
    s.reporting_mta = "dns; direct.a.example".into();
    let bytes = build_dsn(&s);
    assert_crlf_and_998(&bytes);
    let d = parse_dsn(&bytes).unwrap();
    assert_eq!(
        d.subject.as_deref(),
        Some("Delivery Status Notification (Failure)")
    );
    assert_eq!(d.reporting_mta.as_deref(), Some("dns; direct.a.example"));
    assert_eq!(d.returned_message_id, None);
    assert_eq!(d.correlation_id(), Some("<orig-1@direct.a.example>"));
}

#[test]
fn rfc3464_correlation_fallbacks() {
    // Without a correlation field: In-Reply-To, then the returned headers.
    let base = String::from_utf8_lossy(DSN_NHIND).replace("X-Original-Message-Id", "X-Other");
    let d = parse_dsn(base.as_bytes()).unwrap();
    assert_eq!(
        (d.original_message_id.as_deref(), d.correlation_id()),
        (None, None)
    );
    let with_irt = base.replacen("MIME-Version", "In-Reply-To: <irt@x>\nMIME-Version", 1);
    assert_eq!(
        parse_dsn(with_irt.as_bytes()).unwrap().correlation_id(),
        Some("<irt@x>")
    );
    let returned = base.replacen(
        "--abcde--",
        "--abcde\nContent-Type: message/rfc822\n\nMessage-ID: <ret@x>\nSubject: s\n\nbody\n--abcde--",
        1,
    );
    assert_eq!(
        parse_dsn(returned.as_bytes()).unwrap().correlation_id(),
        Some("<ret@x>")
    );
}

#[test]
fn rfc5322_2_1_1_hostile_values_stay_in_bounds() {
    let mut s = spec();
    s.recipients[0].diagnostic_code =
        Some(format!("smtp; 550 {}\r\nStatus: 2.0.0", "d".repeat(2500)));
    s.original_message_id = format!("<{}@x>", "m".repeat(1200));
    s.original_headers = Some(format!("Subject: {}\r\nX-B: ü\r\n", "h".repeat(3000)).into_bytes());
    s.text = Some("Grüße".into());
    let bytes = build_dsn(&s);
    assert_crlf_and_998(&bytes);
    let d = parse_dsn(&bytes).unwrap();
    assert_eq!(d.recipients.len(), 2);
    assert_eq!(d.recipients[0].status.to_string(), "5.1.1");
}

#[test]
fn rfc3464_2_errors_on_broken_input() {
    assert_eq!(parse_dsn(b""), Err(NotificationError::Empty));
    assert!(matches!(
        parse_dsn(b"garbage"),
        Err(NotificationError::NotAReport { .. })
    ));
    assert!(matches!(
        parse_dsn(MDN_PROCESSED),
        Err(NotificationError::WrongReportType { .. })
    ));
    let src = String::from_utf8_lossy(DSN_JAVARI);
    let no_rcpt = src
        .replace("Final-Recipient", "X-F")
        .replace("Original-Recipient", "X-O")
        .replace("Action", "X-A")
        .replace("Status:", "X-S:");
    assert_eq!(
        parse_dsn(no_rcpt.as_bytes()),
        Err(NotificationError::NoRecipients)
    );
    let no_action = src.replace("Action: failed", "X-A: failed");
    assert_eq!(
        parse_dsn(no_action.as_bytes()),
        Err(NotificationError::MissingField { field: "Action" })
    );
    let bad_status = src.replace("Status: 5.0.0", "Status: five");
    assert!(matches!(
        parse_dsn(bad_status.as_bytes()),
        Err(NotificationError::MalformedField {
            field: "Status",
            ..
        })
    ));
    let bad_action = src.replace("Action: failed", "Action: bounced");
    assert!(matches!(
        parse_dsn(bad_action.as_bytes()),
        Err(NotificationError::MalformedField {
            field: "Action",
            ..
        })
    ));
}

#[test]
fn rfc3464_truncated_vectors_never_panic() {
    for v in DSN_VECTORS {
        for end in 0..v.len() {
            let _ = parse_dsn(&v[..end]);
            let _ = is_notification(&v[..end]);
        }
    }
    let built = build_dsn(&spec());
    for end in 0..built.len() {
        let _ = parse_dsn(&built[..end]);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn rfc3464_arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let mut m = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n".to_vec();
        m.extend_from_slice(&tail);
        let _ = parse_dsn(&m);
        let _ = parse_dsn(&tail);
    }
}
