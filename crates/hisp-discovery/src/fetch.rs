//! Fetching what a certificate points at over HTTP (RFC 5280 §4.2.1.13 CRL distribution
//! points, §4.2.2.1 caIssuers): CRLs kept until their nextUpdate, issuer certificates for
//! a day, failures remembered for five minutes so a dead URL is not asked per message.
//! Responses are bounded in size and time.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openssl::x509::{X509Crl, X509};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest CRL or certificate file read.
const MAX_BODY: usize = 16 << 20;
/// How long a failed fetch is remembered.
const NEGATIVE: Duration = Duration::from_secs(300);
/// How long a fetched issuer certificate is kept.
const ISSUER_TTL: Duration = Duration::from_secs(86_400);
/// Most URLs remembered.
const MAX_ENTRIES: usize = 4096;

type Connector = hyper_util::client::legacy::connect::HttpConnector;

enum Entry {
    Crl(Arc<X509Crl>, Instant),
    Certs(Vec<X509>, Instant),
    Failed(String, Instant),
}

impl Entry {
    fn fresh(&self, now: Instant) -> bool {
        match self {
            Entry::Crl(_, until) | Entry::Certs(_, until) | Entry::Failed(_, until) => now < *until,
        }
    }
}

/// Fetches and caches CRLs and issuer certificates.
pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
    timeout: Duration,
    cache: Mutex<HashMap<String, Entry>>,
}

impl Fetcher {
    /// A fetcher whose requests each take at most `timeout`.
    pub fn new(timeout: Duration) -> Fetcher {
        let mut http = Connector::new();
        http.set_connect_timeout(Some(timeout));
        Fetcher {
            client: Client::builder(TokioExecutor::new()).build(http),
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The CRL at `url` (DER or PEM), verified by the caller; cached until its nextUpdate.
    pub async fn crl(&self, url: &str, now_unix: i64) -> Result<Arc<X509Crl>, String> {
        if let Some(hit) = self.cached(url, |e| match e {
            Entry::Crl(c, _) => Some(Ok(c.clone())),
            Entry::Failed(why, _) => Some(Err(why.clone())),
            Entry::Certs(..) => None,
        }) {
            return hit;
        }
        let result = self.get(url).await.and_then(|body| {
            X509Crl::from_der(&body)
                .or_else(|_| X509Crl::from_pem(&body))
                .map(Arc::new)
                .map_err(|e| format!("{url} is not a CRL: {e}"))
        });
        let entry = match &result {
            Ok(crl) => {
                let next = crl
                    .next_update()
                    .and_then(hisp_direct::time::from_asn1)
                    .unwrap_or(now_unix + 3600);
                let secs = u64::try_from(next - now_unix).unwrap_or(0).min(86_400);
                Entry::Crl(crl.clone(), Instant::now() + Duration::from_secs(secs))
            }
            Err(why) => Entry::Failed(why.clone(), Instant::now() + NEGATIVE),
        };
        self.remember(url, entry);
        result
    }

    /// The certificate(s) at `url`: DER, PEM, or a PKCS#7 certs-only bundle.
    pub async fn certs(&self, url: &str) -> Result<Vec<X509>, String> {
        if let Some(hit) = self.cached(url, |e| match e {
            Entry::Certs(c, _) => Some(Ok(c.clone())),
            Entry::Failed(why, _) => Some(Err(why.clone())),
            Entry::Crl(..) => None,
        }) {
            return hit;
        }
        let result = self.get(url).await.and_then(|body| {
            parse_certs(&body).ok_or_else(|| format!("{url} holds no certificate"))
        });
        let entry = match &result {
            Ok(c) => Entry::Certs(c.clone(), Instant::now() + ISSUER_TTL),
            Err(why) => Entry::Failed(why.clone(), Instant::now() + NEGATIVE),
        };
        self.remember(url, entry);
        result
    }

    fn cached<T>(&self, url: &str, f: impl Fn(&Entry) -> Option<T>) -> Option<T> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(url)
            .filter(|e| e.fresh(Instant::now()))
            .and_then(f)
    }

    fn remember(&self, url: &str, entry: Entry) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, e| e.fresh(now));
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(url.to_string(), entry);
    }

    /// The bytes at `url` (`http://`, or `file://` for a local copy), uncached.
    pub async fn bytes(&self, url: &str) -> Result<Vec<u8>, String> {
        if let Some(path) = url.strip_prefix("file://") {
            return tokio::fs::read(path)
                .await
                .map_err(|e| format!("{url}: {e}"));
        }
        self.get(url).await
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url}: only http:// URLs are fetched"));
        }
        let work = async {
            let resp = self
                .client
                .get(uri)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            Ok(body.to_bytes().to_vec())
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }
}

fn parse_certs(body: &[u8]) -> Option<Vec<X509>> {
    if let Ok(c) = X509::from_der(body) {
        return Some(vec![c]);
    }
    if let Ok(v) = X509::stack_from_pem(body) {
        if !v.is_empty() {
            return Some(v);
        }
    }
    let p7 = openssl::pkcs7::Pkcs7::from_der(body).ok()?;
    let certs = p7.signed()?.certificates()?;
    Some(certs.iter().map(|c| c.to_owned()).collect())
}

/// The URIs of a certificate's CRL distribution points.
pub fn crl_urls(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let Some(points) = cert.crl_distribution_points() else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|p| p.distpoint())
        .filter_map(|d| d.fullname())
        .flat_map(|names| names.iter().filter_map(|n| n.uri().map(str::to_string)))
        .collect()
}

/// The URIs of a certificate's caIssuers access descriptions.
pub fn ca_issuer_urls(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let Some(info) = cert.authority_info() else {
        return Vec::new();
    };
    info.iter()
        .filter(|a| a.method().nid() == openssl::nid::Nid::AD_CA_ISSUERS)
        .filter_map(|a| a.location().uri().map(str::to_string))
        .collect()
}
