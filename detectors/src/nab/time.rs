//! Timestamps of the NAB corpus (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC) to Unix seconds, so CSV
//! rows and labelled windows compare as numbers. Hand-written because it is one format and a
//! date crate would be a heavy dependency for a pure library.

/// Unix seconds of `YYYY-MM-DD HH:MM:SS` (optionally `T` instead of the space, and a fraction
/// that is ignored), or `None` when the text is not in that form. A plain number is taken as
/// Unix seconds already.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let s = text.trim().trim_matches('"');
    if let Ok(n) = s.parse::<f64>() {
        return n.is_finite().then_some(n.floor() as i64);
    }
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b' ' && b[10] != b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse::<i64>().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_forms() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp("2014-04-10 07:15:00"), Some(1_397_114_100));
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000"),
            parse_timestamp("2014-04-10T07:15:00")
        );
        assert_eq!(parse_timestamp("2000-03-01 00:00:00"), Some(951_868_800));
        assert_eq!(parse_timestamp("12345"), Some(12345));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2014-13-10 07:15:00"), None);
    }
}
