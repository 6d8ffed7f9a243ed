//! `mime_entity`: the MIME layer on arbitrary bytes (RFC 5322 headers, RFC 2045 Content-Type
//! and transfer encodings, RFC 2046 multipart, RFC 5322 §3.4 address lists). Nothing may
//! panic, every reported range must lie inside the input, and decoding what we encode
//! (base64 in 76-column lines) must give the bytes back.
#![no_main]

use hisp_direct::mime::{self, base64, multipart, ContentType, Entity, MimeError};
use libfuzzer_sys::fuzz_target;

/// How deep nested multiparts are followed (a real message rarely goes past 3).
const MAX_DEPTH: usize = 4;

fn walk(entity: &Entity<'_>, depth: usize) {
    let bytes = entity.bytes();
    assert!(entity.header_end() <= entity.body_range().start);
    assert!(entity.body_range().end == bytes.len());
    let ct = entity.content_type();
    // Parsing a Content-Type we print again must not panic either.
    let _ = ContentType::parse(&ct.mime);
    let _ = entity.decoded_body();
    if depth >= MAX_DEPTH || !ct.is_multipart() {
        return;
    }
    let Some(boundary) = ct.param("boundary") else {
        return;
    };
    let start = entity.body_range().start;
    let Ok(parts) = multipart::split(entity.body(), boundary, start) else {
        return;
    };
    for range in parts.parts {
        assert!(range.start <= range.end && range.end <= bytes.len());
        let part = Entity::parse(&bytes[range]);
        walk(&part, depth + 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let entity = Entity::parse(data);
    for field in entity.headers.fields() {
        assert!(field.range.end <= data.len());
        let _ = field.value();
    }
    for name in ["From", "To", "Cc", "Sender", "Disposition-Notification-To"] {
        for value in entity.headers.get_all(name) {
            for mailbox in mime::parse_address_list(&value) {
                assert!(mailbox.address.contains('@'));
                let _ = mime::domain_of(&mailbox.address);
            }
        }
    }
    walk(&entity, 0);

    // The body as base64 text, decoded in place and into a copy: the same bytes, or an error
    // at the same place (in-place offsets count from the start of the buffer).
    let body = entity.body_range();
    let copy = base64::decode(&data[body.clone()]);
    let mut buf = data.to_vec();
    let in_place = base64::decode_in_place(&mut buf, body.clone());
    match (copy, in_place) {
        (Ok(bytes), Ok(range)) => {
            assert!(range.start == body.start && range.end <= body.end);
            assert_eq!(bytes, buf[range]);
        }
        (Err(MimeError::Base64 { offset: a }), Err(MimeError::Base64 { offset: b })) => {
            assert_eq!(a + body.start, b);
        }
        (copy, in_place) => panic!("decode gave {copy:?}, decode_in_place {in_place:?}"),
    }

    // Encode → decode is the identity (RFC 2045 §6.8).
    let mut text = Vec::new();
    base64::encode_lines(data, &mut text);
    assert_eq!(base64::decode(&text).as_deref(), Ok(data));

    // Canonical CRLF form (RFC 5751 §3.1.1) is a fixed point.
    if let Some(crlf) = mime::to_crlf(data) {
        assert_eq!(mime::to_crlf(&crlf), None);
    }
});
