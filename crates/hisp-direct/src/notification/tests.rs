//! Tests of the shared notification rules, plus the interop vectors and output checks the
//! MDN and DSN tests reuse.

use super::*;

macro_rules! vector {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/interop/",
            $path
        ))
        .as_slice()
    };
}

/// mdn-processed (CRLF, no close-delimiter, no MIME-Version).
pub(crate) const MDN_PROCESSED: &[u8] = vector!("javari/messages/MDNMessage.txt");
/// mdn-processed-display-names (LF, quoted display names with commas).
pub(crate) const MDN_DISPLAY_NAMES: &[u8] =
    vector!("javari/messages/MDNMessageNonCanonicalized.txt");
/// mdn-dispatched (LF).
pub(crate) const MDN_DISPATCHED: &[u8] = vector!("nhind/messages/MDNDispatchedMessage.txt");
/// mdn-dispatched-final-destination (LF, no Original-Message-ID, no final newline).
pub(crate) const MDN_FINAL_DESTINATION: &[u8] =
    vector!("nhind/messages/MDNDispatchedTimeAndReliable.txt");
/// dsn-failed-javari (CRLF, X-CERN-Original-Message-Id).
pub(crate) const DSN_JAVARI: &[u8] = vector!("javari/messages/DSNMessage.txt");
/// dsn-failed-nhind (LF, X-Original-Message-Id).
pub(crate) const DSN_NHIND: &[u8] = vector!("nhind/messages/DSNMessage.txt");

pub(crate) const MDN_VECTORS: [&[u8]; 4] = [
    MDN_PROCESSED,
    MDN_DISPLAY_NAMES,
    MDN_DISPATCHED,
    MDN_FINAL_DESTINATION,
];
pub(crate) const DSN_VECTORS: [&[u8]; 2] = [DSN_JAVARI, DSN_NHIND];

/// RFC 5322 §2.1.1 / §2.3: every line ends in CRLF (no bare CR or LF) and is at most 998
/// octets long.
pub(crate) fn assert_crlf_and_998(msg: &[u8]) {
    assert!(msg.ends_with(b"\r\n"), "message must end in CRLF");
    for (i, b) in msg.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}"),
            b'\r' => assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            _ => {}
        }
    }
    for (n, line) in msg.split(|b| *b == b'\n').enumerate() {
        let len = line.len().saturating_sub(1); // the CR
        assert!(len <= write::MAX_LINE, "line {n} is {len} octets");
    }
}

const PLAIN: &[u8] = b"From: Dr. Alice <alice@direct.a.example>\r\nTo: bob@direct.b.example\r\n\
Subject: Referral\r\nMessage-ID: <1@a.example>\r\nDisposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n\
Disposition-Notification-To: \"Alice, Dr.\" <alice@direct.a.example>\r\n\r\nHello\r\n";

#[test]
fn direct_ig_no_mdn_for_mdn() {
    for v in MDN_VECTORS {
        assert_eq!(notification_kind(v), Some(NotificationKind::Mdn));
        assert!(is_notification(v));
        assert_eq!(
            NotificationRequest::read(v),
            None,
            "an MDN is never answered"
        );
    }
    for v in DSN_VECTORS {
        assert_eq!(notification_kind(v), Some(NotificationKind::Dsn));
        assert_eq!(
            NotificationRequest::read(v),
            None,
            "a DSN is never answered"
        );
    }
    assert!(!is_notification(PLAIN));
    assert!(NotificationRequest::read(PLAIN).is_some());
    // Other report types (RFC 5965 abuse reports, say) are not notifications.
    let arf = b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    assert!(!is_notification(arf));
    assert_eq!(
        NotificationRequest::read(arf),
        None,
        "no report is answered"
    );
    let auto = b"Auto-Submitted: auto-replied\r\nFrom: a@b\r\n\r\nx";
    assert_eq!(
        NotificationRequest::read(auto),
        None,
        "RFC 3834: nothing automatic is answered"
    );
    let x_other =
        String::from_utf8_lossy(MDN_VECTORS[0]).replacen("disposition-notification", "x-other", 1);
    assert_eq!(
        notification_kind(x_other.as_bytes()),
        Some(NotificationKind::Mdn)
    );
    assert!(!is_notification(b""));
    assert!(!is_notification(
        b"Content-Type: multipart/report\r\n\r\nno boundary"
    ));
}

#[test]
fn rfc6522_3_report_type_missing_is_read_from_parts() {
    let m = b"Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\
Content-Type: Message/Delivery-Status\r\n\r\nReporting-MTA: dns; a\r\n--b--\r\n";
    assert_eq!(notification_kind(m), Some(NotificationKind::Dsn));
    let global = b"Content-Type: multipart/report; report-type=global-disposition-notification; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    assert_eq!(notification_kind(global), Some(NotificationKind::Mdn));
}

#[test]
fn direct_ig_3_1_final_destination_request() {
    let r = NotificationRequest::read(PLAIN).unwrap();
    assert_eq!(
        r.disposition_notification_to.as_deref(),
        Some("alice@direct.a.example")
    );
    assert!(r.final_destination_delivery);
    let asks = |v: &str| options_ask_final_destination(v);
    assert!(asks("x-direct-final-destination-delivery=optional,true"));
    assert!(asks(
        "  X-DIRECT-FINAL-DESTINATION-DELIVERY = Optional , TRUE "
    ));
    assert!(asks("signed-receipt-protocol=optional,pkcs7-signature; X-DIRECT-FINAL-DESTINATION-DELIVERY=required,true"));
    assert!(asks(
        "X-DIRECT-FINAL-DESTINATION-DELIVERY=\"optional\",\"true\""
    ));
    assert!(asks("X-DIRECT-FINAL-DESTINATION-DELIVERY"));
    assert!(!asks("X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,false"));
    assert!(!asks(
        "X-DIRECT-FINAL-DESTINATION-DELIVERY-NOT=optional,true"
    ));
    assert!(!asks(""));
    let none = NotificationRequest::read(b"From: a@b\r\n\r\nx").unwrap();
    assert_eq!(none, NotificationRequest::default());
}

#[test]
fn rfc8098_2_request_fields_round_trip() {
    let req = NotificationRequest {
        disposition_notification_to: Some("alice@direct.a.example".into()),
        final_destination_delivery: true,
    };
    let mut msg = req.to_header_fields();
    assert_crlf_and_998(&msg);
    msg.extend_from_slice(b"From: alice@direct.a.example\r\n\r\nbody\r\n");
    assert_eq!(NotificationRequest::read(&msg), Some(req));
    assert!(NotificationRequest::default().to_header_fields().is_empty());
}

#[test]
fn rfc8098_3_2_3_typed_addresses() {
    let t = TypedAddress::parse("rfc822;Carol@Ivory.EDU");
    assert_eq!(
        (t.address_type.as_deref(), t.address.as_str()),
        (Some("rfc822"), "Carol@Ivory.EDU")
    );
    assert_eq!(t.to_string(), "rfc822;Carol@Ivory.EDU");
    let t = TypedAddress::parse(" RFC822 ;  <bob@b.example> ");
    assert_eq!(
        (t.address_type.as_deref(), t.address.as_str()),
        (Some("RFC822"), "bob@b.example")
    );
    // The Java RI leaves the type out.
    let t = TypedAddress::parse("externUser1@starugh-stateline.com");
    assert_eq!(
        (t.address_type, t.address.as_str()),
        (None, "externUser1@starugh-stateline.com")
    );
    assert_eq!(
        TypedAddress::parse("\"a;b\"@c.example").address,
        "\"a;b\"@c.example"
    );
    assert_eq!(TypedAddress::rfc822(" x@y ").to_string(), "rfc822;x@y");
}

#[test]
fn direct_ig_correlation_ignores_angle_brackets() {
    assert!(same_message_id("<a@b>", " a@b "));
    assert!(same_message_id(
        "<9501051053.aa04167@IETF.CNR I.Reston.VA.US>",
        "<9501051053.aa04167@IETF.CNR I.Reston.VA.US>"
    ));
    assert!(!same_message_id("<a@b>", "<A@b>"));
    assert!(!same_message_id("<>", ""));
}

#[test]
fn rfc6522_errors_not_panics() {
    assert_eq!(open_report(b"").err(), Some(NotificationError::Empty));
    assert_eq!(open_report(b" \r\n ").err(), Some(NotificationError::Empty));
    assert!(matches!(
        open_report(b"From: a@b\r\n\r\nhi"),
        Err(NotificationError::NotAReport { .. })
    ));
    let no_boundary = b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nx";
    assert!(matches!(
        open_report(no_boundary),
        Err(NotificationError::Mime { .. })
    ));
    let no_parts = b"Content-Type: multipart/report; boundary=zz\r\n\r\nnothing";
    assert!(matches!(
        open_report(no_parts),
        Err(NotificationError::Mime {
            source: MimeError::NoParts { .. },
            ..
        })
    ));
}
