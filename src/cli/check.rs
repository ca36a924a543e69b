//! `meshctl check DEST`: would the proxy let this destination out? The rules are compiled and matched
//! exactly as `meshctl proxy` matches them ([`crate::proxy::rules`]), so the answer is the proxy's.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::json;

use crate::cli::objects::{self, plural, stderr_color};
use crate::cli::{Global, Outcome, UsageError};
use crate::load::LoadOptions;
use crate::load::files;
use crate::model::{Kind, Protocol, Resource, Spec};
use crate::proxy::rules::{Allow, RuleSet, canonical_ip, canonical_net};
use crate::store::Selector;
use crate::validate;
use crate::validate::egress_rule::{EgressHost, parse_egress_host};
use crate::validate::render;

/// Check whether the EgressRules allow a destination
///
/// Answers as `meshctl proxy` would: TCP connections (`tcp://IP:PORT`, `IP:PORT`) are matched by
/// address against the tcp and mongo ports of rules naming an IP or CIDR; HTTP requests, CONNECT
/// tunnels and SOCKS5 connections to a host name (`http://`, `https://`, `HOST:PORT`) by name against
/// the http, http2, grpc and https ports of rules naming a host or `*.domain`.
///
/// The rules come from -f files (only EgressRules are read; they must be valid), else from the store
/// of the current context. Exit status: 0 allowed, 1 denied, 2 bad usage (a DEST that is none of the
/// forms), invalid rule files, or a store that cannot be reached.
///
/// With --services, an http:// DEST naming a service of that registry is a mesh request: check
/// prints the RouteRule that matches it (given -H headers, --method and the source), the subsets it
/// goes to with their weights and endpoints, the DestinationPolicy and the faults. Exit status 1
/// then means the request would get a 503 (a subset with no endpoints).
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "meshctl check [OPTIONS] DEST",
    after_help = "Examples:\n  meshctl check tcp://10.0.0.5:3306\n  meshctl check https://api.example.com -f rules/ -R\n  meshctl check http://api.example.com:8080/v1 -o json\n  meshctl check db.example.com:5432\n  meshctl check http://reviews:9080/ -H 'cookie: user=jason' --services services.yaml"
)]
pub struct Args {
    /// The destination: tcp://IP:PORT, http://HOST[:PORT][/PATH], https://HOST[:PORT], HOST:PORT or IP:PORT
    // Optional to clap only: `-f a.yaml DEST` hands DEST to -f, which takes several paths; `run` takes
    // it back from there.
    #[arg(value_name = "DEST")]
    pub destination: Option<String>,
    /// Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Descend into directories recursively
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Service registry (as for `meshctl proxy --services`): an http:// DEST naming one of its
    /// services is checked against the RouteRules and DestinationPolicies instead
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,
    /// A request header for RouteRule matches, `NAME: VALUE` (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER", requires = "services")]
    pub headers: Vec<String>,
    /// The request method for RouteRule matches
    #[arg(long, value_name = "METHOD", default_value = "GET", requires = "services")]
    pub method: String,
    /// Labels of the source workload (KEY=VALUE,...), as for `meshctl proxy --source-labels`
    #[arg(long, value_name = "LABELS", value_parser = crate::cli::proxy::parse_labels, requires = "services")]
    pub source_labels: Option<crate::model::StringMap>,
    /// The source service, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels)
    #[arg(long, value_name = "NAME", requires = "services")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `allowed: ...` or `denied: ...`, with notes and hints
    Text,
    /// one JSON object: destination, allowed, rule, protocol, matched
    Json,
}

pub fn run(global: &Global, mut args: Args) -> anyhow::Result<Outcome> {
    let text = match args.destination.take() {
        Some(text) => text,
        // `-f rules.yaml tcp://...`: -f took the destination as one more path.
        None if args.files.len() >= 2 => args
            .files
            .pop()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        None => return Err(UsageError(format!("meshctl check needs a destination (DEST)\n{FORMS}")).into()),
    };
    let dest =
        Dest::parse(&text).map_err(|reason| UsageError(format!("`{text}` is not a destination: {reason}\n{FORMS}")))?;
    if let (Some(path), Scheme::Http, Host::Name(host)) = (&args.services, dest.scheme, &dest.host) {
        let registry = crate::proxy::services::Registry::load(path).map_err(UsageError)?;
        if registry.lookup(host, dest.port).is_some() {
            let objects = if args.files.is_empty() {
                let store = objects::open_store(global)?;
                store
                    .list(&Selector::default())
                    .map_err(|e| UsageError(e.to_string()))?
                    .items
            } else {
                match load(&args.files, args.recursive, &[])? {
                    Some(objects) => objects,
                    None => return Ok(Outcome::UsageOrIo),
                }
            };
            return super::check_mesh::run(&text, host, dest.port, &registry, &objects, &args);
        }
    }

    let (objects, source) = if args.files.is_empty() {
        let store = objects::open_store(global)?;
        let selector = Selector {
            kind: Some(Kind::EgressRule),
            namespace: None,
        };
        // Exit 1 means "denied": a store that fails is exit 2, whatever the failure.
        let listing = store.list(&selector).map_err(|e| UsageError(e.to_string()))?;
        (listing.items, "the store")
    } else {
        match load(&args.files, args.recursive, &[Kind::EgressRule])? {
            Some(objects) => (objects, "the files given"),
            None => return Ok(Outcome::UsageOrIo),
        }
    };
    let set = RuleSet::compile(&objects);
    let verdict = decide(&set, &objects, &dest, source);

    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Text => match &verdict {
            Verdict::Allowed { allow, notes } => {
                writeln!(
                    out,
                    "allowed: {text} by {} (destination {}, port {}/{})",
                    allow.rule,
                    allow.destination,
                    dest.port,
                    allow.protocol.as_str()
                )?;
                for note in notes {
                    writeln!(out, "  {note}")?;
                }
            }
            Verdict::Denied { hints } => {
                writeln!(out, "denied: no EgressRule allows {text}")?;
                for hint in hints {
                    writeln!(out, "  hint: {hint}")?;
                }
            }
        },
        Format::Json => {
            let value = match &verdict {
                Verdict::Allowed { allow, .. } => json!({
                    "destination": text,
                    "allowed": true,
                    "rule": allow.rule.to_string(),
                    "protocol": allow.protocol.as_str(),
                    "matched": allow.destination,
                }),
                Verdict::Denied { .. } => json!({
                    "destination": text,
                    "allowed": false,
                    "rule": null,
                    "protocol": null,
                    "matched": null,
                }),
            };
            writeln!(out, "{value}")?;
        }
    }
    out.flush()?;
    Ok(match verdict {
        Verdict::Allowed { .. } => Outcome::Success,
        Verdict::Denied { .. } => Outcome::Failure,
    })
}

const FORMS: &str = "\
DEST is one of:
  tcp://IP:PORT              tcp://10.0.0.5:3306, tcp://[2001:db8::5]:3306
  http://HOST[:PORT][/PATH]  http://api.example.com/v1 (port 80 unless given)
  https://HOST[:PORT]        https://api.example.com (port 443 unless given)
  HOST:PORT or IP:PORT       api.example.com:443 (matched by name), 10.0.0.5:3306 (by address)";

/// How the destination was written, which decides how the proxy would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `tcp://`: a TCP connection.
    Tcp,
    /// `http://`: a plain HTTP request through the proxy (absolute form).
    Http,
    /// `https://`: a CONNECT tunnel through the proxy.
    Https,
    /// `HOST:PORT`: a TCP connection to an address, or a CONNECT/SOCKS5 tunnel to a name.
    Bare,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dest {
    scheme: Scheme,
    host: Host,
    port: u16,
}

impl Dest {
    /// Parses DEST, or says what is wrong with it.
    fn parse(text: &str) -> Result<Dest, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "tcp" => Scheme::Tcp,
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    _ => return Err(format!("`{s}://` is not a scheme meshctl check knows")),
                };
                (scheme, rest)
            }
            None => (Scheme::Bare, text),
        };
        let authority = match scheme {
            Scheme::Http | Scheme::Https => {
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                &rest[..end]
            }
            Scheme::Tcp => rest.strip_suffix('/').unwrap_or(rest),
            Scheme::Bare => rest,
        };
        if authority.contains('@') {
            return Err("user information (`user@`) has no place in a destination".to_string());
        }
        let (host, port) = split_host_port(authority)?;
        let port = match (port, scheme) {
            (Some(p), _) => p,
            (None, Scheme::Http) => 80,
            (None, Scheme::Https) => 443,
            (None, _) => return Err("the port is missing".to_string()),
        };
        if scheme == Scheme::Tcp {
            if let Host::Name(name) = &host {
                return Err(format!(
                    "tcp:// takes an IP address, not the name `{name}`: TCP egress is matched by address \
                     (check a name with http://, https:// or {name}:{port})"
                ));
            }
        }
        Ok(Dest { scheme, host, port })
    }
}

/// `HOST`, `HOST:PORT`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`.
fn split_host_port(s: &str) -> Result<(Host, Option<u16>), String> {
    if s.is_empty() {
        return Err("the host is missing".to_string());
    }
    if let Some(inner) = s.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err("`[` without its `]`".to_string());
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in brackets is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(format!("`{after}` after `]` is not `:PORT`")),
            },
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    if s.matches(':').count() > 1 {
        return Err(
            if s.parse::<Ipv6Addr>().is_ok() || s.rsplit_once(':').is_some_and(|(a, _)| a.parse::<Ipv6Addr>().is_ok()) {
                "write an IPv6 address in brackets, as in [2001:db8::5]:3306".to_string()
            } else {
                "too many `:`".to_string()
            },
        );
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (s, None),
    };
    if host.is_empty() {
        return Err("the host is missing".to_string());
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok((Host::Ip(IpAddr::V4(v4)), port));
    }
    if host.contains('*') {
        return Err(format!(
            "`{host}` is a pattern: check one host, e.g. {}",
            host.replace('*', "www")
        ));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    Ok((Host::Name(host.to_string()), port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n != 0 => Ok(n),
        _ if p.is_empty() => Err("the port after `:` is missing".to_string()),
        _ => Err(format!("`{p}` is not a port: ports are 1-65535")),
    }
}

enum Verdict<'a> {
    Allowed { allow: Allow<'a>, notes: Vec<String> },
    Denied { hints: Vec<String> },
}

fn decide<'a>(set: &'a RuleSet, objects: &[Resource], dest: &Dest, source: &str) -> Verdict<'a> {
    let port = dest.port;
    let allowed = match (&dest.host, dest.scheme) {
        (Host::Ip(ip), Scheme::Http) => match set.match_addr(*ip, port) {
            Some(a) => Some((
                a,
                vec![format!(
                    "a request to an IP literal is matched by address, like the TCP connection that carries it: \
                     {} opens {} at the TCP level (HTTP host rules match names only)",
                    a.rule,
                    socket(*ip, port)
                )],
            )),
            None => {
                return Verdict::Denied {
                    hints: vec![format!(
                        "HTTP host rules match names: to reach {} by address, a tcp rule must open it",
                        socket(*ip, port)
                    )],
                };
            }
        },
        (Host::Ip(ip), _) => set.match_addr(*ip, port).map(|a| {
            let notes = if dest.scheme == Scheme::Https {
                vec![format!(
                    "carried as a CONNECT tunnel to {}, matched by address like any TCP connection; the TLS inside \
                     is the client's own",
                    socket(*ip, port)
                )]
            } else {
                Vec::new()
            };
            (a, notes)
        }),
        (Host::Name(name), scheme) => set.match_host(name, port).map(|a| {
            let notes = match (scheme, a.protocol) {
                (Scheme::Http, Protocol::Https) => vec![format!(
                    "the proxy originates TLS: it sends this request to {name}:{port} over HTTPS, as the port is \
                     declared https"
                )],
                (Scheme::Https, Protocol::Https) => vec![format!(
                    "carried as a CONNECT tunnel to {name}:{port}: TLS runs end to end between the client and \
                     {name}, untouched by the proxy"
                )],
                (Scheme::Https, p) => vec![format!(
                    "port {port} is declared {}, but the proxy tunnels CONNECT untouched: https:// is carried as a \
                     CONNECT tunnel to {name}:{port}, TLS end to end",
                    p.as_str()
                )],
                (Scheme::Bare, _) => vec![format!(
                    "reached by name as a CONNECT or SOCKS5 tunnel to {name}:{port}, passed through untouched"
                )],
                _ => Vec::new(),
            };
            (a, notes)
        }),
    };
    match allowed {
        Some((allow, notes)) => Verdict::Allowed { allow, notes },
        None => Verdict::Denied {
            hints: near_misses(set, objects, dest, source),
        },
    }
}

/// `10.0.0.5:3306`, `[2001:db8::5]:3306`.
fn socket(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// At most this many rules are named in hints.
const MAX_HINTS: usize = 3;

/// What nearly allowed a denied destination: rules that cover the address or name on other ports, a
/// wildcard that covers the subdomains of the name but not the name itself, or no rules at all. A
/// linear scan: this runs once per command, not per connection.
fn near_misses(set: &RuleSet, objects: &[Resource], dest: &Dest, source: &str) -> Vec<String> {
    if set.egress_rules() == 0 {
        return vec![format!("there are no EgressRules in {source}")];
    }
    let mut rules: Vec<&Resource> = objects
        .iter()
        .filter(|o| matches!(o.spec, Spec::EgressRule(_)))
        .collect();
    rules.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    let mut hints = Vec::new();
    let mut more = 0;
    for object in rules {
        let Spec::EgressRule(rule) = &object.spec else { continue };
        let Some(written) = rule.destination.as_ref().and_then(|d| d.service.as_deref()) else {
            continue;
        };
        let Ok(host) = parse_egress_host(written) else { continue };
        let tcp_level = matches!(host, EgressHost::Net(_));
        let hint = match (&host, &dest.host) {
            (EgressHost::Net(net), Host::Ip(ip)) if covers_addr(*net, *ip) => Some(format!(
                "opens {written} on {}, not {}",
                ports(rule, tcp_level),
                dest.port
            )),
            (EgressHost::Name { wildcard }, Host::Name(name)) => {
                let pattern = lower_no_dot(if *wildcard {
                    written.get(2..).unwrap_or_default()
                } else {
                    written
                });
                let name = lower_no_dot(name);
                if covers_name(&pattern, *wildcard, &name) {
                    Some(format!(
                        "opens {written} on {}, not {}",
                        ports(rule, tcp_level),
                        dest.port
                    ))
                } else if *wildcard && pattern == name {
                    Some(format!(
                        "allows {written}, which covers the subdomains of {pattern} but not {pattern} itself"
                    ))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(hint) = hint {
            if hints.len() < MAX_HINTS {
                hints.push(format!("{} {hint}", object.istioctl_ref()));
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        hints.push(format!("... and {} more", plural(more, "rule")));
    }
    hints
}

/// Whether a rule's network contains the address, as the proxy decides it (IPv4-mapped addresses
/// and networks as IPv4).
fn covers_addr(net: IpNet, ip: IpAddr) -> bool {
    canonical_net(net).contains(&canonical_ip(ip))
}

/// Whether a rule's name (lowercase, no trailing dot; for a wildcard, the suffix) covers `name`.
fn covers_name(pattern: &str, wildcard: bool, name: &str) -> bool {
    if !wildcard {
        return pattern == name;
    }
    name.len() > pattern.len() + 1
        && name.ends_with(pattern)
        && name.as_bytes().get(name.len() - pattern.len() - 1) == Some(&b'.')
}

fn lower_no_dot(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

/// The rule's ports that count for its kind of destination: `3306/tcp, 27017/mongo`.
fn ports(rule: &crate::model::EgressRule, tcp_level: bool) -> String {
    let listed: Vec<String> = rule
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok().filter(|&n| n != 0)?;
            let protocol = Protocol::parse(p.protocol.as_deref()?)?;
            (protocol.is_tcp_level() == tcp_level).then(|| format!("{port}/{}", protocol.as_str()))
        })
        .collect();
    if listed.is_empty() {
        "no usable port".to_string()
    } else {
        listed.join(", ")
    }
}

/// Reads the -f files and validates their EgressRules as `meshctl validate` does. Invalid rules are
/// reported on standard error and the result is `None` (exit 2: there is no rule set to answer
/// from); files that cannot be read are an `Err` (exit 2).
fn load(paths: &[PathBuf], recursive: bool, kinds: &[Kind]) -> anyhow::Result<Option<Vec<Resource>>> {
    let inputs = files::collect(paths, recursive).map_err(|e| UsageError(e.to_string()))?;
    let opts = LoadOptions {
        kinds: kinds.to_vec(),
        keep_resources: true,
        ..LoadOptions::default()
    };
    let validate::Checked {
        diagnostics,
        summary,
        resources,
    } = validate::check_inputs(&inputs, &opts).map_err(UsageError)?;
    if summary.errors > 0 {
        let mut err = anstream::stderr();
        let opts = render::text::TextOptions {
            color: stderr_color(),
            quiet: false,
        };
        render::text::render(&mut err, &diagnostics, &summary, &opts)?;
        writeln!(
            err,
            "Error: the {} have {} (see above): fix them to check against them",
            if kinds == [Kind::EgressRule] {
                "EgressRules"
            } else {
                "rules"
            },
            plural(summary.errors, "error")
        )?;
        return Ok(None);
    }
    Ok(Some(resources.into_iter().map(|(_, r)| r).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Dest {
        Dest::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    fn name(s: &str) -> Host {
        Host::Name(s.to_string())
    }

    #[test]
    fn destinations() {
        let d = |scheme, host, port| Dest { scheme, host, port };
        assert_eq!(ok("tcp://10.0.0.5:3306"), d(Scheme::Tcp, ip("10.0.0.5"), 3306));
        assert_eq!(ok("TCP://[::1]:3306/"), d(Scheme::Tcp, ip("::1"), 3306));
        assert_eq!(
            ok("http://api.example.com"),
            d(Scheme::Http, name("api.example.com"), 80)
        );
        assert_eq!(
            ok("http://api.example.com:8080/v1?q=1"),
            d(Scheme::Http, name("api.example.com"), 8080)
        );
        assert_eq!(ok("http://10.0.0.5/x"), d(Scheme::Http, ip("10.0.0.5"), 80));
        assert_eq!(
            ok("https://api.example.com"),
            d(Scheme::Https, name("api.example.com"), 443)
        );
        assert_eq!(
            ok("https://[2001:db8::1]:8443"),
            d(Scheme::Https, ip("2001:db8::1"), 8443)
        );
        assert_eq!(ok("api.example.com:443"), d(Scheme::Bare, name("api.example.com"), 443));
        assert_eq!(ok("10.0.0.5:3306"), d(Scheme::Bare, ip("10.0.0.5"), 3306));
        assert_eq!(
            ok("[::ffff:10.0.0.5]:3306"),
            d(Scheme::Bare, ip("::ffff:10.0.0.5"), 3306)
        );
    }

    #[test]
    fn bad_destinations() {
        for (text, why) in [
            ("", "host is missing"),
            ("api.example.com", "port is missing"),
            ("10.0.0.5", "port is missing"),
            ("tcp://10.0.0.5", "port is missing"),
            ("tcp://db.example.com:3306", "takes an IP address"),
            ("udp://10.0.0.5:53", "not a scheme"),
            ("10.0.0.5:0", "not a port"),
            ("10.0.0.5:65536", "not a port"),
            ("10.0.0.5:", "missing"),
            ("::1:3306", "brackets"),
            ("2001:db8::1", "brackets"),
            ("[::1", "without its"),
            ("[10.0.0.5]:80", "not an IPv6"),
            ("[::1]x", "not `:PORT`"),
            ("http://", "host is missing"),
            ("http://user@host", "user"),
            ("https://*.example.com", "pattern"),
            ("http://a b", "not a host name"),
        ] {
            match Dest::parse(text) {
                Ok(d) => panic!("{text:?} parsed as {d:?}"),
                Err(e) => assert!(e.contains(why), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn names_covered() {
        assert!(covers_name("example.com", true, "a.example.com"));
        assert!(covers_name("example.com", true, "a.b.example.com"));
        assert!(!covers_name("example.com", true, "example.com"));
        assert!(!covers_name("example.com", true, "aexample.com"));
        assert!(!covers_name("example.com", true, ".example.com"));
        assert!(covers_name("example.com", false, "example.com"));
        assert!(!covers_name("example.com", false, "a.example.com"));
    }
}
