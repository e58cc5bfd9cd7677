//! Value types shared by every config section: durations, regexes and URLs that validate
//! themselves while they are parsed, so that a bad value is reported at its own line and column.

use serde::{Deserialize, Deserializer, de};
use std::fmt;

/// A strictly positive duration written as `"250ms"`, `"5s"`, `"5m"`, `"1h"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
            de::Error::custom(format!(
                "invalid duration {text:?}: {e} (write e.g. \"250ms\", \"5s\", \"5m\")"
            ))
        })?;
        if parsed.is_zero() {
            return Err(de::Error::custom(format!(
                "duration {text:?} must be greater than zero"
            )));
        }
        Ok(Self(parsed))
    }
}

/// A regular expression, compiled while the config is read.
#[derive(Clone)]
pub struct Regex(pub regex::Regex);

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text).map(Self).map_err(|e| {
            de::Error::custom(format!("invalid regex {text:?}: {}", gist(&e.to_string())))
        })
    }
}

/// The regex crate's messages span several lines; the last non-empty one says what is wrong.
fn gist(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// An absolute `http://` or `https://` URL with a host.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(pub url::Url);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials that may sit in the userinfo part.
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        write!(f, "{:?}", shown.as_str())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let url = url::Url::parse(&text)
            .map_err(|e| de::Error::custom(format!("invalid URL {text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(de::Error::custom(format!(
                "URL {text:?} must start with http:// or https://"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(de::Error::custom(format!("URL {text:?} has no host")));
        }
        Ok(Self(url))
    }
}

/// A `host:port` socket address (names allowed, resolved when used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort(pub String);

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| de::Error::custom(format!("address {text:?} must be host:port")))?;
        if host.is_empty() {
            return Err(de::Error::custom(format!("address {text:?} has no host")));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(Self(text)),
            _ => Err(de::Error::custom(format!(
                "address {text:?} has an invalid port {port:?}"
            ))),
        }
    }
}
