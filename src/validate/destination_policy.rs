//! DestinationPolicy checks.

use super::checker::Checker;
use super::common::*;
use crate::diag::Code;
use crate::model::destination_policy::{DestinationPolicy, LbPolicy};

pub fn check<'r>(c: &mut Checker<'r>, p: &'r DestinationPolicy) {
    match &p.destination {
        None => {
            c.missing("destination", "a DestinationPolicy needs a destination")
                .help("name the service it applies to, e.g. `destination: {name: reviews}`");
        }
        Some(d) => c.at("destination", |c| check_service(c, d, "destination", true)),
    }
    c.opt("source", p.source.as_ref(), |c, s| check_service(c, s, "source", true));
    c.opt("loadBalancing", p.load_balancing.as_ref(), |c, lb| {
        match lb.name.as_deref() {
            None => {
                c.missing("name", "loadBalancing needs a `name`")
                    .help(format!("one of {}", LbPolicy::NAMES.join(", ")));
            }
            Some(name) => c.at("name", |c| {
                if LbPolicy::parse(name).is_none() {
                    let help = match crate::suggest::did_you_mean(name, LbPolicy::NAMES.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the policies are {}", LbPolicy::NAMES.join(", ")),
                    };
                    c.error(Code::InvalidValue, format!("unknown load-balancing policy `{name}`"))
                        .help(help);
                }
            }),
        }
    });
    c.opt("circuitBreaker", p.circuit_breaker.as_ref(), |c, cb| {
        match &cb.simple_cb {
            None => {
                c.missing("simpleCb", "circuitBreaker needs `simpleCb`")
                    .help("for example `simpleCb: {maxConnections: 100}`");
            }
            Some(s) => c.at("simpleCb", |c| {
                let counts = [
                    ("maxConnections", s.max_connections),
                    ("httpMaxPendingRequests", s.http_max_pending_requests),
                    ("httpMaxRequests", s.http_max_requests),
                    ("httpConsecutiveErrors", s.http_consecutive_errors),
                    ("httpMaxRequestsPerConnection", s.http_max_requests_per_connection),
                    ("httpMaxRetries", s.http_max_retries),
                ];
                for (field, value) in counts {
                    if let Some(v) = value {
                        c.at(field, |c| check_count(c, v));
                    }
                }
                c.opt(
                    "httpMaxEjectionPercent",
                    s.http_max_ejection_percent.as_ref(),
                    |c, p| {
                        if !(0..=100).contains(p) {
                            c.error(
                                Code::OutOfRange,
                                format!("{p} is not a percentage: it must be between 0 and 100"),
                            );
                        }
                    },
                );
                for (field, d) in [
                    ("sleepWindow", &s.sleep_window),
                    ("httpDetectionInterval", &s.http_detection_interval),
                ] {
                    c.opt(field, d.as_ref(), |c, d| {
                        check_duration(c, d);
                    });
                }
            }),
        }
    });
}
