//! What the two SMTP ports do with a session: the submission port authenticates users and
//! queues their messages (the sender must own MAIL FROM and every From address); the relay
//! port takes mail for our users from other HISPs and opens it at once (or spools it
//! sealed). Both answer `250` only after the store has committed the message.

use crate::auth::Checked;
use crate::context::Context;
use crate::metrics::Metrics;
use hisp_direct::mime::{self, Entity};
use hisp_direct::notification::NotificationRequest;
use hisp_smtp::{AuthOutcome, Envelope, Handler, Reply, SessionInfo};
use hisp_store::{NewInbound, NewOutbound, OutKind, Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;

/// Put `head` before `body` in place: a large message is moved within its buffer (or
/// the allocator remaps it), never copied to a second one.
fn prepend(body: &mut Vec<u8>, head: &[u8]) {
    if !head.is_empty() {
        body.splice(0..0, head.iter().copied());
    }
}

/// The submission port (RFC 6409).
pub struct Submission<S: Store>(pub Arc<Context<S>>);

/// The relay port (mail from other HISPs).
pub struct Relay<S: Store>(pub Arc<Context<S>>);

/// Check a user's password (crate::auth: off the reactor, a few at a time, and refused
/// unchecked for an account or a client address locked by repeated failures).
pub async fn check_password<S: Store>(
    ctx: &Context<S>,
    client: Option<IpAddr>,
    user: &str,
    password: &str,
) -> Checked {
    if let Some(left) = ctx.auth.locked(user, client, ctx.now()) {
        Metrics::inc(&ctx.metrics.auth_locked);
        return Checked::Locked(left);
    }
    let hash = match ctx.store.user_password_hash(user).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "user lookup failed");
            return Checked::Unavailable;
        }
    };
    match ctx.auth.verify(hash, password).await {
        Some(true) => {
            ctx.auth.succeeded(user);
            Checked::Accepted(user.to_ascii_lowercase())
        }
        Some(false) => {
            Metrics::inc(&ctx.metrics.auth_failures);
            let locks = ctx.auth.failed(user, client, ctx.now());
            let detail = match (locks.account, locks.address) {
                (true, true) => "wrong password; the account and the client address are now locked",
                (true, false) => "wrong password; the account is now locked",
                (false, true) => "wrong password; the client address is now locked",
                (false, false) => "wrong password (or no such account)",
            };
            let act = crate::audit::Act {
                actor: user,
                action: "login-failed",
                object: user.to_ascii_lowercase(),
                client,
                detail: detail.into(),
            };
            crate::audit::record(ctx, act).await;
            if locks.account {
                tracing::warn!(
                    user,
                    failures = crate::auth::MAX_FAILURES,
                    locked_s = crate::auth::WINDOW_S,
                    "account locked after repeated failed logins: attempts are refused unchecked until the window ends"
                );
            }
            if locks.address {
                tracing::warn!(
                    client = ?client,
                    failures = crate::auth::MAX_ADDRESS_FAILURES,
                    locked_s = crate::auth::WINDOW_S,
                    "client address locked after repeated failed logins (any accounts): its attempts are refused unchecked until the window ends"
                );
            }
            Checked::Rejected
        }
        None => Checked::Unavailable,
    }
}

/// A plausible address: `local@domain` with a domain name.
fn valid_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && crate::config::is_domain_name(domain),
        None => false,
    }
}

impl<S: Store> Handler for Submission<S> {
    async fn authenticate(&self, session: &SessionInfo, user: &str, password: &str) -> AuthOutcome {
        match check_password(&self.0, Some(session.peer.ip()), user, password).await {
            Checked::Accepted(u) => AuthOutcome::Accepted(u),
            Checked::Rejected => AuthOutcome::Rejected,
            // 454 4.7.0 (RFC 4954 §6): try again later.
            Checked::Locked(_) | Checked::Unavailable => AuthOutcome::TempFail,
        }
    }

    async fn mail_from(&self, session: &SessionInfo, reverse_path: &str) -> Result<(), Reply> {
        let user = session.user.as_deref().ok_or_else(Reply::auth_required)?;
        if !mime::same_address(user, reverse_path) {
            return Err(Reply::sender_not_owned(reverse_path));
        }
        // A session authenticated before the operator removed the user must not go on
        // sending as them (the REST API checks every request the same way).
        match self.0.is_user(user).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reply::new(
                530,
                Some((5, 7, 0)),
                format!("<{user}> no longer has an account here; authenticate again"),
            )),
            Err(e) => Err(store_failure(&e, "cannot look up the sender's account")),
        }
    }

    async fn rcpt_to(
        &self,
        _: &SessionInfo,
        _: &Envelope,
        forward_path: &str,
    ) -> Result<(), Reply> {
        if valid_address(forward_path) {
            Ok(())
        } else {
            Err(Reply::bad_args(&format!(
                "<{forward_path}> is not an address"
            )))
        }
    }

    async fn data(
        &self,
        session: &SessionInfo,
        env: &Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        let user = session.user.as_deref().ok_or_else(Reply::auth_required)?;
        let ctx = &self.0;
        let submitted = prepare_submission(ctx, user, message)?;
        let message_id = submitted.message_id.clone();
        let new = NewOutbound {
            sender: user.to_ascii_lowercase(),
            message_id: submitted.message_id,
            recipients: env.rcpt_to.iter().map(|r| r.to_ascii_lowercase()).collect(),
            body: submitted.body,
            wants_dispatched: submitted.wants_dispatched,
            kind: OutKind::Message,
            via: "smtp".into(),
            now: ctx.now(),
        };
        let id = queue_submission(ctx, new).await?;
        let rcpts = env.rcpt_to.len();
        let client = Some(session.peer.ip());
        let act = crate::audit::Act::submit(user, &id, &message_id, "SMTP", rcpts, client);
        crate::audit::record(ctx, act).await;
        Ok(id)
    }
}

/// A submitted message checked and completed (Message-ID and Date added if missing,
/// RFC 6409 §8).
pub struct Submitted {
    /// The message to queue.
    pub body: Vec<u8>,
    /// Its Message-ID.
    pub message_id: String,
    /// The sender asked for final-destination delivery notification.
    pub wants_dispatched: bool,
}

/// Check that every From mailbox is `user`, and complete the header.
pub fn prepare_submission<S: Store>(
    ctx: &Context<S>,
    user: &str,
    message: Vec<u8>,
) -> Result<Submitted, Reply> {
    let e = Entity::parse(&message);
    let froms: Vec<String> = e
        .headers
        .get_all("From")
        .iter()
        .flat_map(|f| mime::parse_address_list(f))
        .map(|m| m.address)
        .collect();
    if froms.is_empty() {
        return Err(Reply::bad_message("no From address"));
    }
    if let Some(other) = froms.iter().find(|f| !mime::same_address(f, user)) {
        return Err(Reply::from_not_owned(other));
    }
    let wants_dispatched =
        NotificationRequest::read(&message).is_some_and(|r| r.final_destination_delivery);
    let now = ctx.now();
    let mut added = Vec::new();
    let message_id = match e.headers.get("Message-ID").filter(|v| !v.is_empty()) {
        Some(id) => id,
        None => {
            let id = crate::notify::new_message_id(&ctx.config.server.hostname, now);
            added.extend_from_slice(format!("Message-ID: {id}\r\n").as_bytes());
            id
        }
    };
    if e.headers.get("Date").is_none() {
        added.extend_from_slice(
            format!("Date: {}\r\n", hisp_direct::time::format_rfc5322(now)).as_bytes(),
        );
    }
    let mut body = message;
    prepend(&mut body, &added);
    Ok(Submitted {
        body,
        message_id,
        wants_dispatched,
    })
}

/// The reply when the store cannot take a message, logged with the cause: `452 4.3.1` when
/// the disk holding the store is full (RFC 3463 "mail system full": the operator must free
/// space; clients keep the message and retry), else `451 4.3.0`.
fn store_failure(e: &StoreError, what: &str) -> Reply {
    if e.is_storage_full() {
        tracing::error!(error = %e, "{what}: the disk holding the store is full; free space there (clients retry)");
        Reply::insufficient_storage()
    } else {
        tracing::error!(error = %e, "{what}");
        Reply::storage_failure()
    }
}

/// Queue a submission durably (and start delivering it).
pub async fn queue_submission<S: Store>(
    ctx: &Arc<Context<S>>,
    new: NewOutbound,
) -> Result<String, Reply> {
    match crate::outbound::queue(ctx, new).await {
        Ok(id) => {
            Metrics::inc(&ctx.metrics.accepted_submission);
            Ok(id.0)
        }
        Err(e) => Err(store_failure(&e, "cannot queue a submitted message")),
    }
}

impl<S: Store> Handler for Relay<S> {
    async fn authenticate(&self, _: &SessionInfo, _: &str, _: &str) -> AuthOutcome {
        AuthOutcome::Rejected
    }

    async fn mail_from(&self, _: &SessionInfo, _: &str) -> Result<(), Reply> {
        Ok(())
    }

    async fn rcpt_to(
        &self,
        session: &SessionInfo,
        _: &Envelope,
        forward_path: &str,
    ) -> Result<(), Reply> {
        let ctx = &self.0;
        let (client, now) = (session.peer.ip(), ctx.now());
        // Locked, every answer is the same, so trying names tells nothing (crate::harvest).
        if let Some(left) = ctx.harvest.locked(client, now) {
            Metrics::inc(&ctx.metrics.rcpt_locked);
            return Err(Reply::new(
                450,
                Some((4, 7, 1)),
                format!("too many refused recipients from your address; try again in {left} s"),
            ));
        }
        let verdict = if !ctx.directory().is_local(forward_path) {
            Err(Reply::relay_denied(forward_path))
        } else {
            match ctx.is_user(forward_path).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Reply::unknown_user(forward_path)),
                Err(e) => Err(store_failure(&e, "cannot look up a recipient")),
            }
        };
        if verdict.as_ref().is_err_and(Reply::is_permanent) && ctx.harvest.refused(client, now) {
            tracing::warn!(
                client = %client,
                refused = ctx.config.smtp.max_refused_recipients_per_ip,
                locked_s = crate::harvest::WINDOW_S,
                "client address locked after repeated refused recipients (directory harvesting?): its RCPTs get 450 until the window ends"
            );
        }
        verdict
    }

    async fn data(
        &self,
        session: &SessionInfo,
        env: &Envelope,
        message: Vec<u8>,
    ) -> Result<String, Reply> {
        let ctx = &self.0;
        // RFC 5321 §4.4: every hop adds its trace line (outside the S/MIME envelope, so the
        // signature is unaffected).
        let trace = format!(
            "Received: from {} ([{}]) by {} with {}; {}\r\n",
            session.helo.as_deref().unwrap_or("unknown"),
            session.peer.ip(),
            ctx.config.server.hostname,
            if session.tls { "ESMTPS" } else { "ESMTP" },
            hisp_direct::time::format_rfc5322(ctx.now())
        );
        let mut body = message;
        prepend(&mut body, trace.as_bytes());
        let new = NewInbound {
            mail_from: env.mail_from.to_ascii_lowercase(),
            rcpts: env.rcpt_to.iter().map(|r| r.to_ascii_lowercase()).collect(),
            body,
            peer: session.peer.to_string(),
            now: ctx.now(),
        };
        // With the workers running, mail up to spill::LARGE is opened and committed with
        // its outcome before `250`; larger mail (and all of it in hand-stepped tests) is
        // spooled for the inbound workers, so a big message is not held twice in memory.
        let result = if ctx.immediate && new.body.len() <= crate::spill::LARGE {
            crate::inbound::receive(ctx, new).await
        } else {
            let spooled = ctx.store.spool_inbound(new).await;
            ctx.wake_inbound.notify_one();
            spooled
        };
        match result {
            Ok(id) => {
                Metrics::inc(&ctx.metrics.accepted_relay);
                Ok(id.0)
            }
            Err(e) => Err(store_failure(&e, "cannot accept an inbound message")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store_failure;
    use hisp_store::StoreError;

    /// RFC 3463 §3.4: X.3.1 "mail system full" for a full disk, whether SQLite saw it or a
    /// body file did; any other store failure stays the generic transient 451 4.3.0.
    #[test]
    fn rfc3463_3_4_a_full_store_is_452_4_3_1() {
        let sqlite_full = StoreError::Database {
            what: "committing a write batch",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ),
        };
        let file_full = StoreError::Io {
            what: "writing a message body file",
            source: std::io::Error::from_raw_os_error(28), // ENOSPC
        };
        let quota = StoreError::Io {
            what: "writing a message body file",
            source: std::io::Error::from_raw_os_error(122), // EDQUOT
        };
        for e in [sqlite_full, file_full, quota] {
            let r = store_failure(&e, "test");
            assert_eq!((r.code, r.status), (452, Some((4, 3, 1))), "{e}");
        }
        let other = StoreError::Io {
            what: "reading",
            source: std::io::Error::from_raw_os_error(5), // EIO
        };
        let r = store_failure(&other, "test");
        assert_eq!((r.code, r.status), (451, Some((4, 3, 0))));
        assert_eq!(store_failure(&StoreError::Closed, "test").code, 451);
    }
}
