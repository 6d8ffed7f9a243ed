//! The edge's REST API (first form, `/api/v1`), with the user's credentials in HTTP Basic:
//! list the mailbox, fetch a message as RFC 5322, mark it picked up (which sends the
//! `dispatched` MDN when the sender asked for final-destination delivery), submit a
//! message, and follow an outbound message's timeline. Also `/metrics` and `/healthz`.

use crate::audit::Act;
use crate::auth::Checked;
use crate::context::Context;
use crate::notify::{mdn, Received};
use crate::smtp_handler::{check_password, prepare_submission, queue_submission};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hisp_direct::mdn::Disposition;
use hisp_store::{EntryKind, NewOutbound, OutKind, QueueId, Store};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared state of the HTTP server.
pub struct Http<S: Store> {
    ctx: Arc<Context<S>>,
    /// Verified (user, SHA-256 of password) pairs, when they lapse, and the directory
    /// version they were checked under: Argon2 per request would cost tens of milliseconds
    /// each, and a user removed or given a new password (which changes the version) must
    /// not stay let in by an earlier check.
    verified: Mutex<HashMap<Login, Verified>>,
}

/// A user and the SHA-256 of the password given.
type Login = (String, [u8; 32]);
/// When a successful check lapses, and the directory version it was made under.
type Verified = (i64, u64);

/// The router.
pub fn router<S: Store>(ctx: Arc<Context<S>>) -> Router {
    let state = Arc::new(Http {
        ctx,
        verified: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/api/v1/messages", get(list::<S>).post(submit::<S>))
        .route("/api/v1/messages/:id", get(fetch::<S>))
        .route("/api/v1/messages/:id/pickup", post(pickup::<S>))
        .route("/api/v1/outbound/:id", get(outbound::<S>))
        .with_state(state)
}

type St<S> = State<Arc<Http<S>>>;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn healthz<S: Store>(State(h): St<S>) -> Response {
    match h.ctx.store.directory_version().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("store unavailable: {e}"),
        ),
    }
}

async fn metrics<S: Store>(State(h): St<S>) -> Response {
    let depth = h.ctx.store.queue_depth().await.unwrap_or(0);
    let mut text = h.ctx.metrics.render(depth);
    crate::metrics::render_data_budget(&h.ctx.data_budget, &mut text);
    crate::metrics::render_suspended(h.ctx.destinations.suspended(), &mut text);
    let dir = h.ctx.directory();
    let tls = h.ctx.tls_expiry.load(std::sync::atomic::Ordering::Relaxed);
    crate::metrics::render_cert_expiry(&dir.cert_expiries(), tls, &mut text);
    if let Some(d) = &h.ctx.discovery {
        use std::sync::atomic::Ordering::Relaxed;
        text.push_str(&format!(
            "# HELP hisp_discovery_lookups_total Certificate discoveries, by cache result.\n\
             # TYPE hisp_discovery_lookups_total counter\n\
             hisp_discovery_lookups_total{{cache=\"hit\"}} {}\n\
             hisp_discovery_lookups_total{{cache=\"miss\"}} {}\n",
            d.hits.load(Relaxed),
            d.misses.load(Relaxed)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The user a request is authenticated as (HTTP Basic), taken before anything else of it,
/// so no handler that names it sees a request without valid credentials.
struct Caller(String, Option<IpAddr>);

#[axum::async_trait]
impl<S: Store> FromRequestParts<Arc<Http<S>>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, h: &Arc<Http<S>>) -> Result<Caller, Response> {
        // Set by the listener (http_serve); absent only when the router is driven directly.
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user = user(h, &parts.headers, client).await?;
        Ok(Caller(user, client))
    }
}

/// The authenticated user, or the 401 (429 when locked) to send.
async fn user<S: Store>(
    h: &Http<S>,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<String, Response> {
    let deny = || {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "authentication required (HTTP Basic, your Direct address and password)",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"hisp\""),
        );
        r
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(deny)?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(deny)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| deny())?;
    let text = String::from_utf8(decoded).map_err(|_| deny())?;
    let (name, password) = text.split_once(':').ok_or_else(deny)?;
    let key = (
        name.to_ascii_lowercase(),
        openssl::sha::sha256(password.as_bytes()),
    );
    let now = h.ctx.now();
    let version = h.ctx.directory().version;
    if h.verified
        .lock()
        .ok()
        .and_then(|m| m.get(&key).copied())
        .is_some_and(|(until, checked)| until > now && checked == version)
    {
        return Ok(key.0);
    }
    match check_password(&h.ctx, client, name, password).await {
        Checked::Accepted(u) => {
            if let Ok(mut m) = h.verified.lock() {
                m.retain(|_, (until, checked)| *until > now && *checked == version);
                m.insert(key, (now + 300, version));
            }
            Ok(u)
        }
        Checked::Unavailable => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "authentication unavailable, retry",
        )),
        // RFC 6585 §4, with the time left (RFC 9110 §10.2.3).
        Checked::Locked(left) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many failed logins for this account or from your address: try again in {left} s (or ask the HISP's operator)"
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(left));
            Err(r)
        }
        Checked::Rejected => {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            Err(deny())
        }
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    /// Entries after this id (the previous page's last).
    #[serde(default)]
    after: i64,
    /// At most this many ([`PAGE`] when not given, never more than [`PAGE_MAX`]).
    limit: Option<usize>,
}

/// Entries a listing gives when the client does not say, and the most it may ask for: an
/// edge that was away for a week must not get its whole mailbox in one answer.
const PAGE: usize = 500;
const PAGE_MAX: usize = 5000;

async fn list<S: Store>(
    State(h): St<S>,
    Caller(user, _): Caller,
    Query(q): Query<ListQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(PAGE).clamp(1, PAGE_MAX);
    match h.ctx.store.mailbox_page(&user, q.all, q.after, limit).await {
        Ok(items) => {
            let messages: Vec<_> = items.iter().map(crate::report::entry_json).collect();
            // A full page may have more behind it: say where the next one starts.
            let next = items.last().filter(|_| items.len() == limit).map(|last| {
                let all = if q.all { "&all=true" } else { "" };
                format!("/api/v1/messages?after={}&limit={limit}{all}", last.id)
            });
            Json(json!({ "messages": messages, "next": next })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn fetch<S: Store>(
    State(h): St<S>,
    Caller(user, client): Caller,
    Path(id): Path<i64>,
) -> Response {
    match h.ctx.store.mailbox_entry(&user, id).await {
        Ok(Some(e)) => {
            // No unaudited read of a message: its row is durable before the body goes out.
            let act = Act::on_entry(&user, "fetch", id, &e.message_id, client);
            if !crate::audit::record(&h.ctx, act).await {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the access could not be recorded in the audit trail; try again",
                );
            }
            ([(header::CONTENT_TYPE, "message/rfc822")], e.body).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such message in your mailbox"),
        Err(hisp_store::StoreError::NotFound {
            what: "mailbox body",
            ..
        }) => error(
            StatusCode::GONE,
            "its content was removed after it was picked up (retention.keep_picked_up_bodies)",
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn pickup<S: Store>(
    State(h): St<S>,
    Caller(user, client): Caller,
    Path(id): Path<i64>,
) -> Response {
    let ctx = &h.ctx;
    let now = ctx.now();
    let entry = match ctx.store.mark_picked_up(&user, id, now).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return error(
                StatusCode::CONFLICT,
                "no such message, or already picked up",
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let act = Act::on_entry(&user, "pickup", id, &entry.message_id, client);
    crate::audit::record(ctx, act).await;
    let mut dispatched = false;
    if entry.kind == EntryKind::Message && entry.wants_dispatched {
        let r = Received {
            rcpt: &user,
            sender: &entry.from,
            message_id: &entry.message_id,
            subject: Some(&entry.subject),
        };
        let note: NewOutbound = mdn(
            &ctx.config.server.hostname,
            &r,
            Disposition::dispatched(),
            true,
            now,
        );
        if let Err(e) = crate::outbound::queue(ctx, note).await {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("picked up, but the dispatched MDN could not be queued: {e}"),
            );
        }
        crate::metrics::Metrics::inc(&ctx.metrics.mdn_sent);
        dispatched = true;
    }
    Json(json!({ "id": id, "picked_up": true, "dispatched_mdn": dispatched })).into_response()
}

/// The `rcpt` parameters of a query string (repeatable, percent-encoded).
fn rcpt_params(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "rcpt")
        .map(|(_, v)| percent_decode(v))
        .filter(|v| !v.is_empty())
        .collect()
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How long a submission's body may take to arrive, all of it: what SMTP allows for DATA
/// (RFC 5321 §4.5.3.2.6), so a client trickling bytes cannot hold a connection for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(600);

/// Reads a request body of at most `max` bytes within [`BODY_TIMEOUT`]: `413` when it is
/// larger or says it is (nothing is read then), `408` when it is too slow, `400` when it
/// breaks off.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, Response> {
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body took over {}s to arrive",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// `Caller` comes before the body: a stranger's body is never read, so no one unknown can
/// make us hold max_message_bytes per connection, or hold a connection with a slow body.
async fn submit<S: Store>(
    State(h): St<S>,
    Caller(user, client): Caller,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Body,
) -> Response {
    let ctx = &h.ctx;
    let max = ctx.config.smtp.max_message_bytes;
    let body = match read_body(&headers, body, max).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut rcpts = rcpt_params(query.as_deref());
    if rcpts.is_empty() {
        rcpts = crate::inbound::recipients_of(&body);
    }
    if rcpts.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "no recipients: give rcpt= parameters or To/Cc headers",
        );
    }
    let submitted = match prepare_submission(ctx, &user, body.to_vec()) {
        Ok(s) => s,
        Err(reply) => return error(StatusCode::UNPROCESSABLE_ENTITY, &reply.to_string()),
    };
    let new = NewOutbound {
        sender: user.clone(),
        message_id: submitted.message_id.clone(),
        recipients: rcpts.iter().map(|r| r.to_ascii_lowercase()).collect(),
        body: submitted.body,
        wants_dispatched: submitted.wants_dispatched,
        kind: OutKind::Message,
        via: "rest".into(),
        now: ctx.now(),
    };
    let count = new.recipients.len();
    match queue_submission(ctx, new).await {
        Ok(id) => {
            let act = Act::submit(&user, &id, &submitted.message_id, "REST", count, client);
            crate::audit::record(ctx, act).await;
            (
                StatusCode::ACCEPTED,
                Json(json!({ "queue_id": id, "message_id": submitted.message_id })),
            )
                .into_response()
        }
        // The SMTP reply says why: a full store is 507, anything else 503 (try again).
        Err(reply) if reply.code == 452 => {
            error(StatusCode::INSUFFICIENT_STORAGE, &reply.to_string())
        }
        Err(reply) => error(StatusCode::SERVICE_UNAVAILABLE, &reply.to_string()),
    }
}

async fn outbound<S: Store>(
    State(h): St<S>,
    Caller(user, _): Caller,
    Path(id): Path<String>,
) -> Response {
    let id = QueueId(id);
    let msg = match h.ctx.store.outbound(&id).await {
        Ok(Some(m)) if m.sender.eq_ignore_ascii_case(&user) => m,
        Ok(_) => return error(StatusCode::NOT_FOUND, "no such message of yours"),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let events = h.ctx.store.events(&id).await.unwrap_or_default();
    Json(crate::report::message_json(&msg, &events)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    #[test]
    fn rfc3986_repeated_and_encoded_rcpt_parameters() {
        let q = Some("rcpt=a%40b.example&x=1&rcpt=c@d.example&rcpt=");
        assert_eq!(super::rcpt_params(q), ["a@b.example", "c@d.example"]);
        assert!(super::rcpt_params(None).is_empty());
    }

    /// A client that sent its head and then nothing more.
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    fn declaring(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.into());
        h
    }

    async fn status(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, StatusCode> {
        read_body(headers, body, max).await.map_err(|r| r.status())
    }

    /// RFC 9110 §15.5.14 (413) and §15.5.9 (408): a body declared over the limit is refused
    /// unread, one that runs over it as soon as it does, one that stops coming when
    /// BODY_TIMEOUT lapses; a body within the limit is read whole.
    #[tokio::test(start_paused = true)]
    async fn rfc9110_body_over_the_limit_or_too_slow_is_refused() {
        let none = HeaderMap::new();
        let big = status(&declaring(11), Body::new(Stalled), 10).await;
        assert_eq!(big, Err(StatusCode::PAYLOAD_TOO_LARGE));
        let grew = status(&none, Body::from(vec![b'a'; 11]), 10).await;
        assert_eq!(grew, Err(StatusCode::PAYLOAD_TOO_LARGE));
        let started = tokio::time::Instant::now();
        let slow = status(&declaring(5), Body::new(Stalled), 10).await;
        assert_eq!(slow, Err(StatusCode::REQUEST_TIMEOUT));
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
        let ok = status(&declaring(10), Body::from(vec![b'a'; 10]), 10).await;
        assert_eq!(ok.as_deref(), Ok(&[b'a'; 10][..]));
    }
}
