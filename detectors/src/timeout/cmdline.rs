//! Deadlines that well-known clients keep in user space, read from their command line.
//!
//! Most programs hand their timeout to the kernel (a poll timeout, `SO_RCVTIMEO`, a select
//! timeval), where the sampler reads it. A few keep the deadline to themselves and wake on a
//! short tick instead: curl polls its socket every second toward `--max-time`. From `/proc`
//! such a client looks the same with a 10 s, a 3600 s or no deadline at all; its command line
//! is the one place that still says which. This table covers clients that people run from
//! scripts and cron jobs, where a missing or huge deadline is the classic hang. A deadline
//! set in a config file (`~/.curlrc`) is not seen: the verdict then says "no deadline" and
//! the detail names the flag to check.

/// A client's own deadline for the whole request, as its command line sets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Declared {
    /// The program (`curl`).
    pub program: &'static str,
    /// The flag that sets the deadline (`--max-time`).
    pub flag: &'static str,
    /// Its value in seconds; `None` when the flag is absent (no deadline: the program's default).
    pub seconds: Option<f64>,
}

/// The declared deadline of a known client, from its argv; `None` for programs this table
/// does not know (their timeouts are read from the kernel as usual).
pub fn declared_deadline<S: AsRef<str>>(argv: &[S]) -> Option<Declared> {
    let program = argv.first()?.as_ref();
    let base = program.rsplit('/').next().unwrap_or(program);
    match base {
        "curl" => Some(Declared {
            program: "curl",
            flag: "--max-time",
            seconds: curl_max_time(&argv[1..]),
        }),
        _ => None,
    }
}

/// curl's `-m SECS`, `-mSECS`, `--max-time SECS`, also inside bundled short flags (`-sm 5`);
/// the last one wins, as in curl. `0` means no limit.
fn curl_max_time<S: AsRef<str>>(args: &[S]) -> Option<f64> {
    // curl's short options that take a value: inside a bundle, the first of them consumes the
    // rest of the bundle (or the next argument), so a later `m` is part of a value, not a flag.
    const TAKES_VALUE: &str = "AbcCdDeEFHKmoPQrtTuUwxXyYz";
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        i += 1;
        if arg == "--" {
            break;
        }
        let value: Option<&str> = if arg == "--max-time" {
            let v = args.get(i).map(|s| s.as_ref());
            i += 1;
            v
        } else if let Some(bundle) = arg.strip_prefix('-').filter(|b| !b.starts_with('-')) {
            let mut value = None;
            for (pos, c) in bundle.char_indices() {
                if TAKES_VALUE.contains(c) {
                    let rest = &bundle[pos + 1..];
                    let v = if rest.is_empty() {
                        let v = args.get(i).map(|s| s.as_ref());
                        i += 1;
                        v
                    } else {
                        Some(rest)
                    };
                    if c == 'm' {
                        value = v;
                    }
                    break;
                }
            }
            value
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.trim().parse::<f64>().ok()) {
            found = (v > 0.0).then_some(v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(args: &[&str]) -> Option<f64> {
        declared_deadline(args).and_then(|d| d.seconds)
    }

    #[test]
    fn curl_forms() {
        assert_eq!(secs(&["curl", "-s", "http://x"]), None);
        assert_eq!(
            secs(&["/usr/bin/curl", "--max-time", "3600", "u"]),
            Some(3600.0)
        );
        assert_eq!(secs(&["curl", "-m", "0.3", "u"]), Some(0.3));
        assert_eq!(secs(&["curl", "-m10", "u"]), Some(10.0));
        assert_eq!(secs(&["curl", "-sSm", "5", "u"]), Some(5.0));
        assert_eq!(
            secs(&["curl", "-m", "5", "-m", "0", "u"]),
            None,
            "0 is no limit"
        );
        // `-o m`: the m is the output file, not the flag.
        assert_eq!(secs(&["curl", "-o", "m", "u"]), None);
        assert_eq!(secs(&["curl", "-om", "u"]), None);
        assert_eq!(secs(&["curl", "--", "-m", "5"]), None);
    }

    #[test]
    fn unknown_programs_are_not_guessed() {
        assert_eq!(declared_deadline(&["wget", "-T", "5"]), None);
        assert_eq!(declared_deadline::<&str>(&[]), None);
        assert_eq!(
            declared_deadline(&["curl"]),
            Some(Declared {
                program: "curl",
                flag: "--max-time",
                seconds: None
            })
        );
    }
}
