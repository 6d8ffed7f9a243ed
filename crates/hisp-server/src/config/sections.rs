//! `[smtp]`, `[http]` and `[queue]`: where the daemon listens and how it retries. Durations
//! are written the way operators say them (`"2m"`, `"2h"`, `"5d"`) and parsed at load.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[smtp]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Where other HISPs deliver (port 25).
    #[serde(default = "default_relay")]
    pub relay_listen: SocketAddr,
    /// Where our users submit (port 587; STARTTLS and AUTH required).
    #[serde(default = "default_submission")]
    pub submission_listen: SocketAddr,
    /// TLS certificate for STARTTLS (PEM, chain after the leaf).
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
    /// Largest message accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most recipients per message.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Memory that all messages being received (in DATA, until committed) may hold at
    /// once, in bytes; past it a message gets `452 4.3.1` and its sender retries. Default:
    /// 1 GiB, or `max_message_bytes` when that is larger ([`SmtpConfig::data_memory`]).
    #[serde(default, rename = "data_memory")]
    pub data_memory_bytes: Option<usize>,
    /// Sessions at once from one client address (IPv6: one /64) on each port, loopback
    /// exempt (Postfix's `smtpd_client_connection_count_limit`).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Recipients refused on the relay port to one client address (IPv6: one /64), in all
    /// its sessions, within 10 minutes; past it, its RCPTs get `450 4.7.1` until the 10
    /// minutes end (`crate::harvest`). Loopback exempt.
    #[serde(default = "default_max_refused_recipients_per_ip")]
    pub max_refused_recipients_per_ip: u32,
    /// Local addresses to deliver from, at most one IPv4 and one IPv6 (Postfix's
    /// `smtp_bind_address`/`smtp_bind_address6`), for a host with several addresses whose
    /// peers allow only one; empty: the system picks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_addresses: Vec<std::net::IpAddr>,
    /// Require STARTTLS when delivering to other HISPs.
    #[serde(default)]
    pub require_tls_outbound: bool,
}

impl SmtpConfig {
    /// The bound on memory held by messages being received (`data_memory`, or its default).
    pub fn data_memory(&self) -> usize {
        self.data_memory_bytes
            .unwrap_or_else(|| (1 << 30).max(self.max_message_bytes))
    }
}

fn default_relay() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 25))
}
fn default_submission() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 587))
}
fn default_max_message_bytes() -> usize {
    50 << 20
}
fn default_max_connections_per_ip() -> usize {
    50
}
fn default_max_refused_recipients_per_ip() -> u32 {
    100
}
fn default_max_recipients() -> usize {
    100
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// REST API, `/metrics` and `/healthz`.
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
    /// HTTPS (TLS from the first byte) with the `[smtp]` certificate and key, renewed by
    /// SIGHUP as STARTTLS is. Required on an address other hosts can reach: the REST API
    /// carries users' passwords (HTTP Basic) and their messages.
    #[serde(default)]
    pub tls: bool,
    /// Connections served at once; one more is answered 503 (plain HTTP) or closed, so
    /// idle or slow clients cannot take every file descriptor.
    #[serde(default = "default_http_connections")]
    pub max_connections: usize,
    /// Connections at once from one client address (IPv6: one /64), loopback exempt; one
    /// more is answered 429 (plain HTTP) or closed, so one host cannot hold every slot.
    #[serde(default = "default_http_connections_per_ip")]
    pub max_connections_per_ip: usize,
}

fn default_http_connections() -> usize {
    1024
}
/// More than SMTP's 50: an edge gateway or a clinic behind one NAT address polls for many
/// users, each on its own kept-alive connection.
fn default_http_connections_per_ip() -> usize {
    100
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8025))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http(),
            tls: false,
            max_connections: default_http_connections(),
            max_connections_per_ip: default_http_connections_per_ip(),
        }
    }
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// First retry after a temporary failure; each later one waits twice as long…
    #[serde(default = "d_2m", with = "human")]
    pub retry_first: Duration,
    /// …up to this.
    #[serde(default = "d_2h", with = "human")]
    pub retry_max: Duration,
    /// Give up (DSN to the sender) this long after submission.
    #[serde(default = "d_5d", with = "human")]
    pub expire_after: Duration,
    /// Wait this long for the `processed` MDN (and again for `dispatched` when requested)
    /// before telling the sender delivery failed (Direct IG "timely and reliable").
    #[serde(default = "d_1h", with = "human")]
    pub mdn_timeout: Duration,
    /// Concurrent outbound deliveries.
    #[serde(default = "default_workers")]
    pub delivery_workers: usize,
    /// Concurrent deliveries to one destination domain (Postfix's
    /// `default_destination_concurrency_limit`), so a slow peer cannot take every delivery
    /// slot from the others. Default: three quarters of `delivery_workers`
    /// ([`QueueConfig::per_destination`]).
    #[serde(default)]
    pub max_per_destination: Option<usize>,
}

impl QueueConfig {
    /// The bound on deliveries to one domain at once: `max_per_destination`, or three
    /// quarters of `delivery_workers` (at least one), which leaves a quarter of the slots
    /// to the other destinations.
    pub fn per_destination(&self) -> usize {
        self.max_per_destination
            .unwrap_or((self.delivery_workers - self.delivery_workers / 4).max(1))
    }
}

fn d_2m() -> Duration {
    Duration::from_secs(120)
}
fn d_2h() -> Duration {
    Duration::from_secs(7200)
}
fn d_5d() -> Duration {
    Duration::from_secs(5 * 86_400)
}
fn d_1h() -> Duration {
    Duration::from_secs(3600)
}
fn default_workers() -> usize {
    16
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry_first: d_2m(),
            retry_max: d_2h(),
            expire_after: d_5d(),
            mdn_timeout: d_1h(),
            delivery_workers: default_workers(),
            max_per_destination: None,
        }
    }
}

/// `[retention]`: how long bodies nobody needs are kept (rows, states and timelines stay).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// An outbound message's body and sealed copies, once every recipient is final (no
    /// retry, no notification awaited), are removed this long after submission.
    #[serde(default = "d_7d", with = "human")]
    pub keep_outbound_bodies: Duration,
    /// A mailbox entry's body is removed this long after the edge picked it up (never
    /// before it is picked up).
    #[serde(default = "d_30d", with = "human")]
    pub keep_picked_up_bodies: Duration,
    /// A quarantined message's sealed form is removed this long after it was quarantined
    /// (`hisp quarantine release` needs it; the entry and its reason stay).
    #[serde(default = "d_30d", with = "human")]
    pub keep_quarantined: Duration,
    /// Whole records of finished mail (message, recipients, states, timeline; inbound
    /// messages; picked-up mailbox entries; notification de-duplication) are removed this
    /// long after they were made; `"forever"` (the default) keeps them.
    #[serde(default, with = "human_or_forever")]
    pub keep_records: Option<Duration>,
    /// Rows of the access audit trail (`hisp audit`) are removed this long after they were
    /// written; `"forever"` (the default) keeps them. HIPAA asks six years (`"2192d"`).
    #[serde(default, with = "human_or_forever")]
    pub keep_audit: Option<Duration>,
}

fn d_7d() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn d_30d() -> Duration {
    Duration::from_secs(30 * 86_400)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_outbound_bodies: d_7d(),
            keep_picked_up_bodies: d_30d(),
            keep_quarantined: d_30d(),
            keep_records: None,
            keep_audit: None,
        }
    }
}

/// `[discovery]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Look up recipients that have no static certificate in DNS (CERT records).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Ask this server (`host:port`) instead of the resolvers in /etc/resolv.conf.
    #[serde(default)]
    pub dns: Option<std::net::SocketAddr>,
    /// How long one DNS query, LDAP step or CRL/issuer fetch may take.
    #[serde(default = "d_3s", with = "human")]
    pub timeout: Duration,
    /// Use a certificate whose CRL cannot be fetched (default false: fail closed).
    #[serde(default)]
    pub allow_unreachable_crl: bool,
}

/// `[dns]`: answer DNS CERT queries for our own domains.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Where to answer (UDP and TCP); absent: not served.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// TTL of the answers, in seconds.
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
}

fn default_dns_ttl() -> u32 {
    3600
}

fn yes() -> bool {
    true
}
fn d_3s() -> Duration {
    Duration::from_secs(3)
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            dns: None,
            timeout: d_3s(),
            allow_unreachable_crl: false,
        }
    }
}

impl QueueConfig {
    /// The wait before attempt `attempts + 1`: 2 min, 4, 8, … capped at `retry_max`.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_first.saturating_mul(factor).min(self.retry_max)
    }
}

/// serde for durations written as `"90s"`, `"2m"`, `"1h 30m"`, `"5d"`.
mod human {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "\"{text}\" is not a duration like \"2m\" or \"5d\": {e}"
            ))
        })
    }
}

/// serde for a duration or `"forever"` (`None`).
mod human_or_forever {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => human::serialize(d, s),
            None => s.serialize_str("forever"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "forever" {
            return Ok(None);
        }
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "\"{text}\" is neither \"forever\" nor a duration like \"400d\": {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_doubles_from_2m_to_2h() {
        let q = QueueConfig::default();
        let mins: Vec<u64> = (1..=8).map(|a| q.retry_delay(a).as_secs() / 60).collect();
        assert_eq!(mins, [2, 4, 8, 16, 32, 64, 120, 120]);
        assert_eq!(q.retry_delay(200), q.retry_max);
    }
}
