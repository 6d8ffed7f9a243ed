//! Properties of seal and open (Applicability Statement §3–4, RFC 8551, RFC 5751 §3.1.1) and
//! of the base64 and line-ending helpers (RFC 2045 §6.8), checked on generated inputs:
//!
//! - seal → open gives back every RFC 5322 message in its canonical CRLF form, for each of
//!   1 to 4 recipients, with every check passing; a non-recipient gets a decrypt error;
//! - every content cipher × key transport Direct sends with round trips;
//! - a single changed byte in the sealed message's base64 body never panics and never makes
//!   open deliver anything but the original as trusted; under AES-GCM, a change to the
//!   ciphertext or tag never even decrypts;
//! - base64 `encode_lines` → `decode` is the identity, and `to_crlf` is idempotent.
//!
//! The PKI (a root and five RSA-2048 leaves) is generated once per test binary; the case
//! counts are small so the file runs in seconds in a debug build.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hisp_direct::alg::{ContentCipher, Digest, KeyTransport, Profile};
use hisp_direct::cms::decrypt::parse_envelope;
use hisp_direct::error::{DecryptError, OpenError, SealError};
use hisp_direct::keys::Credential;
use hisp_direct::mime::{self, base64, Entity};
use hisp_direct::open::{open, OpenOptions, Opened};
use hisp_direct::pki::{issue_leaf, new_root_ca, LeafSpec};
use hisp_direct::seal::{seal, seal_to as seal_to_writer, SealOptions};
use hisp_direct::trust::TrustAnchors;
use proptest::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

const NOT_BEFORE: i64 = 1_600_000_000; // 2020-09-13
const NOT_AFTER: i64 = 2_500_000_000; // 2049-03-22
const AT: i64 = 1_750_000_000; // 2025-06-15
const SENDER: &str = "alice@sender.example";
const RECIPIENTS: [&str; 4] = [
    "bob@recipient.example",
    "carol@recipient.example",
    "dave@other.example",
    "erin@other.example",
];
const OUTSIDER: &str = "mallory@outsider.example";

struct Pki {
    anchors: TrustAnchors,
    sender: Credential,
    recipients: Vec<Credential>,
    outsider: Credential,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = new_root_ca("Hisp Property Root", NOT_BEFORE, NOT_AFTER, 2048).unwrap();
        let leaf = |addr: &str| {
            let i = issue_leaf(&ca, &LeafSpec::address(addr, NOT_BEFORE, NOT_AFTER)).unwrap();
            Credential::new(i.cert, i.key, vec![]).unwrap()
        };
        Pki {
            sender: leaf(SENDER),
            recipients: RECIPIENTS.iter().map(|a| leaf(a)).collect(),
            outsider: leaf(OUTSIDER),
            anchors: TrustAnchors::new(vec![ca.cert.clone()]),
        }
    })
}

fn open_as(message: Vec<u8>, who: &Credential) -> Opened {
    let p = pki();
    let profile = Profile::strict();
    let creds = std::slice::from_ref(who);
    open(message, &OpenOptions::new(creds, &p.anchors, AT, &profile))
}

fn seal_to(message: &[u8], to: &[&Credential], opts: &SealOptions) -> Vec<u8> {
    let certs: Vec<_> = to.iter().map(|c| &**c.cert()).collect();
    seal(message, &pki().sender, &certs, opts).expect("seal")
}

fn canonical(message: &[u8]) -> Vec<u8> {
    mime::to_crlf(message).unwrap_or_else(|| message.to_vec())
}

/// Open as `who` and require every check to pass and the message to come back exactly.
fn assert_round_trip(sealed: &[u8], who: &Credential, message: &[u8]) -> Opened {
    let opened = open_as(sealed.to_vec(), who);
    let v = &opened.verdict;
    assert!(v.ok(), "verdict not ok: {:?}", v.errors);
    assert!(v.decrypted && v.signature_valid && v.trusted && v.bound);
    assert!(v.wrapped, "seal wraps the whole message (AS §3.3)");
    assert_eq!(v.from.as_deref(), Some(SENDER));
    assert_eq!(opened.trusted_inner(), Some(&canonical(message)[..]));
    opened
}

// ----------------------------------------------------------------------------------------
// Generators

/// A line ending: CRLF, a bare LF (a relay or a Unix client wrote it), or none at all.
fn ending() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![4 => Just(&b"\r\n"[..]), 2 => Just(&b"\n"[..]), 1 => Just(&b""[..])]
}

/// One body line: any bytes but LF (8-bit, NUL and lone CR included), now and then longer
/// than the 998 octets of RFC 5322 §2.1.1.
fn body_line() -> impl Strategy<Value = Vec<u8>> {
    let byte = any::<u8>().prop_filter("no LF inside a line", |b| *b != b'\n');
    prop_oneof![
        8 => proptest::collection::vec(byte.clone(), 0..90),
        1 => proptest::collection::vec(byte, 990..1300),
    ]
}

/// An RFC 5322 message from SENDER to `to`, with Subject and Message-ID, header lines
/// ended by CRLF or LF, and an arbitrary body.
fn message_to(to: Vec<usize>) -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    (
        "[ -~]{0,70}",
        "[a-z0-9.]{1,24}",
        any::<bool>(),
        proptest::collection::vec((body_line(), ending()), 0..12),
    )
        .prop_map(move |(subject, id, lf_headers, lines)| {
            let eol: &str = if lf_headers { "\n" } else { "\r\n" };
            let to_list: Vec<&str> = to.iter().map(|i| RECIPIENTS[*i]).collect();
            let mut m = format!(
                "From: Alice <{SENDER}>{eol}To: {}{eol}Subject: {subject}{eol}\
                 Message-ID: <{id}@sender.example>{eol}{eol}",
                to_list.join(", ")
            )
            .into_bytes();
            for (line, end) in lines {
                m.extend_from_slice(&line);
                m.extend_from_slice(end);
            }
            (to.clone(), m)
        })
}

/// 1 to 4 of the recipients, and a message to them.
fn addressed_message() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=4).prop_flat_map(message_to)
}

// ----------------------------------------------------------------------------------------
// (a) seal → open is the identity, for every recipient; others cannot decrypt.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn seal_open_identity_for_every_recipient((to, message) in addressed_message()) {
        let p = pki();
        let creds: Vec<&Credential> = to.iter().map(|i| &p.recipients[*i]).collect();
        let sealed = seal_to(&message, &creds, &SealOptions::new(AT));
        for who in &creds {
            assert_round_trip(&sealed, who, &message);
        }
        let outsider = open_as(sealed, &p.outsider);
        let v = &outsider.verdict;
        prop_assert!(!v.ok() && !v.decrypted && !v.signature_valid);
        prop_assert!(
            matches!(v.errors.first(), Some(OpenError::Decrypt(DecryptError::NoRecipient { .. }))),
            "a non-recipient must get NoRecipient, got {:?}", v.errors
        );
        prop_assert_eq!(outsider.inner(), None);
    }
}

// ----------------------------------------------------------------------------------------
// (b) every cipher × key transport round trips.

#[test]
fn rfc5751_2_7_every_cipher_and_key_transport_round_trips() {
    let p = pki();
    let message =
        b"From: alice@sender.example\nTo: bob@recipient.example, carol@recipient.example\n\
        Subject: algorithms\n\nbare LF line\r\nCRLF line\n\xe9t\xe9 in Latin-1\n";
    let ciphers = [
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes256Cbc,
        ContentCipher::Aes128Gcm,
        ContentCipher::Aes256Gcm,
    ];
    let transports = [
        KeyTransport::RsaPkcs1v15,
        KeyTransport::RsaOaep(Digest::Sha256),
    ];
    for cipher in ciphers {
        for kt in transports {
            let mut opts = SealOptions::new(AT);
            opts.cipher = cipher;
            opts.key_transport = kt;
            let sealed = seal_to(message, &[&p.recipients[0], &p.recipients[1]], &opts);
            let smime_type = if cipher.is_aead() {
                "smime-type=authEnveloped-data"
            } else {
                "smime-type=enveloped-data"
            };
            assert!(
                memchr::memmem::find(&sealed, smime_type.as_bytes()).is_some(),
                "{cipher:?}: outer Content-Type must say {smime_type}"
            );
            for who in &p.recipients[..2] {
                let opened = assert_round_trip(&sealed, who, message);
                let alg = &opened.verdict.algorithms;
                assert_eq!(
                    alg.content_encryption.as_deref(),
                    Some(cipher.name()),
                    "{kt:?}"
                );
                assert_eq!(alg.key_transport, Some(kt.name()), "{cipher:?}");
                assert_eq!(alg.digest.as_deref(), Some("sha256"));
            }
        }
    }
}

/// Written out a megabyte at a time, a sealed message of several megabytes (AES-CBC and
/// AES-GCM) opens just as the one returned whole does; a writer that fails is reported.
#[test]
fn seal_to_writes_what_seal_returns() {
    let p = pki();
    let mut message = b"From: alice@sender.example\r\nTo: bob@recipient.example\r\n\
        Subject: large\r\nMessage-ID: <large@sender.example>\r\n\r\n"
        .to_vec();
    let line = [b'x'; 76];
    while message.len() < 3 << 20 {
        message.extend_from_slice(&line);
        message.extend_from_slice(b"\r\n");
    }
    let to = [&**p.recipients[0].cert()];
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let mut opts = SealOptions::new(AT);
        opts.cipher = cipher;
        let mut written = Vec::new();
        let n = seal_to_writer(&message, &p.sender, &to, &opts, &mut written).unwrap();
        assert_eq!(n, written.len() as u64);
        let whole = seal(&message, &p.sender, &to, &opts).unwrap();
        assert_eq!(written.len(), whole.len(), "{cipher:?}: same length");
        assert_round_trip(&written, &p.recipients[0], &message);
    }
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = seal_to_writer(&message, &p.sender, &to, &SealOptions::new(AT), &mut Broken);
    assert!(matches!(err, Err(SealError::Write(_))), "{err:?}");
}

// ----------------------------------------------------------------------------------------
// (c) one changed byte of the base64 body.

struct Tampered {
    sealed: Vec<u8>,
    body: Range<usize>,
    /// The DER inside the base64 body.
    der: Vec<u8>,
    /// Where the encrypted content and the GCM tag lie in `der` (AuthEnvelopedData only).
    authenticated: Vec<Range<usize>>,
}

const TAMPER_MESSAGE: &[u8] = b"From: alice@sender.example\r\nTo: bob@recipient.example\r\n\
    Subject: tamper\r\nMessage-ID: <t.1@sender.example>\r\n\r\nPay 100 to account 12345.\r\n";

fn tampered(cipher: ContentCipher) -> Tampered {
    let mut opts = SealOptions::new(AT);
    opts.cipher = cipher;
    let sealed = seal_to(TAMPER_MESSAGE, &[&pki().recipients[0]], &opts);
    let body = Entity::parse(&sealed).body_range();
    let der = base64::decode(&sealed[body.clone()]).unwrap();
    let env = parse_envelope(&der).unwrap();
    let mut authenticated = Vec::new();
    if env.authenticated {
        authenticated.extend(env.pieces.iter().cloned());
        // The tag is the last OCTET STRING of the AuthEnvelopedData.
        let mac = env.mac.as_ref().unwrap();
        let at = memchr::memmem::rfind(&der, mac).unwrap();
        authenticated.push(at..at + mac.len());
    }
    Tampered {
        sealed,
        body,
        der,
        authenticated,
    }
}

fn tampered_cbc() -> &'static Tampered {
    static T: OnceLock<Tampered> = OnceLock::new();
    T.get_or_init(|| tampered(ContentCipher::Aes256Cbc))
}

fn tampered_gcm() -> &'static Tampered {
    static T: OnceLock<Tampered> = OnceLock::new();
    T.get_or_init(|| tampered(ContentCipher::Aes128Gcm))
}

/// Replace one byte of the body and open. Whatever changed, the only message open may
/// deliver as trusted is the original one. Returns the verdict and the DER the changed
/// body decodes to, if it decodes.
fn flip_and_open(t: &Tampered, index: prop::sample::Index, byte: u8) -> (Opened, Option<Vec<u8>>) {
    let at = t.body.start + index.index(t.body.len());
    let mut changed = t.sealed.clone();
    let byte = if byte == changed[at] {
        byte ^ 0x40
    } else {
        byte
    };
    changed[at] = byte;
    let der = base64::decode(&changed[t.body.clone()]).ok();
    let opened = open_as(changed, &pki().recipients[0]);
    if opened.verdict.ok() {
        assert_eq!(
            opened.trusted_inner(),
            Some(TAMPER_MESSAGE),
            "a changed message was delivered as trusted"
        );
    }
    (opened, der)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// AES-CBC (EnvelopedData) has no integrity of its own, so some changes survive: in
    /// fields the reader does not use (versions, some tags, the contentType OID of the
    /// encrypted content), in base64 whitespace and padding, and in the MIME headers around
    /// the signed part (RFC 1847 signs the first part only). Whatever changed, what is
    /// delivered as trusted is the original message (checked in `flip_and_open`).
    #[test]
    fn rfc8551_one_changed_byte_never_delivers_other_content_cbc(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        flip_and_open(tampered_cbc(), index, byte);
    }

    /// AES-GCM (AuthEnvelopedData, RFC 5083/5084): a change to the ciphertext or the tag
    /// never decrypts, so it is never ok.
    #[test]
    fn rfc5083_one_changed_byte_never_ok_gcm(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let t = tampered_gcm();
        let (opened, der) = flip_and_open(t, index, byte);
        // Not base64 any more, or the ciphertext or tag bytes differ (or moved).
        let hits_authenticated = der.is_none_or(|d| {
            t.authenticated.iter().any(|r| d.get(r.clone()) != Some(&t.der[r.clone()]))
        });
        if hits_authenticated {
            prop_assert!(
                !opened.verdict.ok() && !opened.verdict.decrypted,
                "a changed ciphertext or tag decrypted: {:?}", opened.verdict
            );
        }
    }
}

// ----------------------------------------------------------------------------------------
// (d) base64 and canonical line endings.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rfc2045_6_8_encode_lines_then_decode_is_identity(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        offset in 0usize..8,
    ) {
        let mut text = Vec::new();
        base64::encode_lines(&data, &mut text);
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            prop_assert!(line.ends_with(b"\r") && line.len() <= 77, "lines are 76 columns + CRLF");
        }
        prop_assert_eq!(base64::decode(&text).unwrap(), data.clone());
        // In place, inside a larger buffer.
        let mut buf = vec![b'#'; offset];
        buf.extend_from_slice(&text);
        buf.extend_from_slice(b"trailer");
        let range = offset..offset + text.len();
        let out = base64::decode_in_place(&mut buf, range).unwrap();
        prop_assert_eq!(&buf[out], &data[..]);
    }

    /// Lines of any width (the .NET RI writes 64 KiB lines), LF or CRLF, stray whitespace:
    /// the decoder gathers text in 32 KiB chunks, so sizes here cross chunk boundaries.
    #[test]
    fn rfc2045_6_8_any_line_width_and_whitespace_decode_to_the_data(
        data in proptest::collection::vec(any::<u8>(), 0..120_000),
        width in prop_oneof![Just(76usize), 1usize..200, 60_000usize..70_000],
        crlf in any::<bool>(),
        stray in proptest::collection::vec((any::<prop::sample::Index>(), prop_oneof![Just(b' '), Just(b'\t'), Just(0x0c_u8)]), 0..4),
        padded in any::<bool>(),
    ) {
        use ::base64::Engine as _;
        let mut flat = ::base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
        if !padded {
            while flat.last() == Some(&b'=') {
                flat.pop();
            }
        }
        let mut text = Vec::new();
        for line in flat.chunks(width) {
            text.extend_from_slice(line);
            text.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        for (at, ws) in stray {
            let i = at.index(text.len() + 1);
            text.insert(i, ws);
        }
        prop_assert_eq!(base64::decode(&text).unwrap(), data);
    }

    /// Differential: base64 in lines of any width, then a few characters replaced or
    /// inserted (padding, whitespace, junk, anywhere, chunk boundaries included): the
    /// chunked decoder accepts exactly what WHATWG forgiving base64 (as `base64_simd`
    /// implements it over the whole text) accepts, and yields the same bytes.
    #[test]
    fn rfc2045_6_8_decode_agrees_with_forgiving_base64(
        data in proptest::collection::vec(any::<u8>(), 0..12_000),
        width in prop_oneof![Just(76usize), 1usize..300, 4000usize..9000],
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<bool>(), proptest::sample::select(
                b"AZaz09+/= \t\r\n\x0c*-_\x00\xff".to_vec())),
            0..3,
        ),
    ) {
        use ::base64::Engine as _;
        let flat = ::base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
        let mut text = Vec::new();
        for line in flat.chunks(width) {
            text.extend_from_slice(line);
            text.extend_from_slice(b"\r\n");
        }
        for (at, insert, c) in edits {
            let i = at.index(text.len() + 1);
            if insert || i == text.len() {
                text.insert(i, c);
            } else {
                text[i] = c;
            }
        }
        let ours = base64::decode(&text).ok();
        let reference = base64_simd::forgiving_decode_to_vec(&text).ok();
        prop_assert_eq!(ours, reference);
    }

    #[test]
    fn rfc5751_3_1_1_to_crlf_is_idempotent(
        data in proptest::collection::vec(
            prop_oneof![3 => Just(b'\n'), 3 => Just(b'\r'), 10 => any::<u8>()], 0..400),
    ) {
        let once = mime::to_crlf(&data);
        let canonical = once.clone().unwrap_or_else(|| data.clone());
        // Canonical: every LF follows a CR, and converting again changes nothing.
        prop_assert_eq!(mime::to_crlf(&canonical), None);
        for (i, b) in canonical.iter().enumerate() {
            if *b == b'\n' {
                prop_assert!(i > 0 && canonical[i - 1] == b'\r');
            }
        }
        // Only LFs gained a CR: drop every CR that precedes an LF and both sides agree.
        let strip = |v: &[u8]| -> Vec<u8> {
            let mut out = Vec::with_capacity(v.len());
            for (i, b) in v.iter().enumerate() {
                if !(*b == b'\r' && v.get(i + 1) == Some(&b'\n')) {
                    out.push(*b);
                }
            }
            out
        };
        prop_assert_eq!(strip(&canonical), strip(&data));
        // None means the input already was canonical.
        prop_assert_eq!(once.is_none(), !data.iter().enumerate()
            .any(|(i, b)| *b == b'\n' && (i == 0 || data[i - 1] != b'\r')));
    }
}
