//! Prometheus text metrics (exposition format 0.0.4): counters by outcome and latency
//! histograms. Labels are closed sets (never addresses), so cardinality stays fixed.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    inf: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Record one observation in seconds.
    pub fn observe(&self, seconds: f64) {
        match BUCKETS.iter().position(|b| seconds <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.inf.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.inf.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Every metric the daemon exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages accepted on the submission port or REST.
    pub accepted_submission: AtomicU64,
    /// Messages accepted on the relay port.
    pub accepted_relay: AtomicU64,
    /// Recipients relayed to the next HISP.
    pub relayed: AtomicU64,
    /// Recipients whose delivery attempt failed temporarily (retried).
    pub retried: AtomicU64,
    /// Recipients put off without an attempt: their domain was suspended (`suspend.rs`).
    pub postponed: AtomicU64,
    /// Recipients failed permanently (5xx, no certificate, expiry, timeout, failure MDN).
    pub failed: AtomicU64,
    /// Messages delivered to local mailboxes.
    pub delivered: AtomicU64,
    /// Inbound messages quarantined.
    pub quarantined: AtomicU64,
    /// MDNs sent.
    pub mdn_sent: AtomicU64,
    /// MDNs received and matched.
    pub mdn_received: AtomicU64,
    /// Duplicate notifications dropped.
    pub notifications_duplicate: AtomicU64,
    /// DSNs given to senders.
    pub dsn_sent: AtomicU64,
    /// Wrong passwords (SMTP AUTH and REST).
    pub auth_failures: AtomicU64,
    /// Logins refused unchecked because the account was locked by failures.
    pub auth_locked: AtomicU64,
    /// Recipients refused on the relay port because the client address was locked by
    /// refusals (directory harvesting).
    pub rcpt_locked: AtomicU64,
    /// Submission to relayed, per recipient.
    pub hop_latency: Histogram,
    /// Time to open an inbound message.
    pub open_seconds: Histogram,
    /// Time to seal an outbound message for one domain.
    pub seal_seconds: Histogram,
    /// Time to find a recipient's certificates (cache hits included).
    pub discovery_seconds: Histogram,
}

impl Metrics {
    /// Add one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Add `n` to a counter.
    pub fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The exposition text, with the current queue depth.
    pub fn render(&self, queue_depth: u64) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        let _ = writeln!(out, "# HELP hisp_messages_accepted_total Messages accepted.\n# TYPE hisp_messages_accepted_total counter");
        let _ = writeln!(
            out,
            "hisp_messages_accepted_total{{port=\"submission\"}} {}",
            self.accepted_submission.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "hisp_messages_accepted_total{{port=\"relay\"}} {}",
            self.accepted_relay.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "hisp_recipients_relayed_total",
            "Recipients accepted by the next HISP.",
            &self.relayed,
        );
        counter(
            &mut out,
            "hisp_recipients_retried_total",
            "Delivery attempts that failed temporarily.",
            &self.retried,
        );
        counter(
            &mut out,
            "hisp_recipients_postponed_total",
            "Recipients put off without an attempt while their domain was suspended.",
            &self.postponed,
        );
        counter(
            &mut out,
            "hisp_recipients_failed_total",
            "Recipients that failed permanently.",
            &self.failed,
        );
        counter(
            &mut out,
            "hisp_messages_delivered_total",
            "Messages delivered to local mailboxes.",
            &self.delivered,
        );
        counter(
            &mut out,
            "hisp_messages_quarantined_total",
            "Inbound messages quarantined.",
            &self.quarantined,
        );
        counter(
            &mut out,
            "hisp_mdn_sent_total",
            "MDNs sent.",
            &self.mdn_sent,
        );
        counter(
            &mut out,
            "hisp_mdn_received_total",
            "MDNs received and matched to a message.",
            &self.mdn_received,
        );
        counter(
            &mut out,
            "hisp_notifications_duplicate_total",
            "Repeated MDNs/DSNs dropped.",
            &self.notifications_duplicate,
        );
        counter(
            &mut out,
            "hisp_dsn_sent_total",
            "DSNs given to senders.",
            &self.dsn_sent,
        );
        counter(
            &mut out,
            "hisp_auth_failures_total",
            "Wrong passwords (SMTP AUTH and REST).",
            &self.auth_failures,
        );
        counter(
            &mut out,
            "hisp_auth_locked_total",
            "Logins refused unchecked: the account was locked by repeated failures.",
            &self.auth_locked,
        );
        counter(
            &mut out,
            "hisp_smtp_rcpt_locked_total",
            "Recipients answered 450 unchecked: the client address had too many refused.",
            &self.rcpt_locked,
        );
        let _ = writeln!(out, "# HELP hisp_queue_depth Recipients not yet final.\n# TYPE hisp_queue_depth gauge\nhisp_queue_depth {queue_depth}");
        self.hop_latency.render(
            "hisp_hop_latency_seconds",
            "Submission to relay, per recipient.",
            &mut out,
        );
        self.open_seconds.render(
            "hisp_open_seconds",
            "Time to open an inbound message.",
            &mut out,
        );
        self.seal_seconds.render(
            "hisp_seal_seconds",
            "Time to seal a message for one domain.",
            &mut out,
        );
        self.discovery_seconds.render(
            "hisp_discovery_seconds",
            "Time to find a recipient's certificates (DNS CERT, LDAP, cache).",
            &mut out,
        );
        out
    }
}

/// The gauge of destination domains suspended after a host failure (`suspend.rs`).
pub fn render_suspended(n: usize, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hisp_destinations_suspended Destination domains whose mail is put off after a host failure.\n\
         # TYPE hisp_destinations_suspended gauge\nhisp_destinations_suspended {n}"
    );
}

/// The gauges and counter of the SMTP ports' memory budget ([`hisp_smtp::DataBudget`]).
pub fn render_data_budget(b: &hisp_smtp::DataBudget, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hisp_smtp_data_memory_bytes Memory held by messages being received.\n\
         # TYPE hisp_smtp_data_memory_bytes gauge\nhisp_smtp_data_memory_bytes {}\n\
         # HELP hisp_smtp_data_memory_limit_bytes Its bound, smtp.data_memory.\n\
         # TYPE hisp_smtp_data_memory_limit_bytes gauge\nhisp_smtp_data_memory_limit_bytes {}\n\
         # HELP hisp_smtp_data_memory_refusals_total Messages answered 452 4.3.1 for want of it.\n\
         # TYPE hisp_smtp_data_memory_refusals_total counter\nhisp_smtp_data_memory_refusals_total {}",
        b.in_use(),
        b.limit(),
        b.refusals()
    );
}

/// `hisp_certificate_expiry_timestamp_seconds{domain, key}`: when each local domain's
/// Direct certificate (`current`, and any kept under `previous`) stops being valid, so an
/// alert can fire weeks ahead (as blackbox_exporter's `probe_ssl_earliest_cert_expiry`);
/// and `hisp_tls_certificate_expiry_timestamp_seconds` for the STARTTLS certificate (when
/// known).
pub fn render_cert_expiry(expiries: &[(&str, &str, i64)], tls: i64, out: &mut String) {
    if tls > 0 {
        let _ = writeln!(
            out,
            "# HELP hisp_tls_certificate_expiry_timestamp_seconds When the STARTTLS (and HTTPS) certificate stops being valid.\n\
             # TYPE hisp_tls_certificate_expiry_timestamp_seconds gauge\n\
             hisp_tls_certificate_expiry_timestamp_seconds {tls}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP hisp_certificate_expiry_timestamp_seconds When a local domain's Direct certificate stops being valid.\n\
         # TYPE hisp_certificate_expiry_timestamp_seconds gauge"
    );
    for (domain, key, t) in expiries {
        let _ = writeln!(
            out,
            "hisp_certificate_expiry_timestamp_seconds{{domain=\"{domain}\",key=\"{key}\"}} {t}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        Metrics::inc(&m.relayed);
        m.hop_latency.observe(0.003);
        m.hop_latency.observe(100.0);
        let t = m.render(7);
        assert!(t.contains("hisp_recipients_relayed_total 1"));
        assert!(t.contains("hisp_queue_depth 7"));
        assert!(t.contains("hisp_hop_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("hisp_hop_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(t.contains("hisp_hop_latency_seconds_count 2"));
    }
}
