//! The small commands: RSET (RFC 5321 §4.1.1.5), NOOP (§4.1.1.9), VRFY (§4.1.1.6, always
//! 252 so addresses cannot be harvested, §3.5.3), HELP (§4.1.1.8) and QUIT (§4.1.1.10).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, Txn};
use crate::{Handler, Reply};

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// RSET: drop the transaction, keep the greeting (and TLS, and the login).
    pub(super) fn handle_rset(&mut self) -> Flow {
        if !matches!(self.txn, Txn::NoHelo) {
            self.txn = Txn::Ready;
        }
        self.reply(Reply::ok())
    }

    /// NOOP.
    pub(super) fn handle_noop(&mut self) -> Flow {
        self.reply(Reply::ok())
    }

    /// VRFY: never confirms or denies an address.
    pub(super) fn handle_vrfy(&mut self) -> Flow {
        self.reply(Reply::cannot_vrfy())
    }

    /// HELP.
    pub(super) fn handle_help(&mut self) -> Flow {
        self.reply(Reply::help())
    }

    /// QUIT: 221, then close.
    pub(super) fn handle_quit(&mut self) -> Flow {
        self.close_with(Reply::closing(&self.cfg.hostname))
    }
}
