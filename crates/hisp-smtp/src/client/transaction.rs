//! One mail transaction on an open session (RFC 5321 §3.3): MAIL, RCPT for each recipient,
//! DATA, the content. With PIPELINING (RFC 2920 §3.1) MAIL, every RCPT and DATA go out as
//! one group, DATA last since its reply changes state, so a message costs two round trips
//! instead of three; every reply of the group is then read and checked.

use super::conn::ClientConn;
use super::wire::Extensions;
use super::{send_content, ClientError, Content, Delivery, Session};
use crate::{ClientConfig, Envelope, Reply};
use std::time::Duration;

/// The replies before the content: each recipient's, and whether the server said `354`.
struct Opened {
    per_rcpt: Vec<(String, Reply)>,
    go_ahead: bool,
}

/// One transaction (MAIL, RCPT…, DATA) on an open session. When no recipient is accepted
/// no content is sent and the session is left ready for the next transaction.
pub(crate) async fn send_mail(
    session: &mut Session,
    cfg: &ClientConfig,
    envelope: &Envelope,
    message: Content<'_>,
) -> Result<Delivery, ClientError> {
    let t = cfg.command_timeout;
    let (conn, ext) = (&mut session.conn, &session.ext);
    let mail = mail_command(ext, envelope, &message);
    let opened = if ext.pipelining {
        pipelined(conn, t, envelope, mail).await?
    } else {
        one_by_one(conn, t, envelope, mail).await?
    };
    let remote = conn.remote.to_string();
    let tls = conn.is_tls();
    if !opened.go_ahead {
        return Ok(Delivery {
            per_rcpt: opened.per_rcpt,
            data_reply: None,
            tls,
            remote,
        });
    }
    send_content(conn, message, cfg.data_timeout).await?;
    let reply = conn.read_reply(cfg.data_timeout, "end of data").await?;
    if !reply.is_positive() {
        return Err(ClientError::Rejected {
            stage: "end of data",
            reply,
        });
    }
    Ok(Delivery {
        per_rcpt: opened.per_rcpt,
        data_reply: Some(reply),
        tls,
        remote,
    })
}

/// `MAIL FROM` with the SIZE and BODY parameters the server offers (RFC 1870, RFC 6152).
fn mail_command(ext: &Extensions, envelope: &Envelope, message: &Content<'_>) -> String {
    let mut mail = format!("MAIL FROM:<{}>", envelope.mail_from);
    if ext.size {
        mail.push_str(&format!(" SIZE={}", message.len()));
    }
    if ext.eight_bit_mime && message.eight_bit() {
        mail.push_str(" BODY=8BITMIME");
    }
    mail.push_str("\r\n");
    mail
}

/// MAIL, RCPT… and DATA as one group, then their replies in order. RFC 2920 §3.1: the
/// client cannot assume DATA failed because no RCPT worked; a `354` then gets a lone dot.
async fn pipelined(
    conn: &mut ClientConn,
    t: Duration,
    envelope: &Envelope,
    mail: String,
) -> Result<Opened, ClientError> {
    let mut group = mail;
    for r in &envelope.rcpt_to {
        group.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    group.push_str("DATA\r\n");
    conn.send(group.as_bytes(), t, "MAIL FROM").await?;
    let mail_reply = conn.read_reply(t, "MAIL FROM").await?;
    if mail_reply.code == 421 {
        // The server is closing (shutting down, or it timed an idle session out): no
        // further replies will follow.
        return Err(ClientError::Rejected {
            stage: "MAIL FROM",
            reply: mail_reply,
        });
    }
    let mut per_rcpt = Vec::with_capacity(envelope.rcpt_to.len());
    for rcpt in &envelope.rcpt_to {
        per_rcpt.push((rcpt.clone(), conn.read_reply(t, "RCPT TO").await?));
    }
    let data_reply = conn.read_reply(t, "DATA").await?;
    let accepted = mail_reply.is_positive() && per_rcpt.iter().any(|(_, r)| r.is_positive());
    if !accepted && data_reply.code == 354 {
        // Nobody to deliver to: end the content at once; the transaction then fails or
        // is empty, and the session is ready for the next one either way.
        conn.send(b".\r\n", t, "end of data").await?;
        conn.read_reply(t, "end of data").await?;
    } else if !accepted && mail_reply.is_positive() {
        // MAIL stands without a recipient: reset it so the session can carry the next.
        conn.send(b"RSET\r\n", t, "RSET").await?;
        conn.read_reply(t, "RSET").await?;
    }
    if !mail_reply.is_positive() {
        return Err(ClientError::Rejected {
            stage: "MAIL FROM",
            reply: mail_reply,
        });
    }
    if accepted && data_reply.code != 354 {
        return Err(ClientError::Rejected {
            stage: "DATA",
            reply: data_reply,
        });
    }
    Ok(Opened {
        per_rcpt,
        go_ahead: accepted,
    })
}

/// Each command after the reply to the one before, for servers without PIPELINING. No
/// recipient accepted: RSET instead of DATA.
async fn one_by_one(
    conn: &mut ClientConn,
    t: Duration,
    envelope: &Envelope,
    mail: String,
) -> Result<Opened, ClientError> {
    conn.send(mail.as_bytes(), t, "MAIL FROM").await?;
    let reply = conn.read_reply(t, "MAIL FROM").await?;
    if !reply.is_positive() {
        return Err(ClientError::Rejected {
            stage: "MAIL FROM",
            reply,
        });
    }
    let mut per_rcpt = Vec::with_capacity(envelope.rcpt_to.len());
    for rcpt in &envelope.rcpt_to {
        conn.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), t, "RCPT TO")
            .await?;
        per_rcpt.push((rcpt.clone(), conn.read_reply(t, "RCPT TO").await?));
    }
    if !per_rcpt.iter().any(|(_, r)| r.is_positive()) {
        conn.send(b"RSET\r\n", t, "RSET").await?;
        conn.read_reply(t, "RSET").await?;
        return Ok(Opened {
            per_rcpt,
            go_ahead: false,
        });
    }
    conn.send(b"DATA\r\n", t, "DATA").await?;
    let reply = conn.read_reply(t, "DATA").await?;
    if reply.code != 354 {
        return Err(ClientError::Rejected {
            stage: "DATA",
            reply,
        });
    }
    Ok(Opened {
        per_rcpt,
        go_ahead: true,
    })
}
