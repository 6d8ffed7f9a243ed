//! Mailbox lists (RFC 5322 §3.4): display names with commas inside quotes, comments,
//! angle addresses and groups. Direct addresses compare case-insensitively.

/// One mailbox from an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, unquoted, if any.
    pub display: Option<String>,
    /// The addr-spec, as written.
    pub address: String,
}

/// Parse an address-list field value into its mailboxes; group names are dropped and their
/// members kept. Entries without an `@` are skipped.
pub fn parse_address_list(value: &str) -> Vec<Mailbox> {
    let mut out = Vec::new();
    let mut display = String::new();
    let mut bare = String::new();
    let mut angle: Option<String> = None;
    let mut chars = value.chars().peekable();
    let mut finish = |display: &mut String, bare: &mut String, angle: &mut Option<String>| {
        let address = match angle.take() {
            Some(a) => a.trim().to_string(),
            None => std::mem::take(bare).split_whitespace().collect::<String>(),
        };
        let name = std::mem::take(display).trim().to_string();
        bare.clear();
        if address.contains('@') {
            out.push(Mailbox {
                display: (!name.is_empty()).then_some(name),
                address,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let q = super::lex::quoted(&mut chars);
                display.push_str(&q);
                bare.push('"');
                bare.push_str(&q);
                bare.push('"');
            }
            '(' => super::lex::skip_comment(&mut chars),
            '<' => {
                let mut a = String::new();
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                    a.push(c);
                }
                angle = Some(a);
            }
            ':' if angle.is_none() => {
                // Group display name: discard it, its members follow.
                display.clear();
                bare.clear();
            }
            ',' | ';' => finish(&mut display, &mut bare, &mut angle),
            c => {
                display.push(c);
                bare.push(c);
            }
        }
    }
    finish(&mut display, &mut bare, &mut angle);
    out
}

/// The domain of an address (after the last `@`), lower-cased, trailing dot removed.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, d) = address.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.');
    (!d.is_empty()).then(|| d.to_ascii_lowercase())
}

/// Case-insensitive address comparison (Direct treats the whole address so).
pub fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_3_4_display_names_with_commas() {
        let v =
            parse_address_list("\"Lindsey, Leslie\" <llindsey@messaging.cernerdemos.com>, b@c.d");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].display.as_deref(), Some("Lindsey, Leslie"));
        assert_eq!(v[0].address, "llindsey@messaging.cernerdemos.com");
        assert_eq!(v[1].address, "b@c.d");
    }

    #[test]
    fn rfc5322_3_4_groups_and_comments() {
        let v = parse_address_list("Team: a@x.y (Al), Bob <b@x.y>;, c@z (see <x>)");
        let a: Vec<_> = v.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(a, ["a@x.y", "b@x.y", "c@z"]);
        assert_eq!(domain_of("A@Example.ORG.").as_deref(), Some("example.org"));
        assert!(same_address(
            "Gm2552@SecureHealthEmail.com",
            "gm2552@securehealthemail.com"
        ));
    }
}
