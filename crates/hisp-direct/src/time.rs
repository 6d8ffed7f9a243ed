//! Time as a value. The core never reads the clock: callers pass "now" as Unix seconds, so
//! tests and `hisp open --at` can check 2010-era vectors at the time they were valid.
//! This module converts between Unix seconds, RFC 3339 and the ASN.1 time types.

use openssl::asn1::{Asn1Time, Asn1TimeRef};

/// Seconds since 1970-01-01T00:00:00Z.
pub type UnixTime = i64;

/// An RFC 3339 / ISO 8601 timestamp that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time \"{0}\" (expected e.g. 2010-06-03T00:00:00Z)")]
pub struct TimeError(pub String);

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Broken-down UTC time: (year, month, day, hour, minute, second).
pub fn to_civil(t: UnixTime) -> (i64, i64, i64, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    (y, mo, d, s / 3600, s % 3600 / 60, s % 60)
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a bare date means midnight UTC.
pub fn parse_rfc3339(s: &str) -> Result<UnixTime, TimeError> {
    let err = || TimeError(s.to_string());
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = b.get(r).ok_or_else(err)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        std::str::from_utf8(part)
            .map_err(|_| err())?
            .parse()
            .map_err(|_| err())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(err());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(err());
    }
    let date = days_from_civil(y, mo, d) * 86_400;
    if b.len() == 10 {
        return Ok(date);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 60 {
        return Err(err());
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return Err(err()),
    };
    Ok(date + h * 3600 + mi * 60 + se - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ`
pub fn format_rfc3339(t: UnixTime) -> String {
    let (y, mo, d, h, mi, s) = to_civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// RFC 5322 §3.3 date-time, e.g. `Thu, 03 Jun 2010 07:57:27 +0000`.
pub fn format_rfc5322(t: UnixTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = to_civil(t);
    let wd = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    let mon = MONTHS[(mo - 1).clamp(0, 11) as usize];
    format!("{wd}, {d:02} {mon} {y:04} {h:02}:{mi:02}:{s:02} +0000")
}

/// The DER encoding of a CMS `Time` (RFC 5652 §11.3): UTCTime for 1950–2049, else
/// GeneralizedTime.
pub fn der_time(t: UnixTime) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = to_civil(t);
    if (1950..2050).contains(&y) {
        let v = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        crate::asn1::writer::tlv(0x17, v.as_bytes())
    } else {
        let v = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        crate::asn1::writer::tlv(0x18, v.as_bytes())
    }
}

/// Read a DER UTCTime/GeneralizedTime content (`YYMMDDHHMM[SS]Z` or `YYYYMMDDHHMM[SS]Z`).
pub fn parse_der_time(tag_number: u32, content: &[u8]) -> Option<UnixTime> {
    let s = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let (y, rest) = if tag_number == 23 {
        let yy: i64 = s.get(0..2)?.parse().ok()?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
    } else {
        (s.get(0..4)?.parse().ok()?, s.get(4..)?)
    };
    let f = |r: std::ops::Range<usize>| rest.get(r).and_then(|v| v.parse::<i64>().ok());
    let sec = if rest.len() >= 10 { f(8..10)? } else { 0 };
    let days = days_from_civil(y, f(0..2)?, f(2..4)?);
    Some(days * 86_400 + f(4..6)? * 3600 + f(6..8)? * 60 + sec)
}

/// Unix seconds of an OpenSSL ASN.1 time.
pub fn from_asn1(t: &Asn1TimeRef) -> Option<UnixTime> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_5_6_round_trip_and_offsets() {
        let t = parse_rfc3339("2010-06-03T00:00:00Z").unwrap();
        assert_eq!(t, 1_275_523_200);
        assert_eq!(format_rfc3339(t), "2010-06-03T00:00:00Z");
        assert_eq!(parse_rfc3339("2010-06-03T02:00:00+02:00").unwrap(), t);
        assert_eq!(parse_rfc3339("2010-06-03").unwrap(), t);
        assert_eq!(
            parse_rfc3339("2021-06-09T12:59:34.250Z").unwrap(),
            1_623_243_574
        );
        for bad in [
            "",
            "2010-13-01",
            "yesterday",
            "2010-06-03T00:00",
            "2010-06-03T00:00:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc5652_11_3_signing_time_encoding() {
        let t = parse_rfc3339("2021-06-09T12:59:34Z").unwrap();
        assert_eq!(der_time(t)[2..], *b"210609125934Z");
        assert_eq!(parse_der_time(23, b"210609125934Z"), Some(t));
        let far = parse_rfc3339("2050-01-01T00:00:00Z").unwrap();
        assert_eq!(der_time(far)[0], 0x18);
        assert_eq!(parse_der_time(24, &der_time(far)[2..]), Some(far));
        assert_eq!(from_asn1(&Asn1Time::from_unix(t).unwrap()), Some(t));
        assert_eq!(format_rfc5322(t), "Wed, 09 Jun 2021 12:59:34 +0000");
    }
}
