//! DNS CERT lookups (RFC 4398) through hickory's resolver: UDP with EDNS0 first and TCP
//! when the answer comes back truncated (a few certificates exceed the 1,232 octets a UDP
//! answer may carry), answers cached for their TTL, NXDOMAIN and "no data" told apart
//! from a server that failed.

use crate::record::CertRecord;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioAsyncResolver;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The CERT RR type (RFC 4398), which hickory 0.24 carries as an unknown type.
const CERT: RecordType = RecordType::Unknown(37);

/// What the DNS said about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// CERT records, good until the instant (their TTL).
    Records {
        /// The records, in the order the server gave them.
        records: Vec<CertRecord>,
        /// When the answer expires.
        valid_until: Instant,
    },
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no CERT records.
    NoData,
}

impl DnsAnswer {
    /// The records (none for NXDOMAIN or no data).
    pub fn records(&self) -> &[CertRecord] {
        match self {
            DnsAnswer::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// A lookup that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The server answered with an error code (SERVFAIL, REFUSED, …).
    #[error("DNS server failure for {name}: {code}; check the domain's name servers")]
    ServerFailure {
        /// The owner name.
        name: String,
        /// The response code.
        code: String,
    },
    /// No server answered in time.
    #[error("DNS lookup of {name} timed out; check the resolver ({server})")]
    Timeout {
        /// The owner name.
        name: String,
        /// Which resolver.
        server: String,
    },
    /// Anything else (network error, malformed answer).
    #[error("DNS lookup of {name} failed: {detail}")]
    Other {
        /// The owner name.
        name: String,
        /// What went wrong.
        detail: String,
    },
    /// The system resolver configuration cannot be read.
    #[error("cannot read the system DNS configuration: {0}")]
    SystemConfig(String),
}

/// Looks up CERT records.
pub struct DnsCerts {
    resolver: TokioAsyncResolver,
    server: String,
}

impl DnsCerts {
    /// Ask the given server (UDP, and TCP for truncated answers).
    pub fn at(server: SocketAddr, timeout: Duration) -> DnsCerts {
        let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        DnsCerts {
            resolver: TokioAsyncResolver::tokio(config, options(timeout)),
            server: server.to_string(),
        }
    }

    /// Ask the resolvers in `/etc/resolv.conf`.
    pub fn system(timeout: Duration) -> Result<DnsCerts, DnsError> {
        let (config, _) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| DnsError::SystemConfig(e.to_string()))?;
        Ok(DnsCerts {
            resolver: TokioAsyncResolver::tokio(config, options(timeout)),
            server: "the system resolver".into(),
        })
    }

    /// The CERT records at `owner`.
    pub async fn lookup(&self, owner: &Name) -> Result<DnsAnswer, DnsError> {
        match self.resolver.lookup(owner.clone(), CERT).await {
            Ok(lookup) => {
                let records = lookup
                    .records()
                    .iter()
                    .filter_map(|r| match r.data() {
                        Some(RData::Unknown { code, rdata }) if *code == CERT => {
                            CertRecord::parse(rdata.anything())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                if records.is_empty() {
                    return Ok(DnsAnswer::NoData);
                }
                Ok(DnsAnswer::Records {
                    records,
                    valid_until: lookup.valid_until(),
                })
            }
            Err(e) => classify(owner, &self.server, e),
        }
    }
}

/// One SRV target (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is tried first.
    pub priority: u16,
    /// Share of the picks among targets of the same priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host (fully qualified).
    pub host: Name,
}

impl DnsCerts {
    /// The SRV records at `name`; empty for NXDOMAIN, no data, or the "." target that says
    /// the service is not offered (RFC 2782).
    pub async fn srv(&self, name: &Name) -> Result<Vec<SrvTarget>, DnsError> {
        match self.resolver.srv_lookup(name.clone()).await {
            Ok(l) => Ok(l
                .iter()
                .filter(|s| !s.target().is_root())
                .map(|s| SrvTarget {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    host: s.target().clone(),
                })
                .collect()),
            Err(e) => classify(name, &self.server, e).map(|_| Vec::new()),
        }
    }

    /// The MX records of `domain`, lowest preference first; empty when there are none.
    pub async fn mx(&self, domain: &Name) -> Result<Vec<(u16, Name)>, DnsError> {
        match self.resolver.mx_lookup(domain.clone()).await {
            Ok(l) => {
                let mut v: Vec<(u16, Name)> = l
                    .iter()
                    .map(|m| (m.preference(), m.exchange().clone()))
                    .collect();
                v.sort_by_key(|(p, _)| *p);
                Ok(v)
            }
            Err(e) => classify(domain, &self.server, e).map(|_| Vec::new()),
        }
    }

    /// The addresses of `host`.
    pub async fn addresses(&self, host: &Name) -> Result<Vec<std::net::IpAddr>, DnsError> {
        match self.resolver.lookup_ip(host.clone()).await {
            Ok(l) => Ok(l.iter().collect()),
            Err(e) => classify(host, &self.server, e).map(|_| Vec::new()),
        }
    }
}

fn options(timeout: Duration) -> ResolverOpts {
    let mut o = ResolverOpts::default();
    o.timeout = timeout;
    o.attempts = 2;
    o.edns0 = true;
    o.cache_size = 4096;
    o.use_hosts_file = false;
    // A missing record is looked up again within five minutes, whatever the SOA says.
    o.negative_max_ttl = Some(Duration::from_secs(300));
    o
}

fn classify(owner: &Name, server: &str, e: ResolveError) -> Result<DnsAnswer, DnsError> {
    let name = owner.to_string();
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => Ok(DnsAnswer::NxDomain),
            ResponseCode::NoError => Ok(DnsAnswer::NoData),
            code => Err(DnsError::ServerFailure {
                name,
                code: code.to_string(),
            }),
        },
        ResolveErrorKind::Timeout => Err(DnsError::Timeout {
            name,
            server: server.to_string(),
        }),
        _ => Err(DnsError::Other {
            name,
            detail: e.to_string(),
        }),
    }
}
