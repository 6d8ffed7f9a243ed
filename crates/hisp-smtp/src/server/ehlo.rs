//! EHLO and HELO (RFC 5321 §4.1.1.1): greet, reset any transaction, and list the extensions
//! this listener offers right now (RFC 1870 SIZE, RFC 2920 PIPELINING, RFC 6152 8BITMIME,
//! RFC 2034 ENHANCEDSTATUSCODES, RFC 3207 STARTTLS before TLS, RFC 4954 AUTH on the
//! submission port once TLS is up). No CHUNKING: BDAT is not implemented.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, Txn};
use crate::{Handler, PortKind, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// EHLO (`extended`) or HELO: both reset the transaction (RFC 5321 §4.1.4).
    pub(super) fn handle_ehlo(&mut self, client: String, extended: bool) -> Flow {
        self.txn = Txn::Ready;
        let reply = if extended {
            Reply::ehlo(&self.cfg.hostname, &client, &self.extensions())
        } else {
            Reply::helo(&self.cfg.hostname)
        };
        self.info.helo = Some(client);
        self.reply(reply)
    }

    fn extensions(&self) -> Vec<String> {
        let mut ext = vec![
            format!("SIZE {}", self.cfg.max_message_size),
            "PIPELINING".to_string(),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        let tls = self.conn.is_tls();
        if self.cfg.tls.is_some() && !tls {
            ext.push("STARTTLS".to_string());
        }
        // RFC 6409 §4.3 / RFC 4954 §4: passwords only over TLS, and only on submission.
        if self.cfg.kind == PortKind::Submission && tls && self.info.user.is_none() {
            ext.push("AUTH PLAIN LOGIN".to_string());
        }
        ext
    }
}
