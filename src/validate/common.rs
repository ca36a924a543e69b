//! Checks shared by the kinds: names, labels, durations, header names, service references, IPs.

use std::net::IpAddr;
use std::time::Duration as StdDuration;

use ipnet::IpNet;

use super::checker::Checker;
use crate::diag::Code;
use crate::model::{Duration, IstioService, StringMap};

/// A DNS-1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A host name as DNS allows it (any case), at most 253 characters, labels at most 63.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// The name part of a Kubernetes label key, and label values: alphanumerics, '-', '_', '.', starting
/// and ending alphanumeric, at most 63 (values may also be empty).
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why a label key is invalid, if it is.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Some(format!(
                "the prefix `{p}` of label key `{key}` is not a DNS subdomain (lowercase, dot-separated, at most 253 characters)"
            ));
        }
    }
    if !is_label_name(name) {
        return Some(format!(
            "`{key}` is not a valid label key: the name must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    None
}

pub fn label_value_ok(value: &str) -> bool {
    value.is_empty() || is_label_name(value)
}

/// Checks a metadata name or a namespace.
pub fn check_dns_label(c: &mut Checker<'_>, what: &str, value: &str) {
    if !is_dns1123_label(value) {
        let mut help =
            "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
                .to_string();
        if value.len() <= 63 && is_dns1123_label(&value.to_ascii_lowercase().replace(['_', '.'], "-")) {
            help = format!(
                "{help}: `{}` would do",
                value.to_ascii_lowercase().replace(['_', '.'], "-")
            );
        }
        c.error(
            Code::InvalidName,
            format!("`{value}` is not a valid {what}: it must be a DNS-1123 label"),
        )
        .help(help);
    }
}

/// Checks every key and value of a label map.
pub fn check_labels<'r>(c: &mut Checker<'r>, labels: &'r StringMap) {
    for (key, value) in labels {
        c.at(key, |c| {
            if let Some(problem) = label_key_problem(key) {
                c.error_key(Code::InvalidLabel, problem);
            } else if !label_value_ok(value) {
                c.error(
                    Code::InvalidLabel,
                    format!("`{value}` is not a valid value for label `{key}`: at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
                );
            }
        });
    }
}

/// Parses a duration and checks Istio's bounds: positive, at least 1 ms.
pub fn check_duration(c: &mut Checker<'_>, d: &Duration) -> Option<StdDuration> {
    match d.parse() {
        Err(e) => {
            c.error(Code::InvalidDuration, e.to_string())
                .help("durations are written like 1h, 1m, 10s, 1.5s or 500ms");
            None
        }
        Ok(v) if v < StdDuration::from_millis(1) => {
            c.error(
                Code::InvalidDuration,
                format!("`{d}` is shorter than 1ms: Istio's durations must be at least 1ms"),
            );
            None
        }
        Ok(v) => Some(v),
    }
}

/// An HTTP header name (an RFC 7230 token).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub fn check_header_name(c: &mut Checker<'_>, name: &str) {
    if !is_header_name(name) {
        c.error_key(
            Code::InvalidHeaderName,
            format!("`{name}` is not a valid HTTP header name"),
        )
        .help("header names are letters, digits and !#$%&'*+-.^_`|~ with no spaces or colons");
    }
}

/// Checks a service reference (`destination`, `source`, `mirror`, a route's `destination`).
/// `role` names it in messages ("destination").
pub fn check_service<'r>(c: &mut Checker<'r>, s: &'r IstioService, role: &str, require: bool) {
    if require && s.name.as_deref().is_none_or(str::is_empty) && s.service.as_deref().is_none_or(str::is_empty) {
        c.missing("name", format!("the {role} needs a `name` (or a `service` FQDN)"))
            .help("for example `name: reviews`");
    }
    c.opt("name", s.name.as_ref(), |c, name| {
        if !name.is_empty() && !is_dns1123_label(name) {
            c.error(
                Code::InvalidName,
                format!("`{name}` is not a valid service name: it must be a DNS-1123 label"),
            )
            .help("use the short name (`reviews`); put a full domain name in `service`");
        }
    });
    c.opt("namespace", s.namespace.as_ref(), |c, ns| {
        check_dns_label(c, "namespace", ns)
    });
    c.opt("domain", s.domain.as_ref(), |c, domain| {
        if !is_dns_name(domain) {
            c.error(Code::InvalidName, format!("`{domain}` is not a valid domain"));
        }
    });
    c.opt("service", s.service.as_ref(), |c, svc| {
        if !is_dns_name(svc) {
            c.error(Code::InvalidName, format!("`{svc}` is not a valid service FQDN"));
        }
    });
    c.opt("labels", s.labels.as_ref(), |c, labels| check_labels(c, labels));
}

/// Checks an IP address or CIDR (`10.0.0.0/8`, `10.0.0.5`, `2001:db8::/32`).
pub fn parse_subnet(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => Err(format!(
            "`{s}` has host bits set: write the network `{}`, or the single address `{}/{}`",
            net.trunc(),
            net.addr(),
            net.max_prefix_len()
        )),
        Ok(net) => Ok(net),
        Err(_) => Err(format!(
            "`{s}` is not an IP address or CIDR (such as 10.0.0.5 or 10.0.0.0/24)"
        )),
    }
}

/// Checks a percentage (0–100).
pub fn check_percent(c: &mut Checker<'_>, p: f64) {
    if !(0.0..=100.0).contains(&p) {
        c.error(
            Code::OutOfRange,
            format!("{p} is not a percentage: it must be between 0 and 100"),
        );
    }
}

/// Checks a count that must be >= 0 and fit Istio's int32 fields.
pub fn check_count(c: &mut Checker<'_>, n: i64) {
    if n < 0 {
        c.error(
            Code::OutOfRange,
            format!("{n} is negative: this count must be 0 or more"),
        );
    } else if n > i64::from(i32::MAX) {
        c.error(
            Code::OutOfRange,
            format!("{n} is too large: the largest value is {}", i32::MAX),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("reviews-v3"));
        assert!(is_dns1123_label("a"));
        assert!(!is_dns1123_label("Reviews"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_label(&"a".repeat(63)));
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(label_key_problem("version"), None);
        assert_eq!(label_key_problem("app.kubernetes.io/name"), None);
        assert!(label_key_problem("Bad Key").is_some());
        assert!(label_key_problem("UPPER.io/x").is_some());
        assert!(label_value_ok(""));
        assert!(label_value_ok("v1.2_3"));
        assert!(!label_value_ok("-v1"));
    }

    #[test]
    fn subnets() {
        assert!(parse_subnet("10.0.0.5").is_ok());
        assert!(parse_subnet("10.0.0.0/24").is_ok());
        assert!(parse_subnet("2001:db8::/32").is_ok());
        assert!(parse_subnet("10.0.0.5/24").unwrap_err().contains("10.0.0.0/24"));
        assert!(parse_subnet("10.0.0.300").is_err());
    }
}
