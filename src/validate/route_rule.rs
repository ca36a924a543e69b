//! RouteRule checks, after Istio's own validation (pilot's `ValidateRouteRule`), stricter where Istio
//! was vague.

use super::checker::Checker;
use super::common::*;
use crate::diag::Code;
use crate::model::route_rule::*;
use crate::model::{StringMap, StringMatch};

pub fn check<'r>(c: &mut Checker<'r>, r: &'r RouteRule) {
    match &r.destination {
        None => {
            c.missing("destination", "a RouteRule needs a destination")
                .help("name the service it routes, e.g. `destination: {name: reviews}`");
        }
        Some(d) => c.at("destination", |c| {
            check_service(c, d, "destination", true);
            if d.labels.as_ref().is_some_and(|l| !l.is_empty()) {
                c.at("labels", |c| {
                    c.error_key(
                        Code::ConflictingFields,
                        "a RouteRule's destination names the whole service and takes no labels",
                    )
                    .help("select versions with `route[].labels` instead");
                });
            }
        }),
    }
    c.opt("precedence", r.precedence.as_ref(), |c, p| {
        if i32::try_from(*p).is_err() {
            c.error(
                Code::OutOfRange,
                format!("precedence {p} does not fit a 32-bit integer"),
            );
        }
    });
    c.opt("match", r.match_.as_ref(), check_match);
    c.opt("route", r.route.as_ref(), |c, route| check_route(c, route));
    if let Some(redirect) = &r.redirect {
        check_redirect(c, r, redirect);
    }
    c.opt("rewrite", r.rewrite.as_ref(), |c, rw| {
        if rw.uri.is_none() && rw.authority.is_none() {
            c.error(Code::MissingField, "a rewrite needs `uri`, `authority` or both");
        }
    });
    c.opt("httpReqTimeout", r.http_req_timeout.as_ref(), |c, t| {
        match &t.simple_timeout {
            None => {
                c.missing("simpleTimeout", "httpReqTimeout needs `simpleTimeout`")
                    .help("for example `simpleTimeout: {timeout: 10s}`");
            }
            Some(st) => c.at("simpleTimeout", |c| {
                match &st.timeout {
                    None => {
                        c.missing("timeout", "simpleTimeout needs a `timeout`")
                            .help("for example `timeout: 10s`");
                    }
                    Some(d) => c.at("timeout", |c| {
                        check_duration(c, d);
                    }),
                }
                c.opt("overrideHeaderName", st.override_header_name.as_ref(), |c, h| {
                    check_header_name(c, h)
                });
            }),
        }
    });
    c.opt("httpReqRetries", r.http_req_retries.as_ref(), |c, rt| {
        match &rt.simple_retry {
            None => {
                c.missing("simpleRetry", "httpReqRetries needs `simpleRetry`")
                    .help("for example `simpleRetry: {attempts: 3, perTryTimeout: 2s}`");
            }
            Some(sr) => c.at("simpleRetry", |c| {
                match sr.attempts {
                    None => {
                        c.missing("attempts", "simpleRetry needs `attempts`");
                    }
                    Some(a) => c.at("attempts", |c| check_count(c, a)),
                }
                c.opt("perTryTimeout", sr.per_try_timeout.as_ref(), |c, d| {
                    check_duration(c, d);
                });
                c.opt("overrideHeaderName", sr.override_header_name.as_ref(), |c, h| {
                    check_header_name(c, h)
                });
            }),
        }
    });
    c.opt("httpFault", r.http_fault.as_ref(), check_http_fault);
    c.opt("l4Fault", r.l4_fault.as_ref(), check_l4_fault);
    c.opt("mirror", r.mirror.as_ref(), |c, m| check_service(c, m, "mirror", true));
    c.opt("corsPolicy", r.cors_policy.as_ref(), check_cors);
    c.opt("appendHeaders", r.append_headers.as_ref(), |c, headers| {
        check_append_headers(c, headers)
    });
}

fn check_match<'r>(c: &mut Checker<'r>, m: &'r MatchCondition) {
    if m.source.is_none() && m.source_labels.is_none() && m.tcp.is_none() && m.udp.is_none() && m.request.is_none() {
        c.error(Code::MissingField, "an empty match matches nothing specific")
            .help("give `source`, `request.headers`, `tcp` or `udp`, or remove `match` so the rule applies to all HTTP traffic");
    }
    c.opt("source", m.source.as_ref(), |c, s| {
        check_service(c, s, "match source", true)
    });
    c.opt("sourceLabels", m.source_labels.as_ref(), |c, labels| {
        c.warn_key(Code::Deprecated, "`match.sourceLabels` is deprecated")
            .help("move these labels to `match.source.labels`");
        check_labels(c, labels);
    });
    for (key, l4) in [("tcp", &m.tcp), ("udp", &m.udp)] {
        c.opt(key, l4.as_ref(), |c, l4| {
            for (field, subnets) in [
                ("sourceSubnet", &l4.source_subnet),
                ("destinationSubnet", &l4.destination_subnet),
            ] {
                c.opt(field, subnets.as_ref(), |c, subnets| {
                    for (i, s) in subnets.iter().enumerate() {
                        c.index(i, |c| {
                            if let Err(e) = parse_subnet(s) {
                                c.error(Code::InvalidSubnet, e);
                            }
                        });
                    }
                });
            }
        });
    }
    c.opt("request", m.request.as_ref(), |c, req| {
        c.opt("headers", req.headers.as_ref(), |c, headers| {
            for (name, sm) in headers {
                c.at(name, |c| {
                    if !is_header_name(name) {
                        c.error_key(
                            Code::InvalidHeaderName,
                            format!("`{name}` is not a valid HTTP header name"),
                        );
                    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
                        c.error_key(
                            Code::InvalidHeaderName,
                            format!("header names in a match must be lowercase: `{name}`"),
                        )
                        .help(format!("write `{}`", name.to_ascii_lowercase()));
                    }
                    check_string_match(c, sm);
                });
            }
        });
    });
}

fn check_string_match<'r>(c: &mut Checker<'r>, sm: &'r StringMatch) {
    for key in &sm.unknown_keys {
        c.at(key, |c| {
            let help = match crate::suggest::did_you_mean(key, StringMatch::FIELDS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "a header match has one of exact, prefix, regex".to_string(),
            };
            c.error_key(Code::UnknownField, format!("unknown field `{key}`"))
                .help(help);
        });
    }
    let set = [&sm.exact, &sm.prefix, &sm.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set == 0 && sm.unknown_keys.is_empty() {
        c.error(
            Code::HeaderMatch,
            "a header match needs one of `exact`, `prefix` or `regex`",
        );
    } else if set > 1 {
        let given: Vec<&'static str> = [("exact", &sm.exact), ("prefix", &sm.prefix), ("regex", &sm.regex)]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(name, _)| name)
            .collect();
        let (first, rest) = given.split_first().map_or(("exact", &[][..]), |(f, r)| (*f, r));
        for extra in rest {
            c.at(extra, |c| {
                c.error_key(
                    Code::HeaderMatch,
                    format!("a header match takes exactly one of `exact`, `prefix` or `regex`, not both `{first}` and `{extra}`"),
                )
                .help("to combine conditions, write one `regex`");
            });
        }
    }
    c.opt("regex", sm.regex.as_ref(), |c, re| {
        if let Some(detail) = regex_problem(re) {
            c.error(Code::InvalidRegex, format!("the regex does not compile: {detail}"))
                .help("meshctl matches with RE2-style syntax: lookaround and backreferences are not supported");
        }
    });
}

/// Why `re` does not compile, or None when it does. Compiling a regex costs far more than checking the
/// rest of a rule, and rule sets repeat the same few patterns, so the outcome for every pattern is
/// remembered (the compiled program itself is dropped at once): per thread, so that the common case
/// takes no lock, and behind that for the whole process, so that each worker thread does not compile
/// the same patterns again.
pub(super) fn regex_problem(re: &str) -> Option<String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};

    /// Bounds the memory that a rule set with very many distinct patterns can make each map hold.
    const MAX_REMEMBERED: usize = 4096;
    type Outcomes = HashMap<Box<str>, Option<String>>;

    fn remember(m: &mut Outcomes, re: &str, outcome: &Option<String>) {
        if m.len() >= MAX_REMEMBERED {
            m.clear();
        }
        m.insert(re.into(), outcome.clone());
    }

    thread_local! {
        static OUTCOMES: RefCell<Outcomes> = RefCell::new(HashMap::new());
    }
    static SHARED: LazyLock<Mutex<Outcomes>> = LazyLock::new(Mutex::default);

    if let Some(known) = OUTCOMES.with_borrow(|m| m.get(re).cloned()) {
        return known;
    }
    let shared_outcome = SHARED.lock().unwrap_or_else(PoisonError::into_inner).get(re).cloned();
    if let Some(outcome) = shared_outcome {
        OUTCOMES.with_borrow_mut(|m| remember(m, re, &outcome));
        return outcome;
    }
    let outcome = regex::Regex::new(re).err().map(|e| match e {
        regex::Error::Syntax(s) => s
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
        other => other.to_string(),
    });
    OUTCOMES.with_borrow_mut(|m| remember(m, re, &outcome));
    remember(&mut SHARED.lock().unwrap_or_else(PoisonError::into_inner), re, &outcome);
    outcome
}

fn check_route<'r>(c: &mut Checker<'r>, route: &'r [DestinationWeight]) {
    if route.is_empty() {
        c.error(Code::MissingField, "`route` is empty")
            .help("list at least one destination, or remove `route`");
        return;
    }
    let any_weight = route.iter().any(|w| w.weight.is_some());
    let mut sum: i64 = 0;
    let mut in_range = true;
    for (i, w) in route.iter().enumerate() {
        c.index(i, |c| {
            if let Some(weight) = w.weight {
                c.at("weight", |c| {
                    if !(0..=100).contains(&weight) {
                        in_range = false;
                        c.error(Code::OutOfRange, format!("weight {weight} is out of range: a weight is between 0 and 100"));
                    }
                });
                sum = sum.saturating_add(weight);
            }
            if route.len() > 1 && w.labels.as_ref().is_none_or(StringMap::is_empty) && w.destination.is_none() {
                c.missing("labels", format!("route[{i}] needs `labels` or a `destination`: with several entries, each must say where it goes"));
            }
            c.opt("labels", w.labels.as_ref(), |c, l| check_labels(c, l));
            c.opt("destination", w.destination.as_ref(), |c, d| check_service(c, d, "route destination", true));
        });
    }
    if in_range && (any_weight || route.len() > 1) && sum != 100 {
        let parts: Vec<String> = route.iter().map(|w| w.weight.unwrap_or(0).to_string()).collect();
        c.error_key(
            Code::WeightSum,
            format!("route weights add up to {sum}, not 100 ({})", parts.join(" + ")),
        )
        .help("the weights split traffic in percent, so they must total 100");
    }
    if in_range && sum == 100 && route.len() > 1 {
        let zero: Vec<usize> = route
            .iter()
            .enumerate()
            .filter(|(_, w)| w.weight.unwrap_or(0) == 0)
            .map(|(i, _)| i)
            .collect();
        if zero.len() == route.len() - 1 {
            for i in zero {
                c.index(i, |c| {
                    c.warn(
                        Code::ZeroWeight,
                        format!("route[{i}] has weight 0 and receives no traffic"),
                    )
                    .help("remove the entry, or give it a share of the weight");
                });
            }
        }
    }
}

fn check_redirect<'r>(c: &mut Checker<'r>, r: &'r RouteRule, redirect: &'r HttpRedirect) {
    c.at("redirect", |c| {
        if redirect.uri.is_none() && redirect.authority.is_none() {
            c.error(Code::MissingField, "a redirect needs `uri`, `authority` or both");
        }
    });
    let conflicts: [(&str, bool); 5] = [
        ("route", r.route.is_some()),
        ("rewrite", r.rewrite.is_some()),
        ("httpFault", r.http_fault.is_some()),
        ("l4Fault", r.l4_fault.is_some()),
        ("mirror", r.mirror.is_some()),
    ];
    for (field, present) in conflicts {
        if present {
            c.at(field, |c| {
                c.error_key(
                    Code::RedirectConflict,
                    format!("a rule with `redirect` cannot also have `{field}`"),
                )
                .help("a redirect answers the client itself; nothing is forwarded, so remove one of the two");
            });
        }
    }
    if let Some(m) = &r.match_ {
        for (field, present) in [("tcp", m.tcp.is_some()), ("udp", m.udp.is_some())] {
            if present {
                c.at("match", |c| {
                    c.at(field, |c| {
                        c.error_key(
                            Code::RedirectConflict,
                            format!("a rule with `redirect` can only match HTTP requests, not `{field}`"),
                        );
                    })
                });
            }
        }
    }
}

fn check_http_fault<'r>(c: &mut Checker<'r>, f: &'r HttpFaultInjection) {
    if f.delay.is_none() && f.abort.is_none() {
        c.error(Code::MissingField, "httpFault needs a `delay`, an `abort` or both");
    }
    c.opt("delay", f.delay.as_ref(), |c, d| {
        c.opt("percent", d.percent.as_ref(), |c, p| check_percent(c, *p));
        match (&d.fixed_delay, &d.exponential_delay) {
            (None, None) => {
                c.missing("fixedDelay", "a delay needs `fixedDelay` or `exponentialDelay`")
                    .help("for example `fixedDelay: 5s`");
            }
            (Some(_), Some(_)) => {
                c.at("exponentialDelay", |c| {
                    c.error_key(
                        Code::ConflictingFields,
                        "a delay takes `fixedDelay` or `exponentialDelay`, not both",
                    );
                });
            }
            _ => {}
        }
        for (field, value) in [
            ("fixedDelay", &d.fixed_delay),
            ("exponentialDelay", &d.exponential_delay),
        ] {
            c.opt(field, value.as_ref(), |c, v| {
                check_duration(c, v);
            });
        }
        c.opt("overrideHeaderName", d.override_header_name.as_ref(), |c, h| {
            check_header_name(c, h)
        });
    });
    c.opt("abort", f.abort.as_ref(), |c, a| {
        c.opt("percent", a.percent.as_ref(), |c, p| check_percent(c, *p));
        let kinds = [
            ("httpStatus", a.http_status.is_some()),
            ("grpcStatus", a.grpc_status.is_some()),
            ("http2Error", a.http2_error.is_some()),
        ];
        let set: Vec<&str> = kinds.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
        match set.len() {
            0 => {
                c.missing(
                    "httpStatus",
                    "an abort needs `httpStatus` (or `grpcStatus` or `http2Error`)",
                )
                .help("for example `httpStatus: 503`");
            }
            1 => {}
            _ => {
                c.at(set[1], |c| {
                    c.error_key(
                        Code::ConflictingFields,
                        format!(
                            "an abort takes one of httpStatus, grpcStatus, http2Error, not {}",
                            set.join(" and ")
                        ),
                    );
                });
            }
        }
        c.opt("httpStatus", a.http_status.as_ref(), |c, s| {
            if !(100..=599).contains(s) {
                c.error(
                    Code::InvalidHttpStatus,
                    format!("{s} is not an HTTP status code (100-599)"),
                )
                .help("aborts usually use 503, 500 or 404");
            }
        });
        c.opt("overrideHeaderName", a.override_header_name.as_ref(), |c, h| {
            check_header_name(c, h)
        });
    });
}

fn check_l4_fault<'r>(c: &mut Checker<'r>, f: &'r L4FaultInjection) {
    if f.throttle.is_none() && f.terminate.is_none() {
        c.error(Code::MissingField, "l4Fault needs a `throttle`, a `terminate` or both");
    }
    c.opt("throttle", f.throttle.as_ref(), |c, t| {
        c.opt("percent", t.percent.as_ref(), |c, p| check_percent(c, *p));
        for (field, v) in [
            ("downstreamLimitBps", t.downstream_limit_bps),
            ("upstreamLimitBps", t.upstream_limit_bps),
            ("throttleAfterBytes", t.throttle_after_bytes),
        ] {
            if let Some(v) = v {
                c.at(field, |c| {
                    if v < 0.0 {
                        c.error(Code::OutOfRange, format!("{v} is negative: {field} must be 0 or more"));
                    }
                });
            }
        }
        if t.throttle_after_period.is_some() && t.throttle_after_bytes.is_some() {
            c.at("throttleAfterBytes", |c| {
                c.error_key(
                    Code::ConflictingFields,
                    "a throttle takes `throttleAfterPeriod` or `throttleAfterBytes`, not both",
                );
            });
        }
        for (field, d) in [
            ("throttleAfterPeriod", &t.throttle_after_period),
            ("throttleForPeriod", &t.throttle_for_period),
        ] {
            c.opt(field, d.as_ref(), |c, d| {
                check_duration(c, d);
            });
        }
    });
    c.opt("terminate", f.terminate.as_ref(), |c, t| {
        c.opt("percent", t.percent.as_ref(), |c, p| check_percent(c, *p));
        c.opt("terminateAfterPeriod", t.terminate_after_period.as_ref(), |c, d| {
            check_duration(c, d);
        });
    });
}

fn check_cors<'r>(c: &mut Checker<'r>, p: &'r CorsPolicy) {
    c.opt("maxAge", p.max_age.as_ref(), |c, d| {
        check_duration(c, d);
    });
    c.opt("allowMethods", p.allow_methods.as_ref(), |c, methods| {
        for (i, m) in methods.iter().enumerate() {
            c.index(i, |c| {
                if !is_header_name(m) {
                    c.error(Code::InvalidValue, format!("`{m}` is not an HTTP method"));
                }
            });
        }
    });
    for (field, list) in [("allowHeaders", &p.allow_headers), ("exposeHeaders", &p.expose_headers)] {
        c.opt(field, list.as_ref(), |c, headers| {
            for (i, h) in headers.iter().enumerate() {
                c.index(i, |c| {
                    if !is_header_name(h) {
                        c.error(
                            Code::InvalidHeaderName,
                            format!("`{h}` is not a valid HTTP header name"),
                        );
                    }
                });
            }
        });
    }
    c.opt("allowOrigin", p.allow_origin.as_ref(), |c, origins| {
        for (i, o) in origins.iter().enumerate() {
            c.index(i, |c| {
                if o.trim().is_empty() {
                    c.error(Code::InvalidValue, "an allowed origin cannot be empty")
                        .help("use `*` to allow every origin");
                }
            });
        }
    });
}

fn check_append_headers<'r>(c: &mut Checker<'r>, headers: &'r StringMap) {
    for (name, value) in headers {
        c.at(name, |c| {
            check_header_name(c, name);
            if value.contains(['\r', '\n', '\0']) {
                c.error(
                    Code::InvalidValue,
                    format!("the value of header `{name}` contains a line break or NUL"),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::regex_problem;

    #[test]
    fn a_remembered_outcome_is_the_same_on_every_thread() {
        let bad = "v1-(unclosed";
        let here = regex_problem(bad);
        assert!(here.as_deref().is_some_and(|m| m.contains("unclosed")), "{here:?}");
        let there = std::thread::spawn(move || (regex_problem(bad), regex_problem("^v[0-9]+$")))
            .join()
            .ok();
        assert_eq!(there, Some((here, None)));
    }
}
