//! STARTTLS (RFC 3207). Plaintext the client pipelined after the command is never read as
//! if it came over TLS (RFC 3207 §4.2, the CVE-2011-0411 command-injection class): we
//! refuse such a client with 554 and close. After the handshake the session forgets all it
//! was told in plaintext (EHLO name, transaction, login) and waits for a new EHLO.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use super::{Flow, Session, Txn};
use crate::{Handler, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// STARTTLS: 220, flush, handshake, reset.
    pub(super) async fn handle_starttls(&mut self) -> std::io::Result<Flow> {
        if self.conn.is_tls() {
            return Ok(self.refuse(Reply::bad_sequence("TLS already active")));
        }
        let Some(acceptor) = self.cfg.tls.as_ref().map(|slot| slot.current()) else {
            return Ok(self.refuse(Reply::tls_unavailable()));
        };
        if let Err(reply) = self.require_helo() {
            return Ok(self.refuse(reply));
        }
        if self.conn.has_buffered() {
            debug!("plaintext pipelined after STARTTLS");
            return Ok(self.close_with(Reply::sync_error()));
        }
        self.conn.queue(&Reply::ready_tls());
        self.conn.flush().await?;
        if let Err(e) = self
            .conn
            .start_tls(&acceptor, self.cfg.command_timeout)
            .await
        {
            debug!(cause = %e, "STARTTLS handshake failed");
            return Ok(Flow::Close);
        }
        info!("TLS established");
        self.txn = Txn::NoHelo;
        self.info.helo = None;
        self.info.user = None;
        self.info.tls = true;
        Ok(Flow::Continue)
    }
}
