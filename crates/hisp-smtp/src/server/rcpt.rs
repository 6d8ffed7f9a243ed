//! RCPT TO (RFC 5321 §4.1.1.3): one recipient at a time, each judged by the handler (on the
//! relay port it must be one of ours), at most `max_recipients` per transaction (RFC 5321
//! §4.5.3.1.8: answer 452 past the limit, the client sends the rest in another transaction).
//!
//! A session that has had `max_refused_recipients` recipients refused (5xx) without a
//! message taken since is closed with `421 4.7.0`, as Postfix's `smtpd_hard_error_limit`
//! does: otherwise one session could try address after address to learn who our users are
//! (a directory harvest). A message taken resets the count, so a peer whose pooled session
//! carries the odd unknown recipient now and then is never cut off. Before that, past a few
//! refusals each one more is answered a second late (`errors_before_delay`, `error_delay`).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, Txn};
use crate::{Handler, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// RCPT TO: adds a recipient to the open transaction.
    pub(super) async fn handle_rcpt(&mut self, forward_path: String) -> Flow {
        let envelope = match &self.txn {
            Txn::Mail(e) | Txn::Rcpt(e) => e,
            Txn::NoHelo | Txn::Ready => {
                return self.refuse(Reply::bad_sequence("need MAIL before RCPT"))
            }
        };
        if envelope.rcpt_to.len() >= self.cfg.max_recipients {
            return self.reply(Reply::too_many_recipients(self.cfg.max_recipients));
        }
        let verdict = self
            .handler
            .rcpt_to(&self.info, envelope, &forward_path)
            .await;
        if let Err(reply) = verdict {
            if reply.is_permanent() {
                self.refused_rcpts += 1;
                if self.refused_rcpts >= self.cfg.max_refused_recipients {
                    self.conn.queue(&reply);
                    return self.close_with(Reply::too_many_errors(&self.cfg.hostname));
                }
                self.slow_down_after_errors();
            }
            return self.reply(reply);
        }
        self.txn = match std::mem::replace(&mut self.txn, Txn::Ready) {
            Txn::Mail(mut e) | Txn::Rcpt(mut e) => {
                // A repeated recipient is accepted once (no double delivery).
                if !e.rcpt_to.contains(&forward_path) {
                    e.rcpt_to.push(forward_path);
                }
                Txn::Rcpt(e)
            }
            other => other,
        };
        self.reply(Reply::ok())
    }
}
