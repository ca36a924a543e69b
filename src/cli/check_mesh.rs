//! `meshctl check http://SERVICE:PORT/...` for a service of the registry: which RouteRule the request
//! would match, where it would go (subsets, weights, endpoints), the policy, and the faults, all from
//! the same compiled tables `meshctl proxy` uses.

use std::io::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::check::{Args, Format};
use crate::cli::{Outcome, UsageError};
use crate::model::Resource;
use crate::proxy::mesh::States;
use crate::proxy::routes::{Cluster, Headers, RequestFacts, RouteAction, RouteTable, RuleAction};
use crate::proxy::services::Registry;

pub fn run(
    text: &str,
    host: &str,
    port: u16,
    registry: &Registry,
    objects: &[Resource],
    args: &Args,
) -> anyhow::Result<Outcome> {
    let Some(svc) = registry.lookup(host, port) else {
        return Err(UsageError(format!("{host}:{port} is not in the service registry")).into());
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(UsageError(format!("-H `{h}` is not `NAME: VALUE`")).into());
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| UsageError(format!("-H `{h}`: `{}` is not a header name", name.trim())))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| UsageError(format!("-H `{h}`: the value is not a valid header value")))?;
        headers.append(name, value);
    }
    let identity = crate::cli::proxy::identity(args.source.as_deref(), args.source_labels.clone().unwrap_or_default());
    let table = RouteTable::compile(objects, registry, &identity, &States::default());
    let fqdn = svc.fqdn();
    let Some(routes) = table.service(fqdn) else {
        return Err(UsageError(format!("{fqdn} has no routes")).into());
    };
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let path_and_query = rest.find('/').map_or("/", |i| &rest[i..]);
    let path = path_and_query.split(['?', '#']).next().unwrap_or("/");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(host);
    let facts = RequestFacts {
        method: &args.method,
        path,
        authority,
        headers: Headers::Map(&headers),
    };
    let rule = routes.select(&facts);
    let service = format!("{fqdn}:{}", svc.port);

    let mut out = std::io::stdout().lock();
    let (rule_id, action) = match rule {
        Some(r) => (Some(r.id.clone()), Some(&r.action)),
        None => (None, None),
    };
    let route_action: &RouteAction = match action {
        Some(RuleAction::Route(a)) => a,
        Some(RuleAction::Redirect { .. }) => &routes.fallback,
        None => &routes.fallback,
    };
    let redirect = match action {
        Some(RuleAction::Redirect { uri, authority: to }) => Some(format!(
            "http://{}{}",
            to.as_deref().unwrap_or(authority),
            uri.as_deref().unwrap_or(path_and_query)
        )),
        _ => None,
    };
    let empty = redirect.is_none()
        && route_action
            .targets
            .iter()
            .any(|t| t.weight > 0 && t.cluster.endpoints.is_empty());

    match args.output {
        Format::Json => {
            let route: Vec<Value> = if redirect.is_some() {
                Vec::new()
            } else {
                route_action
                    .targets
                    .iter()
                    .map(|t| {
                        json!({
                            "service": t.cluster.service,
                            "labels": t.cluster.labels,
                            "weight": t.weight,
                            "endpoints": t.cluster.endpoints.iter().map(|e| e.address.clone()).collect::<Vec<_>>(),
                            "policy": t.cluster.policy.describe(),
                        })
                    })
                    .collect()
            };
            let value = json!({
                "destination": text,
                "mesh": true,
                "service": service,
                "rule": rule_id,
                "precedence": rule.map(|r| r.precedence),
                "redirect": redirect,
                "route": route,
                "policy": route_action.targets.first().and_then(|t| t.cluster.policy.id.clone()),
                "faults": {
                    "delay": route_action.delay.as_ref().map(|d| d.describe()),
                    "abort": route_action.abort.as_ref().map(|a| json!({"percent": a.percent, "httpStatus": a.status.as_u16()})),
                },
                "timeout": humantime::format_duration(route_action.timeout).to_string(),
                "retries": route_action.retry.as_ref().map(|r| r.attempts),
            });
            writeln!(out, "{value}")?;
        }
        Format::Text => {
            writeln!(out, "{text} is the mesh service {service}")?;
            match rule {
                Some(r) => writeln!(out, "rule: {} (precedence {})", display_ref(&r.id), r.precedence)?,
                None => writeln!(out, "rule: none matches: every endpoint of the service, balanced")?,
            }
            if let Some(to) = &redirect {
                writeln!(out, "redirect: 301 to {to}")?;
            } else {
                for (i, t) in route_action.targets.iter().enumerate() {
                    let lead = if i == 0 { "route:" } else { "      " };
                    writeln!(
                        out,
                        "{lead} {} {}%  [{}]",
                        subset_name(&t.cluster, fqdn),
                        percent(t.weight, route_action.total_weight),
                        endpoints(&t.cluster)
                    )?;
                }
                let mut policies: Vec<String> = route_action.targets.iter().map(|t| policy_line(&t.cluster)).collect();
                policies.dedup();
                for p in policies {
                    writeln!(out, "policy: {p}")?;
                }
                writeln!(out, "faults: {}", faults(route_action))?;
                let extras = extras(route_action);
                if !extras.is_empty() {
                    writeln!(out, "also: {}", extras.join(", "))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(if empty { Outcome::Failure } else { Outcome::Success })
}

/// `route-rule/default/x` → `route-rule default/x`.
fn display_ref(id: &str) -> String {
    id.replacen('/', " ", 1)
}

fn subset_name(c: &Cluster, own: &str) -> String {
    let labels = if c.subset.is_empty() {
        "all endpoints".to_string()
    } else {
        c.subset.clone()
    };
    if c.service == own {
        labels
    } else {
        format!("{} {labels}", c.service)
    }
}

fn percent(weight: u32, total: u32) -> String {
    if total == 0 || total == 100 {
        weight.to_string()
    } else {
        format!("{:.1}", f64::from(weight) * 100.0 / f64::from(total))
    }
}

fn endpoints(c: &Cluster) -> String {
    if c.endpoints.is_empty() {
        "no endpoints: 503".to_string()
    } else {
        c.endpoints
            .iter()
            .map(|e| e.address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn policy_line(c: &Cluster) -> String {
    let p = &c.policy;
    let lb = match p.lb {
        crate::model::destination_policy::LbPolicy::RoundRobin => "ROUND_ROBIN",
        crate::model::destination_policy::LbPolicy::LeastConn => "LEAST_CONN",
        crate::model::destination_policy::LbPolicy::Random => "RANDOM",
    };
    match &p.id {
        None => format!("none ({lb})"),
        Some(id) => {
            let mut s = format!("{} ({lb}", display_ref(id));
            if p.outlier.is_some() {
                s.push_str(&format!(
                    ", maxConnections {}, httpMaxPendingRequests {}, httpMaxRequests {}",
                    p.max_connections, p.max_pending, p.max_requests
                ));
            }
            if let Some(o) = &p.outlier {
                s.push_str(&format!(
                    ", ejection after {} consecutive errors for {}",
                    o.consecutive_errors,
                    humantime::format_duration(o.sleep_window)
                ));
            }
            s.push(')');
            s
        }
    }
}

fn faults(a: &RouteAction) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &a.delay {
        let how = match (d.fixed, d.exponential) {
            (Some(f), _) => humantime::format_duration(f).to_string(),
            (None, Some(e)) => format!("exponential, mean {}", humantime::format_duration(e)),
            (None, None) => "0s".to_string(),
        };
        parts.push(format!("delay {how} for {}% of requests", d.percent));
    }
    if let Some(ab) = &a.abort {
        parts.push(format!("abort {} for {}% of requests", ab.status.as_u16(), ab.percent));
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("; ")
    }
}

fn extras(a: &RouteAction) -> Vec<String> {
    let mut out = vec![format!("timeout {}", humantime::format_duration(a.timeout))];
    if let Some(r) = &a.retry {
        let mut s = format!("{} retries", r.attempts);
        if let Some(t) = r.per_try_timeout {
            s.push_str(&format!(" ({} per try)", humantime::format_duration(t)));
        }
        out.push(s);
    }
    if let Some(u) = &a.rewrite_uri {
        out.push(format!("rewrite uri {u}"));
    }
    if let Some(h) = &a.rewrite_authority {
        out.push(format!("rewrite authority {h}"));
    }
    if !a.append_headers.is_empty() {
        let names: Vec<&str> = a.append_headers.iter().map(|(k, _)| k.as_str()).collect();
        out.push(format!("appends {}", names.join(", ")));
    }
    if let Some(m) = &a.mirror {
        out.push(format!("mirror to {}", subset_name(m, "")));
    }
    if a.cors.is_some() {
        out.push("CORS".to_string());
    }
    if a.websocket {
        out.push("websocket upgrade".to_string());
    }
    out
}
