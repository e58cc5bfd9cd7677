//! The samples of `/metrics` as the page reads them: the Prometheus text exposition the agent
//! serves, parsed back. The page takes every number it shows from here, so that it shows
//! exactly what `/metrics` says at that moment (one registry, one truth) and every value on
//! it can be traced to a series name.

use std::collections::HashMap;

/// One sample: sorted labels, the value and its text as exposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub raw: String,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Samples by metric name (as exposed: `_total`, `_bucket`, `_sum`, `_count` included).
#[derive(Debug, Default)]
pub struct Exposition {
    by_name: HashMap<String, Vec<Sample>>,
}

/// `name{k="v",...}` with labels sorted and values escaped as in the exposition: the key the
/// page writes in `data-metric` and a reader of `/metrics` can rebuild.
pub fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let mut s = String::with_capacity(name.len() + 16 * labels.len());
    s.push_str(name);
    if !labels.is_empty() {
        s.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(k);
            s.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => s.push_str("\\\\"),
                    '"' => s.push_str("\\\""),
                    '\n' => s.push_str("\\n"),
                    c => s.push(c),
                }
            }
            s.push('"');
        }
        s.push('}');
    }
    s
}

impl Exposition {
    /// Parse the text format; lines that are not samples are skipped (the page shows what it
    /// can rather than nothing).
    pub fn parse(text: &str) -> Self {
        let mut by_name: HashMap<String, Vec<Sample>> = HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, sample)) = parse_line(line) {
                by_name.entry(name.to_string()).or_default().push(sample);
            }
        }
        Self { by_name }
    }

    /// Every sample of `name`.
    pub fn all(&self, name: &str) -> &[Sample] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The samples of `name` whose labels include all of `want`.
    pub fn matching<'a>(
        &'a self,
        name: &str,
        want: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.all(name).iter().filter(move |s| s.has(want))
    }

    /// The one sample of `name` with exactly the labels `want` (order free).
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<&Sample> {
        self.all(name)
            .iter()
            .find(|s| s.labels.len() == want.len() && s.has(want))
    }

    /// The distinct values of `label` over the samples of `name`, sorted.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .all(name)
            .iter()
            .filter_map(|s| s.label(label).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A histogram's buckets `(upper bound, count in that bucket)` (not cumulative), its sum
    /// and count, for the label set `want` (without `le`).
    pub fn histogram(&self, name: &str, want: &[(&str, &str)]) -> Option<Histogram> {
        let mut cumulative: Vec<(f64, f64)> = self
            .matching(&format!("{name}_bucket"), want)
            .filter(|s| s.labels.len() == want.len() + 1)
            .filter_map(|s| Some((parse_value(s.label("le")?)?, s.value)))
            .collect();
        if cumulative.is_empty() {
            return None;
        }
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut prev = 0.0;
        let buckets = cumulative
            .into_iter()
            .map(|(le, c)| {
                let n = (c - prev).max(0.0);
                prev = c;
                (le, n as u64)
            })
            .collect();
        Some(Histogram {
            buckets,
            sum: self.get(&format!("{name}_sum"), want)?.value,
            count: self.get(&format!("{name}_count"), want)?.value,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: f64,
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

/// `name{a="x",b="y"} value [timestamp]`.
fn parse_line(line: &str) -> Option<(&str, Sample)> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => (&line[..i], &line[i..]),
        None => return None,
    };
    let mut labels = Vec::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = None;
        loop {
            // Skip separators, read `key="value"` pairs until `}`.
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => continue,
                _ => {}
            }
            let key_start = i;
            let mut key_end = i + c.len_utf8();
            for (j, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key_end = j + c.len_utf8();
            }
            let key = body[key_start..key_end].trim().to_string();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            if end.is_some() {
                break;
            }
        }
        &body[end?..]
    } else {
        rest
    };
    let raw = rest.split_whitespace().next()?;
    let value = parse_value(raw)?;
    labels.sort();
    Some((
        name,
        Sample {
            labels,
            value,
            raw: raw.to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP process_thread_count Threads
# TYPE process_thread_count gauge
process_thread_count{service="api"} 12
process_thread_count{service="we\"ird\\name"} 3
lookout_service_thread_limit{kind="expected",service="api"} 500
system_thread_count 812
lookout_service_cold_start_seconds_bucket{service="api",le="0.5"} 1
lookout_service_cold_start_seconds_bucket{service="api",le="1"} 3
lookout_service_cold_start_seconds_bucket{service="api",le="+Inf"} 4
lookout_service_cold_start_seconds_sum{service="api"} 5.5
lookout_service_cold_start_seconds_count{service="api"} 4
weird NaN
"#;

    #[test]
    fn parses_samples_labels_and_escapes() {
        let e = Exposition::parse(TEXT);
        assert_eq!(
            e.get("process_thread_count", &[("service", "api")])
                .unwrap()
                .value,
            12.0
        );
        let odd = e
            .get("process_thread_count", &[("service", "we\"ird\\name")])
            .unwrap();
        assert_eq!(odd.raw, "3");
        assert_eq!(
            series_key("process_thread_count", &odd.labels),
            r#"process_thread_count{service="we\"ird\\name"}"#
        );
        assert_eq!(e.get("system_thread_count", &[]).unwrap().value, 812.0);
        assert!(e.get("weird", &[]).unwrap().value.is_nan());
        assert_eq!(
            e.label_values("lookout_service_thread_limit", "kind"),
            vec!["expected"]
        );
        assert!(
            e.get("lookout_service_thread_limit", &[("service", "api")])
                .is_none()
        );
    }

    #[test]
    fn histograms_come_back_per_bucket() {
        let e = Exposition::parse(TEXT);
        let h = e
            .histogram("lookout_service_cold_start_seconds", &[("service", "api")])
            .unwrap();
        assert_eq!(h.buckets, vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 1)]);
        assert_eq!((h.sum, h.count), (5.5, 4.0));
    }
}
