#!/usr/bin/env python3
"""Seed fuzz/corpus/<target>/ from the Direct interop vectors (STYLE §6).

The corpora are not committed (fuzz/corpus is gitignored): this script writes them at fuzz
time, from tests/vectors/interop (or $HISP_INTEROP_DIR), read-only. It writes files named
seed-*; whatever the fuzzer added to a corpus before is kept.

What each target gets:
  mime_entity  every message vector, and the decrypted contents of the S/MIME ones
  smime_open   mode 0 (first byte 0x00): every message vector as received;
               mode 1 (0x01): the decrypted contents, to be re-enveloped for the fuzz key;
               mode 2 (0x02): plain RFC 5322 messages, to be sealed and opened
  cms_ber      certificates, CRLs, keys, bundles, PKCS#12, the EnvelopedData DER of every
               S/MIME vector and the SignedData DER of every decrypted one
  mdn, dsn     the MDN and DSN vectors (each also gets the other kind, as a near miss)
  smtp_session SMTP dialogues (SMTP_DIALOGUES below) under each setting of the first byte,
               the message carrying a small vector: relay and submission, with and without
               STARTTLS, pipelined and line by line
  smtp_client  server sides of delivery dialogues (SERVER_SIDES below): pipelined or not,
               refusals, a server that offers STARTTLS, TLS required, AUTH

Decrypting needs the openssl command (Debian's openssl; scripts/test installs it); without
it the decrypted seeds are skipped and said so. Vectors over MAX_SEED bytes are skipped.
"""

import base64
import email
import email.policy
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import tomllib

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
INTEROP = pathlib.Path(os.environ.get("HISP_INTEROP_DIR", ROOT / "tests/vectors/interop"))
CORPUS = FUZZ / "corpus"
TARGETS = ["mime_entity", "smime_open", "cms_ber", "mdn", "dsn", "smtp_session", "smtp_client"]
MAX_SEED = 64 * 1024  # LargeEncAttachment (1.1 MiB) would only slow every mutation down

# Plain messages for smime_open mode 2 and mime_entity: 8-bit text, bare LF and CRLF lines,
# a line over 998 octets, a NUL, and a header-only message.
SYNTHETIC = [
    b"From: a@fuzz.hisp.example\r\nTo: b@fuzz.hisp.example\r\nSubject: hi\r\n"
    b"Message-ID: <1@fuzz.hisp.example>\r\n\r\nbody\r\n",
    b"From: a@fuzz.hisp.example\nTo: b@fuzz.hisp.example, c@fuzz.hisp.example\n"
    b"Subject: mixed\n\nline one\r\nline two\n\xc3\xa9t\xc3\xa9 8-bit\n" + b"x" * 1200 + b"\n\x00end",
    b"From: a@fuzz.hisp.example\r\nDisposition-Notification-To: a@fuzz.hisp.example\r\n"
    b"Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n",
]


# Client sides of SMTP sessions for smtp_session (its first byte is prepended per setting;
# after STARTTLS the harness has already sent EHLO and STARTTLS in the clear).
# {msg} is a dot-stuffed message. AUTH PLAIN is "\0user@fuzz.hisp.example\0secret".
AUTH_PLAIN = base64.b64encode(b"\0user@fuzz.hisp.example\0secret")
SMTP_DIALOGUES = {
    "relay": b"EHLO peer.example\r\nMAIL FROM:<a@peer.example> SIZE=100 BODY=8BITMIME\r\n"
    b"RCPT TO:<b@fuzz.hisp.example>\r\nRCPT TO:<nobody@fuzz.hisp.example>\r\nDATA\r\n"
    b"{msg}.\r\nRSET\r\nNOOP\r\nVRFY b\r\nHELP\r\nQUIT\r\n",
    "submission": b"EHLO client.example\r\nAUTH PLAIN " + AUTH_PLAIN + b"\r\n"
    b"MAIL FROM:<user@fuzz.hisp.example>\r\nRCPT TO:<b@peer.example>\r\nDATA\r\n"
    b"{msg}.\r\nQUIT\r\n",
    "login": b"EHLO client.example\r\nAUTH LOGIN\r\ndXNlckBmdXp6Lmhpc3AuZXhhbXBsZQ==\r\n"
    b"c2VjcmV0\r\nMAIL FROM:<user@fuzz.hisp.example>\r\nRCPT TO:<b@peer.example>\r\n"
    b"DATA\r\n{msg}.\r\nQUIT\r\n",
    "hostile": b"HELO x\r\nAUTH PLAIN\r\n*\r\nMAIL FROM:<a@b>\r\nDATA\r\nRCPT TO:<c@d>\r\n"
    b"DATA\r\nline\nbare LF\r\n" + b"y" * 300 + b"\r\n\n.\n.\r\nSTARTTLS\r\n",
    # Past every limit: a 600-octet EHLO name, a long path, a data line over 200 octets and a
    # message over 2048 (the harness's limits), 600 octets of 8-bit junk, too many RCPTs.
    "limits": b"EHLO " + b"h" * 600 + b"\r\nEHLO peer.example\r\nMAIL FROM:<" + b"p" * 300
    + b"@x>\r\nMAIL FROM:<a@x>\r\n" + b"".join(b"RCPT TO:<r%d@x>\r\n" % i for i in range(6))
    + b"DATA\r\n" + b"z" * 3000 + b"\r\n" + (b"w" * 150 + b"\r\n") * 20 + b".\r\n"
    + bytes(range(128, 256)) * 5 + b"\r\n",
    # A 1,200-byte message: within the size limit, past the harness's DATA memory budget.
    "budget": b"EHLO peer.example\r\nMAIL FROM:<a@peer.example>\r\nRCPT TO:<b@x>\r\nDATA\r\n"
    + (b"k" * 98 + b"\r\n") * 12 + b".\r\nMAIL FROM:<a@peer.example>\r\nRCPT TO:<b@x>\r\n"
    b"DATA\r\n{msg}.\r\nQUIT\r\n",
}
# First bytes: relay, submission (STARTTLS), pipelined or line by line, one store refusal.
SMTP_MODES = {"relay": [0x10, 0x00, 0x12, 0x18], "submission": [0x13, 0x03, 0x11],
              "login": [0x13, 0x23], "hostile": [0x00, 0x10, 0x11, 0x14], "limits": [0x10, 0x00], "budget": [0x10]}

# What a receiving server says to our delivery client, all of it at once (smtp_client).
SERVER_SIDES = {
    "pipelined": b"220 mx.peer.example ESMTP\r\n250-mx.peer.example\r\n250-PIPELINING\r\n"
    b"250-SIZE 100000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n"
    b"250 2.1.5 Ok\r\n550 5.1.1 <c@peer.example>: no such user\r\n354 go ahead\r\n"
    b"250 2.0.0 Ok: queued as X1\r\n221 2.0.0 bye\r\n",
    "one-by-one": b"220 mx ESMTP\r\n250 mx\r\n250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"
    b"250 queued\r\n221 bye\r\n",
    "refusals": b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n250 Ok\r\n452 4.5.3 later\r\n"
    b"550 no\r\n554 5.5.1 no valid recipients\r\n221 bye\r\n",
    "closing": b"220-mx first\r\n220 mx\r\n250 mx\r\n421 4.3.2 mx shutting down\r\n",
    "starttls": b"220 mx\r\n250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n220 2.0.0 Ready\r\n"
    b"\x16\x03\x01\x00\x05hello",
    "busy": b"421 4.3.2 too many connections\r\n",
}
SERVER_MODES = [0x00, 0x02, 0x04]


def dot_stuffed(message):
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


def log(msg):
    print(f"seed_corpora: {msg}", file=sys.stderr)


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def body_of(message):
    """The body after the first empty line (CRLF or LF)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = message.find(sep)
        if i >= 0:
            return message[i + len(sep):]
    return b""


def pem_key(v):
    """A PEM private key for a vector, or None (PKCS#12 goes through `openssl pkcs12`)."""
    key = INTEROP / v["recipient_key"]
    if v.get("key_format") == "pkcs8-der":
        args = ["openssl", "pkey", "-inform", "DER", "-in", str(key)]
    elif v.get("key_format") == "pkcs12-legacy":
        args = ["openssl", "pkcs12", "-legacy", "-in", str(key), "-nodes", "-nocerts",
                "-passin", f"pass:{v.get('key_password', '')}"]
    else:
        return None
    r = subprocess.run(args, capture_output=True)
    return r.stdout if r.returncode == 0 else None


def decrypt(v, message):
    key = pem_key(v)
    if key is None:
        return None
    # DER rather than the S/MIME text: openssl's base64 reader refuses the .NET RI's long
    # lines.
    der = base64.b64decode(body_of(message))
    with tempfile.NamedTemporaryFile(suffix=".pem") as k:
        k.write(key)
        k.flush()
        r = subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER",
                            "-inkey", k.name], input=der, capture_output=True)
    return r.stdout if r.returncode == 0 and r.stdout else None


def signature_der(plain):
    """The SignedData DER of a multipart/signed entity, and its first part's bytes."""
    msg = email.message_from_bytes(plain, policy=email.policy.compat32)
    sig, first = None, None
    if msg.is_multipart():
        for i, part in enumerate(msg.get_payload()):
            if i == 0:
                first = part.as_bytes()
            if part.get_content_type() in ("application/pkcs7-signature",
                                           "application/x-pkcs7-signature"):
                sig = part.get_payload(decode=True)
    return sig, first


def main():
    manifest = tomllib.loads((INTEROP / "MANIFEST.toml").read_text())
    vectors = manifest["vector"]
    have_openssl = subprocess.run(["openssl", "version"], capture_output=True).returncode == 0
    if not have_openssl:
        log("openssl not found: no decrypted seeds (smime_open mode 1, SignedData DER)")

    messages = sorted((INTEROP).glob("*/messages/*.txt"))
    for path in messages:
        data = path.read_bytes()
        stem = f"{path.parent.parent.name}-{path.stem}"
        if len(data) > MAX_SEED:
            log(f"skipped {path.relative_to(INTEROP)} ({len(data)} bytes > {MAX_SEED})")
            continue
        write("mime_entity", stem, data)
        write("smime_open", f"0-{stem}", b"\x00" + data)
        name = path.name.lower()
        if name.startswith("mdn"):
            write("mdn", stem, data)
            write("dsn", f"near-{stem}", data)
            write("smime_open", f"2-{stem}", b"\x02" + data)
        elif name.startswith("dsn"):
            write("dsn", stem, data)
            write("mdn", f"near-{stem}", data)
            write("smime_open", f"2-{stem}", b"\x02" + data)
        else:
            der = base64.b64decode(body_of(data))
            write("cms_ber", f"envelope-{stem}", der)

    for v in vectors:
        kind, f = v.get("kind"), v.get("file")
        if kind != "enveloped+signed" or not have_openssl:
            continue
        message = (INTEROP / f).read_bytes()
        if len(message) > MAX_SEED:
            continue
        plain = decrypt(v, message)
        if plain is None:
            log(f"could not decrypt {f} with openssl; no decrypted seed for {v['id']}")
            continue
        write("mime_entity", f"decrypted-{v['id']}", plain)
        write("smime_open", f"1-{v['id']}", b"\x01" + plain)
        sig, first = signature_der(plain)
        if sig:
            write("cms_ber", f"signeddata-{v['id']}", sig)
        if first:
            inner = body_of(first)
            write("smime_open", f"2-inner-{v['id']}", b"\x02" + inner)
            write("mime_entity", f"inner-{v['id']}", inner)

    # Certificates, keys, CRLs, bundles and PKCS#12 (named by content: some names repeat).
    for path in sorted(INTEROP.glob("*/*/*")):
        if path.suffix in (".der", ".p7b", ".p7m", ".crl", ".p12"):
            data = path.read_bytes()
            h = hashlib.sha1(data).hexdigest()[:12]
            write("cms_ber", f"file-{path.stem}-{h}", data)

    for i, m in enumerate(SYNTHETIC):
        write("mime_entity", f"synthetic-{i}", m)
        write("smime_open", f"2-synthetic-{i}", b"\x02" + m)
        write("mdn", f"synthetic-{i}", m)

    small = [m for m in SYNTHETIC if len(m) < 1024]
    for name, dialogue in SMTP_DIALOGUES.items():
        for i, m in enumerate(small):
            session = dialogue.replace(b"{msg}", dot_stuffed(m))
            for mode in SMTP_MODES[name]:
                write("smtp_session", f"{name}-{i}-{mode:02x}", bytes([mode]) + session)

    for name, side in SERVER_SIDES.items():
        for mode in SERVER_MODES:
            write("smtp_client", f"{name}-{mode:02x}", bytes([mode]) + side)

    for t in TARGETS:
        n = len(list((CORPUS / t).glob("seed-*")))
        log(f"{t}: {n} seeds in {(CORPUS / t).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
