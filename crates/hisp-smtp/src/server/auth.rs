//! AUTH (RFC 4954) on the submission port only, and only over TLS (RFC 6409 §4.3): PLAIN
//! (RFC 4616: `authzid NUL authcid NUL passwd`, with or without an initial response) and
//! LOGIN (`334 Username:` / `334 Password:`). A failed attempt is answered late
//! (`auth_failure_delay`) and counted; too many end the session. The password check itself
//! is [`Handler::authenticate`]'s. Passwords are never logged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use super::conn::Line;
use super::parse::Mechanism;
use super::{Flow, Reading, Session, Txn};
use crate::{AuthOutcome, Handler, PortKind, Reply};

/// `Username:` in base64, the LOGIN mechanism's first challenge.
const USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
/// `Password:` in base64.
const PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Which SASL response we wait for after a `334`.
#[derive(Debug)]
pub(crate) enum SaslStep {
    /// The PLAIN response.
    Plain,
    /// LOGIN's user name.
    LoginUser,
    /// LOGIN's password, for this user.
    LoginPassword {
        /// The user name already given.
        user: String,
    },
}

impl<S, H> Session<S, H>
where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// AUTH: checks it is allowed now, then starts the exchange.
    pub(super) async fn handle_auth(
        &mut self,
        mechanism: Mechanism,
        initial_response: Option<String>,
    ) -> std::io::Result<Flow> {
        if self.cfg.kind == PortKind::Relay {
            return Ok(self.refuse(Reply::not_implemented("AUTH")));
        }
        if !self.conn.is_tls() {
            return Ok(self.refuse(Reply::tls_required()));
        }
        if let Err(reply) = self.require_helo() {
            return Ok(self.refuse(reply));
        }
        if self.info.user.is_some() {
            return Ok(self.refuse(Reply::bad_sequence("already authenticated")));
        }
        if matches!(self.txn, Txn::Mail(_) | Txn::Rcpt(_)) {
            return Ok(self.refuse(Reply::bad_sequence("AUTH during a mail transaction")));
        }
        let (step, prompt) = match mechanism {
            Mechanism::Plain => (SaslStep::Plain, ""),
            Mechanism::Login => (SaslStep::LoginUser, USERNAME_PROMPT),
        };
        match initial_response {
            Some(response) => self.sasl_response(step, response.as_bytes()).await,
            None => {
                self.reading = Reading::Sasl(step);
                Ok(self.reply(Reply::auth_challenge(prompt)))
            }
        }
    }

    /// Reads the client's answer to a `334` challenge.
    pub(super) async fn read_sasl(&mut self, step: SaslStep) -> std::io::Result<Flow> {
        let max = self.cfg.max_command_line;
        let response = match self.read_line(max, true).await? {
            Ok(Line::Ready(n)) => {
                let line = self.conn.buffered().get(..n).unwrap_or_default();
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line
                    .strip_suffix(b"\r")
                    .unwrap_or(line)
                    .trim_ascii()
                    .to_vec();
                self.conn.consume(n);
                line
            }
            // RFC 4954 §4: 500 5.5.6 for an authentication line that is too long.
            Ok(Line::TooLong { .. }) => return Ok(self.refuse(Reply::line_too_long(max))),
            Err(flow) => return Ok(flow),
        };
        if response == b"*" {
            return Ok(self.reply(Reply::auth_cancelled()));
        }
        self.sasl_response(step, &response).await
    }

    async fn sasl_response(&mut self, step: SaslStep, response: &[u8]) -> std::io::Result<Flow> {
        let decoded = match response {
            b"=" => Vec::new(),
            _ => match STANDARD.decode(response) {
                Ok(bytes) => bytes,
                Err(_) => return Ok(self.refuse(Reply::auth_malformed("not base64"))),
            },
        };
        match step {
            SaslStep::Plain => match parse_plain(&decoded) {
                Ok(plain) if plain.authzid.is_empty() || plain.authzid == plain.authcid => {
                    Ok(self.check_password(&plain.authcid, &plain.password).await)
                }
                // Acting as someone else is not offered: treat it as a failed login.
                Ok(plain) => Ok(self.auth_failed(&plain.authcid).await),
                Err(reply) => Ok(self.refuse(reply)),
            },
            SaslStep::LoginUser => match String::from_utf8(decoded) {
                Ok(user) if !user.is_empty() => {
                    self.reading = Reading::Sasl(SaslStep::LoginPassword { user });
                    Ok(self.reply(Reply::auth_challenge(PASSWORD_PROMPT)))
                }
                _ => Ok(self.refuse(Reply::auth_malformed("bad user name"))),
            },
            SaslStep::LoginPassword { user } => match String::from_utf8(decoded) {
                Ok(password) => Ok(self.check_password(&user, &password).await),
                Err(_) => Ok(self.refuse(Reply::auth_malformed("password is not UTF-8"))),
            },
        }
    }

    async fn check_password(&mut self, user: &str, password: &str) -> Flow {
        match self.handler.authenticate(&self.info, user, password).await {
            AuthOutcome::Accepted(name) => {
                info!(user = %name, "authenticated");
                self.info.user = Some(name);
                self.reply(Reply::auth_ok())
            }
            AuthOutcome::TempFail => self.reply(Reply::auth_temp()),
            AuthOutcome::Rejected => self.auth_failed(user).await,
        }
    }

    /// 535 after the delay; past `max_auth_failures`, 421 and close.
    async fn auth_failed(&mut self, user: &str) -> Flow {
        self.auth_failures += 1;
        info!(user, failures = self.auth_failures, "authentication failed");
        tokio::time::sleep(self.cfg.auth_failure_delay).await;
        self.conn.queue(&Reply::auth_failed());
        if self.auth_failures >= self.cfg.max_auth_failures {
            return self.close_with(Reply::too_many_auth_failures(&self.cfg.hostname));
        }
        Flow::Continue
    }
}

/// The three fields of a PLAIN response (RFC 4616 §2).
#[derive(Debug, PartialEq, Eq)]
struct Plain {
    authzid: String,
    authcid: String,
    password: String,
}

fn parse_plain(decoded: &[u8]) -> Result<Plain, Reply> {
    let fields: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
    let [authzid, authcid, password] = fields.as_slice() else {
        return Err(Reply::auth_malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec())
            .map_err(|_| Reply::auth_malformed("PLAIN fields must be UTF-8"))
    };
    let plain = Plain {
        authzid: text(authzid)?,
        authcid: text(authcid)?,
        password: text(password)?,
    };
    if plain.authcid.is_empty() {
        return Err(Reply::auth_malformed("empty user name"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4616_2_plain_fields() {
        let p = parse_plain(b"\0alice\0secret").unwrap();
        assert_eq!((p.authzid.as_str(), p.authcid.as_str()), ("", "alice"));
        assert_eq!(p.password, "secret");
        assert!(parse_plain(b"alice\0secret").is_err());
        assert!(parse_plain(b"\0\0secret").is_err());
        assert!(parse_plain(b"a\0b\0c\0d").is_err());
    }
}
