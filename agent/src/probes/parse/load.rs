//! `/proc/loadavg`: the load averages and the number of kernel scheduling entities.
//!
//! Hand-written (five fields): procfs's `LoadAverage` holds the averages as `f32`, which
//! would export 0.49 as 0.49000000953674316.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Every thread of every process (the `total` of `running/total`): the host's thread
    /// count in one read instead of a walk over every `/proc/PID`.
    pub tasks: u64,
}

pub fn loadavg(text: &str) -> Option<LoadAvg> {
    let mut f = text.split_whitespace();
    let (one, five, fifteen) = (
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
    );
    let tasks = f.next()?.split_once('/')?.1.parse().ok()?;
    Some(LoadAvg {
        one,
        five,
        fifteen,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn the_fixture_host() {
        assert_eq!(
            loadavg(fixture!("v1/proc/loadavg")),
            Some(LoadAvg {
                one: 9.88,
                five: 4.60,
                fifteen: 2.65,
                tasks: 192
            })
        );
    }

    #[test]
    fn truncated_or_garbled_is_none() {
        assert_eq!(loadavg("0.1 0.2 0.3"), None);
        assert_eq!(loadavg("0.1 0.2 0.3 4"), None);
        assert_eq!(loadavg("a b c 1/2 3"), None);
    }
}
