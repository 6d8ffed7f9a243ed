//! Config tests: the example parses, every table rejects unknown keys, problems name keys.

use super::*;

const EXAMPLE: &str = include_str!("../../../../examples/hisp.toml");

#[test]
fn example_config_parses() {
    let c = Config::from_toml(EXAMPLE, Path::new("examples/hisp.toml")).unwrap();
    assert_eq!(c.domains.len(), 1);
    assert!(c.domains[0].previous.is_empty());
    assert_eq!(c.crypto.cipher, CipherName::Aes256Cbc);
    assert_eq!(c.smtp.data_memory(), 1 << 30);
    let mut c = c;
    c.smtp.data_memory_bytes = None;
    c.smtp.max_message_bytes = 2 << 30;
    assert_eq!(
        c.smtp.data_memory(),
        2 << 30,
        "never below one largest message"
    );
}

/// `[[domain.previous]]` belongs to the `[[domain]]` above it, and rejects unknown keys.
#[test]
fn previous_keys_belong_to_their_domain() {
    let text = EXAMPLE.replace(
        "anchors = [\"ca.pem\"]\n",
        "anchors = [\"ca.pem\"]\n[[domain.previous]]\ncert = \"old.pem\"\nkey = \"old.key\"\n",
    );
    let c = Config::from_toml(&text, Path::new("x.toml")).unwrap();
    assert_eq!(c.domains[0].previous.len(), 1);
    assert_eq!(c.domains[0].previous[0].cert, PathBuf::from("old.pem"));
    let bad = text.replace("key = \"old.key\"", "key = \"old.key\"\nsign = true");
    let err = Config::from_toml(&bad, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sign"), "{err}");
}

/// Every table rejects a key it does not know, naming it (as hickory's config tests do).
#[test]
fn unknown_keys_rejected_in_every_table() {
    for table in [
        "[server]",
        "[[domain]]",
        "[crypto]",
        "[smtp]",
        "[http]",
        "[queue]",
        "[discovery]",
        "[dns]",
    ] {
        let text = EXAMPLE.replacen(table, &format!("{table}\nbogus_key = 1"), 1);
        let err = Config::from_toml(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus_key"), "{table}: {err}");
    }
    let err = Config::from_toml(&format!("{EXAMPLE}\n[extra]\na = 1\n"), Path::new("x.toml"))
        .unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let text = EXAMPLE.replace("cipher = \"aes-256-cbc\"", "cipher = \"rc4\"");
    let err = Config::from_toml(&text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cipher") && err.contains("rc4"), "{err}");
    let text = EXAMPLE.replace("# dns = \"192.0.2.53:53\"", "dns = \"ns.example\"");
    let err = Config::from_toml(&text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("discovery.dns"), "{err}");
    let mut c = Config::from_toml(EXAMPLE, Path::new("x.toml")).unwrap();
    c.server.hostname = "not a host".into();
    c.domains[0].key = PathBuf::from("/nonexistent/key.pem");
    // Plain HTTP where other hosts reach it would carry passwords in clear.
    c.http.listen = "0.0.0.0:8025".parse().unwrap();
    // A memory bound too small for one message of the largest size.
    c.smtp.data_memory_bytes = Some(c.smtp.max_message_bytes - 1);
    c.smtp.max_connections_per_ip = 0;
    c.smtp.max_refused_recipients_per_ip = 0;
    // TEST-NET-1 is on no host.
    c.smtp.outbound_addresses = vec!["192.0.2.1".parse().unwrap()];
    c.domains[0].previous = vec![PreviousKey {
        cert: PathBuf::from("/nonexistent/old.pem"),
        key: PathBuf::from("/nonexistent/old.key"),
        key_password: None,
    }];
    c.http.max_connections_per_ip = 0;
    c.queue.max_per_destination = Some(0);
    let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
    assert!(keys.contains(&"smtp.data_memory".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"smtp.max_connections_per_ip".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"smtp.outbound_addresses".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"domain[0].previous[0].key".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"smtp.max_refused_recipients_per_ip".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"http.max_connections_per_ip".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"queue.max_per_destination".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"http.tls".to_string()), "{keys:?}");
    assert!(keys.contains(&"server.hostname".to_string()), "{keys:?}");
    assert!(keys.contains(&"domain[0].key".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"domain[0].anchors[0]".to_string()),
        "{keys:?}"
    );
}

#[test]
fn rfc1035_2_3_1_domain_names() {
    assert!(is_domain_name("direct.clinic.example"));
    assert!(!is_domain_name("-bad.example"));
    assert!(!is_domain_name("a..b"));
    assert!(!is_domain_name("sp ace.example"));
}

/// `retention.keep_records`: "forever" by default, a duration when set, and never shorter
/// than a body retention (the record would take its body early).
#[test]
fn keep_records_is_forever_a_duration_or_refused_by_name() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).unwrap();
    assert_eq!(c.retention.keep_records, None);
    let set = |value: &str| {
        EXAMPLE.replace(
            "keep_records = \"forever\"",
            &format!("keep_records = \"{value}\""),
        )
    };
    let c = Config::from_toml(&set("400d"), Path::new("x.toml")).unwrap();
    assert_eq!(
        c.retention.keep_records,
        Some(std::time::Duration::from_secs(400 * 86_400))
    );
    let err = Config::from_toml(&set("always"), Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keep_records") && err.contains("forever"),
        "{err}"
    );
    let c = Config::from_toml(&set("10d"), Path::new("x.toml")).unwrap();
    let problems = c.validate();
    let p = problems
        .iter()
        .find(|p| p.key == "retention.keep_records")
        .expect("keep_records shorter than keep_quarantined is refused");
    assert!(p.reason.contains("30days"), "{}", p.reason);
}
