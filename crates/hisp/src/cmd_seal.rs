//! `hisp seal` (DESIGN §3): wrap, sign and encrypt an RFC 5322 message for one or more
//! recipients.

use crate::files;
use anyhow::{anyhow, Context, Result};
use hisp_direct::alg::{ContentCipher, Digest, KeyTransport};
use hisp_direct::seal::{seal, SealOptions};
use std::path::PathBuf;

/// Arguments of `hisp seal`.
#[derive(clap::Args)]
pub struct SealArgs {
    /// The sender's certificate (PEM or DER; may hold the chain after it).
    #[arg(long)]
    signer_cert: Option<PathBuf>,
    /// The sender's private key, or a PKCS#12 file.
    #[arg(long)]
    signer_key: PathBuf,
    /// Password of an encrypted key or PKCS#12 file.
    #[arg(long)]
    key_password: Option<String>,
    /// A recipient's certificate; repeat for several recipients.
    #[arg(long = "recipient-cert", required = true)]
    recipient_certs: Vec<PathBuf>,
    /// Content encryption: aes-256-cbc (default), aes-128-cbc, aes-256-gcm, aes-128-gcm.
    #[arg(long, default_value = "aes-256-cbc")]
    cipher: String,
    /// Key transport: rsa-pkcs1-v1_5 (default) or rsa-oaep (SHA-256).
    #[arg(long, default_value = "rsa-pkcs1-v1_5")]
    key_transport: String,
    /// Signature digest: sha256 (default), sha384, sha512.
    #[arg(long, default_value = "sha256")]
    digest: String,
    /// Also copy the Subject to the outer (unencrypted) headers.
    #[arg(long)]
    outer_subject: bool,
    /// The RFC 5322 message (default: stdin).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// Where to write the sealed message (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run `hisp seal`.
pub fn run(a: &SealArgs) -> Result<u8> {
    let mut opts = SealOptions::new(files::now());
    opts.cipher = ContentCipher::from_name(&a.cipher).ok_or_else(|| {
        anyhow!(
            "--cipher {:?} is not one of aes-128-cbc, aes-256-cbc, aes-128-gcm, aes-256-gcm",
            a.cipher
        )
    })?;
    opts.key_transport = match a.key_transport.to_ascii_lowercase().as_str() {
        "rsa-pkcs1-v1_5" | "pkcs1" | "v1.5" => KeyTransport::RsaPkcs1v15,
        "rsa-oaep" | "oaep" => KeyTransport::RsaOaep(Digest::Sha256),
        other => {
            return Err(anyhow!(
                "--key-transport {other:?} is not rsa-pkcs1-v1_5 or rsa-oaep"
            ))
        }
    };
    opts.digest = Digest::from_name(&a.digest)
        .ok_or_else(|| anyhow!("--digest {:?} is not sha256, sha384 or sha512", a.digest))?;
    opts.outer_subject = a.outer_subject;
    let signer = files::credential(
        a.signer_cert.as_deref(),
        &a.signer_key,
        a.key_password.as_deref(),
    )?;
    let recipients = files::certs(&a.recipient_certs, "recipient certificate")?;
    let refs: Vec<&openssl::x509::X509Ref> = recipients.iter().map(|c| c.as_ref()).collect();
    let message = files::read_input(a.input.as_deref())?;
    let sealed = seal(&message, &signer, &refs, &opts).context("cannot seal the message")?;
    files::write_output(a.out.as_deref(), &sealed)?;
    Ok(0)
}
