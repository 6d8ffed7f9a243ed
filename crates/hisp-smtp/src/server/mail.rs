//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870 §6: refuse an oversized declaration
//! now, not after the upload) and BODY (RFC 6152). On the submission port the client must
//! have authenticated (RFC 6409 §4.3); whether it may use this sender is the handler's call.

use tokio::io::{AsyncRead, AsyncWrite};

use super::parse::{Body, MailFrom};
use super::{Flow, Session, Txn};
use crate::{Envelope, Handler, PortKind, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// MAIL FROM: opens a transaction.
    pub(super) async fn handle_mail(&mut self, mail: MailFrom) -> Flow {
        if let Err(reply) = self.require_helo() {
            return self.refuse(reply);
        }
        if self.cfg.kind == PortKind::Submission && self.info.user.is_none() {
            return self.refuse(Reply::auth_required());
        }
        if matches!(self.txn, Txn::Mail(_) | Txn::Rcpt(_)) {
            return self.refuse(Reply::bad_sequence("nested MAIL command"));
        }
        let max = self.cfg.max_message_size;
        if mail.size.is_some_and(|n| n > max as u64) {
            return self.reply(Reply::too_big(max));
        }
        if let Err(reply) = self.handler.mail_from(&self.info, &mail.reverse_path).await {
            return self.reply(reply);
        }
        self.txn = Txn::Mail(Envelope {
            mail_from: mail.reverse_path,
            rcpt_to: Vec::new(),
            body_8bit: mail.body == Some(Body::EightBitMime),
            declared_size: mail.size,
        });
        self.reply(Reply::ok())
    }
}
