//! Numbers, durations, sizes and UTC times as people read them.

/// What a value measures: decides tick labels, the axis caption and how a value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A plain number.
    Count,
    /// A count of something named on the axis: "threads", "fds", "cores".
    Named(&'static str),
    Bytes,
    Seconds,
    /// A ratio 0..1 shown as a percentage.
    Percent,
}

impl Unit {
    /// The axis caption, for units whose tick labels do not carry it.
    pub fn caption(self) -> Option<&'static str> {
        match self {
            Unit::Named(n) => Some(n),
            _ => None,
        }
    }

    /// A tick label for `v` on an axis whose ticks are `step` apart.
    pub fn axis(self, v: f64, step: f64) -> String {
        match self {
            Unit::Count | Unit::Named(_) => {
                let a = v.abs();
                if a >= 1e9 {
                    format!("{}G", trim(v / 1e9, 2))
                } else if a >= 1e6 {
                    format!("{}M", trim(v / 1e6, 2))
                } else if a >= 1e4 {
                    format!("{}k", trim(v / 1e3, 1))
                } else {
                    grouped(v, step_decimals(step))
                }
            }
            Unit::Percent => format!("{} %", trim(v * 100.0, step_decimals(step * 100.0))),
            Unit::Bytes | Unit::Seconds => format_value(v, self),
        }
    }
}

/// Decimals needed to write multiples of `step` exactly (0.25 → 2, 5 → 0).
fn step_decimals(step: f64) -> usize {
    (0..4)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(4)
}

/// `v` with at most `decimals` decimals, trailing zeros removed.
fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// `v` with thousands separators and at most `decimals` decimals.
fn grouped(v: f64, decimals: usize) -> String {
    let s = trim(v, decimals);
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s.as_str()),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Significant decimals for a value of this size: 3 significant digits, at most 3 decimals.
fn decimals_for(v: f64) -> usize {
    let a = v.abs();
    if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    }
}

/// A value as a person reads it: `1,234`, `0.35 cores` is `0.35`, `1.5 GiB`, `850 ms`,
/// `3m 20s`, `45.2 %`.
pub fn format_value(v: f64, unit: Unit) -> String {
    if v.is_nan() {
        return "–".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".into() } else { "-∞".into() };
    }
    match unit {
        Unit::Count | Unit::Named(_) => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                grouped(v, 0)
            } else {
                grouped(v, decimals_for(v))
            }
        }
        Unit::Percent => format!("{} %", trim(v * 100.0, 1)),
        Unit::Bytes => {
            let a = v.abs();
            const K: f64 = 1024.0;
            if a < K {
                format!("{} B", trim(v, 0))
            } else if a < K * K {
                format!("{} KiB", trim(v / K, 1))
            } else if a < K * K * K {
                format!("{} MiB", trim(v / (K * K), 1))
            } else if a < K * K * K * K {
                format!("{} GiB", trim(v / (K * K * K), 1))
            } else {
                format!("{} TiB", trim(v / (K * K * K * K), 1))
            }
        }
        Unit::Seconds => {
            let a = v.abs();
            if a == 0.0 {
                "0 s".into()
            } else if a < 1e-3 {
                format!("{} µs", trim(v * 1e6, 0))
            } else if a < 1.0 {
                format!("{} ms", trim(v * 1e3, if a < 0.01 { 1 } else { 0 }))
            } else if a < 120.0 {
                format!("{} s", trim(v, if a < 10.0 { 2 } else { 1 }))
            } else {
                let sign = if v < 0.0 { "-" } else { "" };
                let s = a.round() as u64;
                let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
                if d > 0 {
                    format!("{sign}{d}d {h}h")
                } else if h > 0 {
                    format!("{sign}{h}h {m}m")
                } else {
                    format!("{sign}{m}m {sec}s")
                }
            }
        }
    }
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (UTC) of Unix seconds.
pub fn civil_date(unix: f64) -> String {
    let (y, m, d) = civil((unix / 86_400.0).floor() as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM` or `HH:MM:SS` (UTC) of Unix seconds.
pub fn utc_clock(unix: f64, seconds: bool) -> String {
    let s = unix.floor().rem_euclid(86_400.0) as u64;
    if seconds {
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s / 60 % 60)
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_datetime(unix: f64) -> String {
    format!("{} {} UTC", civil_date(unix), utc_clock(unix, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(format_value(127_412.0, Unit::Count), "127,412");
        assert_eq!(format_value(-1234.5, Unit::Count), "-1,234");
        assert_eq!(format_value(-12.5, Unit::Count), "-12.5");
        assert_eq!(format_value(0.3456, Unit::Named("cores")), "0.346");
        assert_eq!(format_value(1536.0, Unit::Bytes), "1.5 KiB");
        assert_eq!(
            format_value(3.0 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes),
            "3 GiB"
        );
        assert_eq!(format_value(0.85, Unit::Seconds), "850 ms");
        assert_eq!(format_value(12.34, Unit::Seconds), "12.3 s");
        assert_eq!(format_value(200.0, Unit::Seconds), "3m 20s");
        assert_eq!(format_value(7300.0, Unit::Seconds), "2h 1m");
        assert_eq!(format_value(0.452, Unit::Percent), "45.2 %");
        assert_eq!(format_value(f64::NAN, Unit::Count), "–");
        assert_eq!(Unit::Named("threads").axis(25_000.0, 5_000.0), "25k");
        assert_eq!(Unit::Count.axis(0.25, 0.25), "0.25");
        assert_eq!(Unit::Count.axis(0.5, 0.5), "0.5");
        assert_eq!(Unit::Percent.axis(0.5, 0.1), "50 %");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(civil_date(0.0), "1970-01-01");
        assert_eq!(civil_date(951_782_400.0), "2000-02-29");
        assert_eq!(utc_datetime(1_700_000_000.0), "2023-11-14 22:13:20 UTC");
        assert_eq!(civil_date(-1.0), "1969-12-31");
    }
}
