//! `cms_ber`: the BER reader and the CMS containers built on it (X.690 indefinite lengths and
//! constructed strings; RFC 5652 EnvelopedData/SignedData, RFC 5083 AuthEnvelopedData), the
//! certs-only bundle reader, the certificate and CRL loaders, and base64. The input is tried
//! both as DER and as base64 text of DER. Nothing may panic and every offset must stay in
//! bounds.
#![no_main]

use hisp_direct::asn1::Tlv;
use hisp_direct::cms::{decrypt::parse_envelope, verify::parse_signed_data};
use hisp_direct::mime::base64;
use hisp_direct::{bundle, keys};
use libfuzzer_sys::fuzz_target;

/// Nested elements followed at most (the CMS structures are about 10 deep).
const MAX_DEPTH: usize = 24;
/// Elements visited at most per input, so one input cannot take seconds.
const MAX_NODES: usize = 4096;

fn walk(t: &Tlv<'_>, depth: usize, budget: &mut usize) {
    let len = t.buffer().len();
    assert!(t.start <= t.content_start && t.content_start <= t.content_end);
    assert!(t.content_end <= t.end && t.end <= len);
    let _ = t.octets();
    let _ = t.small_uint();
    if depth >= MAX_DEPTH || !t.tag.constructed {
        return;
    }
    for child in t.children() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        match child {
            Ok(c) => walk(&c, depth + 1, budget),
            Err(_) => return,
        }
    }
}

fn der(data: &[u8]) {
    if let Ok(t) = Tlv::parse(data) {
        let mut budget = MAX_NODES;
        walk(&t, 0, &mut budget);
        let mut out = Vec::new();
        if hisp_direct::asn1::reader::to_definite(&t, &mut out).is_ok() {
            // The definite-length re-encoding reads back as one element spanning all of it.
            let again = Tlv::parse(&out).expect("to_definite output must parse");
            assert_eq!(again.end, out.len());
            assert!(!again.indefinite);
        }
    }
    let _ = parse_envelope(data);
    let _ = parse_signed_data(data, None);
    let _ = bundle::parse_certs_only(data);
    let _ = keys::is_pkcs12(data);
    let _ = keys::load_certs(data);
    let _ = keys::load_crl(data);
    // keys::load_private_key is left out: it is a PEM sniff in front of OpenSSL's decoders,
    // which take 1.6 ms per input and would slow everything else down a hundredfold.
}

fuzz_target!(|data: &[u8]| {
    der(data);
    if let Ok(decoded) = base64::decode(data) {
        der(&decoded);
    }
});
