//! Where mail for a domain goes (RFC 5321 §5.1): the MX hosts by preference, the domain
//! itself when it has no MX (the implicit MX), nothing when it publishes the null MX
//! "." (RFC 7505). The daemon uses static routes in tests; this is the production path.

use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioAsyncResolver;

use super::ClientError;

/// The SMTP port for MX targets.
const SMTP_PORT: u16 = 25;

/// The `host:25` targets for `domain`, best first.
pub async fn resolve_mx(domain: &str) -> Result<Vec<String>, ClientError> {
    let lookup_err = |source| ClientError::MxLookup {
        domain: domain.to_string(),
        source,
    };
    let resolver = TokioAsyncResolver::tokio_from_system_conf().map_err(lookup_err)?;
    // A trailing dot makes the name absolute, so no search domain is appended.
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let answer = match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(answer) => answer,
        Err(e) => {
            return match e.kind() {
                ResolveErrorKind::NoRecordsFound {
                    response_code: ResponseCode::NXDomain,
                    ..
                } => Err(ClientError::NoSuchDomain {
                    domain: domain.to_string(),
                }),
                // The name exists but has no MX: the implicit MX (RFC 5321 §5.1).
                ResolveErrorKind::NoRecordsFound { .. } => Ok(vec![target(domain)]),
                _ => Err(lookup_err(e)),
            };
        }
    };
    let mut hosts: Vec<(u16, String)> = answer
        .iter()
        .map(|mx| (mx.preference(), mx.exchange().to_utf8()))
        .collect();
    targets(domain, &mut hosts)
}

/// Orders the MX hosts and spots the null MX (pure, for tests).
fn targets(domain: &str, hosts: &mut [(u16, String)]) -> Result<Vec<String>, ClientError> {
    // RFC 7505 §3: a single MX of "." at preference 0 means "no mail here".
    if hosts.len() == 1 && hosts.iter().all(|(_, h)| h == "." || h.is_empty()) {
        return Err(ClientError::NullMx {
            domain: domain.to_string(),
        });
    }
    hosts.sort_by_key(|(pref, _)| *pref);
    Ok(hosts
        .iter()
        .filter(|(_, h)| h != "." && !h.is_empty())
        .map(|(_, h)| target(h))
        .collect())
}

fn target(host: &str) -> String {
    format!("{}:{SMTP_PORT}", host.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5321_5_1_mx_sorted_by_preference() {
        let mut hosts = vec![
            (20, "b.example.".to_string()),
            (10, "a.example.".to_string()),
        ];
        assert_eq!(
            targets("d.example", &mut hosts).unwrap(),
            vec!["a.example:25", "b.example:25"]
        );
    }

    #[test]
    fn rfc7505_3_null_mx_is_permanent() {
        let err = targets("d.example", &mut [(0, ".".to_string())]).unwrap_err();
        assert!(matches!(err, ClientError::NullMx { .. }));
        assert!(err.is_permanent());
    }
}
