//! Recording the access audit trail (HIPAA Security Rule §164.312(b)): the REST edge's
//! reads and pickups, submissions over SMTP and REST, and failed logins, each with who,
//! what, when and from where. A read of a message is served only once its row is durable
//! (no unaudited access to PHI); the other rows are written after the act, and a failure
//! to write one is logged rather than undoing it.

use crate::context::Context;
use hisp_store::{NewAudit, Store};
use std::net::IpAddr;

/// What to record; `at` is the context's clock.
pub struct Act<'a> {
    /// Who (an address).
    pub actor: &'a str,
    /// What (`fetch`, `pickup`, `submit`, `login-failed`).
    pub action: &'a str,
    /// What it was done to.
    pub object: String,
    /// From where.
    pub client: Option<IpAddr>,
    /// More (a Message-ID, the outcome).
    pub detail: String,
}

impl<'a> Act<'a> {
    /// `action` on a user's mailbox entry `id` (a message with `message_id`).
    pub fn on_entry(
        actor: &'a str,
        action: &'a str,
        id: i64,
        message_id: &str,
        client: Option<IpAddr>,
    ) -> Act<'a> {
        Act {
            actor,
            action,
            object: format!("mailbox entry {id}"),
            client,
            detail: message_id.to_string(),
        }
    }

    /// A message `message_id` submitted `via` SMTP or REST to `rcpts` recipients, queued
    /// as `queue_id`.
    pub fn submit(
        actor: &'a str,
        queue_id: &str,
        message_id: &str,
        via: &str,
        rcpts: usize,
        client: Option<IpAddr>,
    ) -> Act<'a> {
        Act {
            actor,
            action: "submit",
            object: queue_id.to_string(),
            client,
            detail: format!("{message_id} over {via} to {rcpts} recipient(s)"),
        }
    }
}

/// Record `act`; false (with a warning naming why) when it could not be.
pub async fn record<S: Store>(ctx: &Context<S>, act: Act<'_>) -> bool {
    let row = NewAudit {
        at: ctx.now(),
        actor: act.actor.to_ascii_lowercase(),
        action: act.action.to_string(),
        object: act.object,
        client: act.client.map(|c| c.to_string()),
        detail: act.detail,
    };
    match ctx.store.add_audit(row).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, action = act.action, "cannot record an audit event");
            false
        }
    }
}
