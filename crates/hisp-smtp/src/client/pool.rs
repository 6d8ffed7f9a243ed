//! Connection reuse (RFC 5321 §4.1.4: several transactions per session). Each delivery to a
//! busy peer would otherwise pay a TCP connect, two EHLOs and a TLS handshake, the last
//! costing the peer an RSA signature: as much as opening the message itself.

use super::{finish, open_session, send_mail, ClientError, Content, Delivery, Session};
use crate::{ClientConfig, Envelope};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle sessions per target, reused for later deliveries.
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<(Session, Instant)>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle", &self.max_idle)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Keep up to `max_idle` sessions per target, each for at most `idle_timeout` (well under
    /// a server's own idle timeout: RFC 5321 §4.5.3.2.7 says at least 5 minutes).
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
        }
    }

    fn take(&self, target: &str) -> Option<Session> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(target)?;
        while let Some((s, since)) = list.pop() {
            if since.elapsed() < self.idle_timeout {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, target: &str, session: Session) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(target.to_string()).or_default();
            list.retain(|(_, since)| since.elapsed() < self.idle_timeout);
            if list.len() < self.max_idle {
                list.push((session, Instant::now()));
            }
        }
    }

    /// Deliver as [`super::deliver`] does, on an idle session to `target` when there is one.
    /// A reused session that turns out dead before MAIL was answered is replaced by a fresh
    /// one at once (nothing was sent); any later failure is reported, as for a new session.
    pub async fn deliver(
        &self,
        target: &str,
        cfg: &ClientConfig,
        envelope: &Envelope,
        message: Content<'_>,
    ) -> Result<Delivery, ClientError> {
        if let Some(mut session) = self.take(target) {
            let outcome = send_mail(&mut session, cfg, envelope, message).await;
            // A server that timed the idle session out answers 421 or has closed it.
            let stale = match &outcome {
                Err(
                    ClientError::Io { stage, .. }
                    | ClientError::Timeout { stage }
                    | ClientError::BadReply { stage, .. },
                ) => *stage == "MAIL FROM",
                Err(ClientError::Rejected { stage, reply }) => {
                    *stage == "MAIL FROM" && reply.code == 421
                }
                _ => false,
            };
            if !stale {
                if let Some(s) = finish(session, cfg, &outcome, true).await {
                    self.give_back(target, s);
                }
                return outcome;
            }
        }
        let mut session = open_session(target, cfg, None).await?;
        let outcome = send_mail(&mut session, cfg, envelope, message).await;
        if let Some(s) = finish(session, cfg, &outcome, true).await {
            self.give_back(target, s);
        }
        outcome
    }
}
