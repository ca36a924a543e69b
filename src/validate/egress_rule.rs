//! EgressRule checks. The destination decides how traffic is matched: a host name (or `*.domain`) for
//! HTTP-level protocols, an IP or CIDR for TCP-level ones (TCP carries no host name to match on).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::checker::Checker;
use super::common::*;
use crate::diag::Code;
use crate::model::egress_rule::{EgressRule, Protocol};

/// What an egress destination names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressHost {
    /// An IP address or CIDR: matched for TCP by address.
    Net(IpNet),
    /// A host name, or `*.domain` when `wildcard`.
    Name { wildcard: bool },
}

/// Parses an egress destination, or says why it is not one.
pub fn parse_egress_host(s: &str) -> Result<EgressHost, String> {
    if s.is_empty() {
        return Err("the destination service is empty".to_string());
    }
    let looks_ip = s.contains(':') || s.contains('/') || s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_ip {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(EgressHost::Net(IpNet::from(ip)));
        }
        return parse_subnet(s).map(EgressHost::Net);
    }
    let (wildcard, rest) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if rest.contains('*') {
        return Err(format!(
            "`{s}` has a `*` that is not a leading `*.`: only a whole leading label may be a wildcard, as in `*.example.com`"
        ));
    }
    if !is_dns_name(rest) {
        return Err(format!(
            "`{s}` is not a host name, `*.domain` wildcard, IP address or CIDR"
        ));
    }
    Ok(EgressHost::Name { wildcard })
}

pub fn check<'r>(c: &mut Checker<'r>, r: &'r EgressRule) {
    let mut host = None;
    match &r.destination {
        None => {
            c.missing("destination", "an EgressRule needs a destination").help("for example `destination: {service: \"*.example.com\"}` or `{service: 10.0.0.5/32}`");
        }
        Some(d) => c.at("destination", |c| {
            match d.service.as_deref() {
                None | Some("") => {
                    let help = if d.name.is_some() {
                        "an EgressRule's destination is given by `service` (a host name, `*.domain`, IP or CIDR); `name` is not used"
                    } else {
                        "for example `service: \"*.example.com\"` or `service: 10.0.0.5/32`"
                    };
                    c.missing("service", "an EgressRule's destination needs `service`").help(help);
                }
                Some(s) => c.at("service", |c| match parse_egress_host(s) {
                    Ok(h) => {
                        if let EgressHost::Net(net) = &h {
                            if net.prefix_len() == 0 {
                                c.warn(Code::OpenEgress, format!("`{s}` opens every address on the listed ports"))
                                    .help("name the addresses the application needs; least privilege keeps a compromised service contained");
                            }
                        }
                        host = Some(h);
                    }
                    Err(e) => {
                        c.error(Code::InvalidEgressHost, e);
                    }
                }),
            }
            for (field, present) in [("name", d.name.is_some()), ("namespace", d.namespace.is_some()), ("domain", d.domain.is_some()), ("labels", d.labels.is_some())] {
                if present {
                    c.at(field, |c| {
                        c.error_key(Code::ConflictingFields, format!("an EgressRule's destination uses only `service`; `{field}` would be ignored"))
                            .help("remove it, and name the external host or address in `service`");
                    });
                }
            }
        }),
    }
    match &r.ports {
        None => {
            c.missing("ports", "an EgressRule needs `ports`")
                .help("for example `ports: [{port: 443, protocol: https}]`");
        }
        Some(ports) if ports.is_empty() => {
            c.at("ports", |c| {
                c.error(
                    Code::MissingField,
                    "`ports` is empty: an EgressRule opens at least one port",
                );
            });
        }
        Some(ports) => c.at("ports", |c| {
            let mut seen: HashMap<i64, usize> = HashMap::new();
            for (i, p) in ports.iter().enumerate() {
                c.index(i, |c| {
                    match p.port {
                        None => {
                            c.missing("port", "each port needs a `port` number");
                        }
                        Some(n) => c.at("port", |c| {
                            if !(1..=65535).contains(&n) {
                                c.error(Code::OutOfRange, format!("port {n} is out of range: ports are 1-65535"));
                            } else if let Some(first) = seen.insert(n, i) {
                                seen.insert(n, first);
                                c.error(
                                    Code::DuplicatePort,
                                    format!("port {n} is listed twice (first at ports[{first}])"),
                                )
                                .help("list each port once, with one protocol");
                            }
                        }),
                    }
                    match p.protocol.as_deref() {
                        None => {
                            c.missing("protocol", "each port needs a `protocol`")
                                .help(format!("one of {}", Protocol::NAMES.join(", ")));
                        }
                        Some(name) => c.at("protocol", |c| match Protocol::parse(name) {
                            None => {
                                let help = match crate::suggest::did_you_mean(name, Protocol::NAMES.iter().copied()) {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None => format!("the protocols are {}", Protocol::NAMES.join(", ")),
                                };
                                c.error(Code::InvalidValue, format!("unknown protocol `{name}`"))
                                    .help(help);
                            }
                            Some(proto) => check_protocol_fits(c, host.as_ref(), proto, r),
                        }),
                    }
                });
            }
        }),
    }
}

fn check_protocol_fits(c: &mut Checker<'_>, host: Option<&EgressHost>, proto: Protocol, r: &EgressRule) {
    let service = r
        .destination
        .as_ref()
        .and_then(|d| d.service.as_deref())
        .unwrap_or_default();
    match host {
        Some(EgressHost::Net(_)) if !proto.is_tcp_level() => {
            c.error(
                Code::ProtocolMismatch,
                format!(
                    "an IP or CIDR destination allows only tcp and mongo ports, not {}",
                    proto.as_str()
                ),
            )
            .help(format!(
                "{} traffic is matched by host name: name the host in `service`, or use protocol tcp for `{service}`",
                proto.as_str()
            ));
        }
        Some(EgressHost::Name { .. }) if proto.is_tcp_level() => {
            c.error(Code::ProtocolMismatch, format!("a host-name destination cannot open a {} port", proto.as_str())).help(format!(
                "TCP egress needs an IP address or CIDR: a TCP connection carries no host name to match `{service}` against; put the address in `service` (e.g. 10.0.0.5/32)"
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_hosts() {
        assert_eq!(
            parse_egress_host("*.example.com"),
            Ok(EgressHost::Name { wildcard: true })
        );
        assert_eq!(
            parse_egress_host("api.example.com"),
            Ok(EgressHost::Name { wildcard: false })
        );
        assert!(matches!(parse_egress_host("10.0.0.5"), Ok(EgressHost::Net(_))));
        assert!(matches!(parse_egress_host("10.0.0.0/8"), Ok(EgressHost::Net(_))));
        assert!(matches!(parse_egress_host("2001:db8::1"), Ok(EgressHost::Net(_))));
        assert!(parse_egress_host("*.*.example.com").is_err());
        assert!(parse_egress_host("api.*.com").is_err());
        assert!(parse_egress_host("*").is_err());
        assert!(parse_egress_host("10.0.0.999").is_err());
        assert!(parse_egress_host("bad_host.com").is_err());
    }
}
