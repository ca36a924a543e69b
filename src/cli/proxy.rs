//! `meshctl proxy`: the local sidecar-style egress proxy.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Global, Outcome};
use crate::context;
use crate::proxy::{self, Forward, access_log::Format, source::Source};

/// Run a local sidecar-style proxy that enforces the rules: egress and version routing
///
/// External traffic is denied unless an EgressRule allows it: TCP by IP/CIDR and port, HTTP and HTTPS
/// by host name (exact or *.domain). The rules come from the current context's store and are followed
/// live (a created or deleted rule applies to new connections within a second, no restart), or from
/// -f files, re-read when they change. A rule set that fails validation is refused and the last good
/// one stays in force; established connections are never cut by a rule change.
///
/// With --services FILE, HTTP requests for the services listed there (name, port, endpoints with
/// labels) are routed as an Istio 0.x sidecar routed them: RouteRules pick the version (weights,
/// header matches, redirect, rewrite, faults, timeouts, retries, mirror, CORS, WebSocket) and
/// DestinationPolicies balance and guard the endpoints (load balancing, circuit breaker, outlier
/// ejection). See docs/routing.md.
///
/// Clients reach it through the proxy port (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY: absolute-form HTTP,
/// CONNECT and SOCKS5 on one port), through --forward for clients that cannot use a proxy, or, with
/// --transparent, through iptables capture (see --print-iptables). Every connection or request is
/// logged (standard output unless --access-log); the admin port serves /metrics, /config_dump and
/// /ready. SIGTERM or SIGINT stops accepting and lets open connections finish.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    meshctl proxy --forward 127.0.0.1:3306=10.0.0.5:3306\n  \
    HTTPS_PROXY=http://127.0.0.1:15001 curl https://api.example.com/\n  \
    meshctl proxy -f rules/ -R --log-format json --access-log /var/log/meshctl-proxy.log\n  \
    meshctl proxy --services services.yaml --source-labels app=productpage,version=v1 --forward 19080=reviews:9080\n  \
    meshctl proxy --print-iptables --proxy-uid 1337 | sudo sh")]
pub struct Args {
    /// Rules from these files or directories instead of the store; re-read when they change
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Descend into -f directories recursively
    #[arg(short = 'R', long, requires = "files")]
    pub recursive: bool,
    /// The proxy port: HTTP forward proxy (absolute-form and CONNECT) and SOCKS5 (port 0: any free
    /// port; the start-up lines say which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
    pub listen: SocketAddr,
    /// The admin port: /metrics, /config_dump, /ready
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// Accept connections on LOCAL (ADDR:PORT, or PORT on 127.0.0.1) and carry them to HOST:PORT when
    /// an EgressRule allows it (repeatable)
    #[arg(long = "forward", value_name = "LOCAL=HOST:PORT", value_parser = parse_forward)]
    pub forwards: Vec<Forward>,
    /// Also take traffic redirected to the proxy port by iptables/nft (its original destination is
    /// read with SO_ORIGINAL_DST; HTTP Host and TLS SNI are read for host rules)
    #[arg(long)]
    pub transparent: bool,
    /// Verify upstream TLS (for `https` egress ports) against this PEM bundle instead of the system roots
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Access log format
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub log_format: Format,
    /// Write the access log to this file (appended) instead of standard output (`-`)
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<PathBuf>,
    /// Write no access log at all (the counters on /metrics still count everything)
    #[arg(long, conflicts_with_all = ["access_log", "log_format"])]
    pub no_access_log: bool,
    /// Worker threads (default: one per CPU); forwards to an IP address are relayed by as many
    /// threads of their own
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// How long to wait for an upstream to accept a connection (then 504, or a close for TCP)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// On SIGTERM, how long open connections may take to finish
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Print the iptables commands that capture outbound TCP for --transparent, and exit
    #[arg(long)]
    pub print_iptables: bool,
    /// Service registry (YAML: services with a port and endpoints with labels); requests to these
    /// services are routed by the RouteRules and DestinationPolicies. Re-read when it changes
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,
    /// Labels of the workload the proxy speaks for, matched by `match.source` and `sourceLabels`
    /// (KEY=VALUE,...)
    #[arg(long, value_name = "LABELS", value_parser = parse_labels)]
    pub source_labels: Option<crate::model::StringMap>,
    /// The service the proxy speaks for, NAME or NAME.NAMESPACE (default: the `app` label of
    /// --source-labels, in namespace default)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// With --print-iptables: the uid the proxy runs as (its own traffic is not captured)
    #[arg(long, value_name = "UID", default_value_t = 1337, requires = "print_iptables")]
    pub proxy_uid: u32,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<Outcome> {
    if args.print_iptables {
        print!(
            "{}",
            iptables(args.proxy_uid, args.listen.port(), args.listen.is_ipv6())
        );
        return Ok(Outcome::Success);
    }
    let source = if args.files.is_empty() {
        let selection = context::select(global.store.as_deref(), global.context.as_deref())
            .map_err(crate::cli::objects::config_error)?;
        Source::Store(selection)
    } else {
        Source::Files {
            paths: args.files,
            recursive: args.recursive,
        }
    };
    let workers = args
        .workers
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    proxy::run(proxy::Config {
        listen: args.listen,
        admin: args.admin,
        forwards: args.forwards,
        transparent: args.transparent,
        upstream_ca: args.upstream_ca,
        access_log: args.access_log,
        no_access_log: args.no_access_log,
        log_format: args.log_format,
        workers,
        connect_timeout: args.connect_timeout,
        drain_timeout: args.drain_timeout,
        source,
        services: args.services,
        identity: identity(args.source.as_deref(), args.source_labels.unwrap_or_default()),
    })?;
    Ok(Outcome::Success)
}

/// Who the proxy speaks for, from `--source` and `--source-labels`.
pub fn identity(source: Option<&str>, labels: crate::model::StringMap) -> proxy::routes::SourceIdentity {
    let (name, namespace) = match source {
        Some(s) => match s.split_once('.') {
            Some((n, ns)) => (Some(n.to_string()), ns.to_string()),
            None => (Some(s.to_string()), "default".to_string()),
        },
        None => (labels.get("app").cloned(), "default".to_string()),
    };
    proxy::routes::SourceIdentity {
        name,
        namespace,
        labels,
    }
}

/// `KEY=VALUE,KEY=VALUE`: Kubernetes label keys and values.
pub fn parse_labels(s: &str) -> Result<crate::model::StringMap, String> {
    use crate::validate::common::{label_key_problem, label_value_ok};
    let mut out = crate::model::StringMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not KEY=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if let Some(problem) = label_key_problem(k) {
            return Err(format!("label key `{k}`: {problem}"));
        }
        if !label_value_ok(v) {
            return Err(format!(
                "label value `{v}` is not valid (at most 63 characters: alphanumerics, '-', '_', '.', starting and ending with an alphanumeric)"
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::model::duration::parse_duration(s).map_err(|e| format!("{e} (for example 5s, 500ms, 1m)"))
}

/// `LOCAL=HOST:PORT`, where LOCAL is `ADDR:PORT` or a bare port on 127.0.0.1.
pub fn parse_forward(s: &str) -> Result<Forward, String> {
    let Some((local, remote)) = s.split_once('=') else {
        return Err(format!(
            "`{s}`: expected LOCAL=HOST:PORT, e.g. 127.0.0.1:3306=10.0.0.5:3306"
        ));
    };
    let local: SocketAddr = match local.parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => local
            .parse()
            .map_err(|_| format!("`{local}`: the local side must be ADDR:PORT or a port (e.g. 127.0.0.1:3306)"))?,
    };
    let (host, port) = split_host_port(remote).ok_or_else(|| {
        format!("`{remote}`: the destination must be HOST:PORT (e.g. 10.0.0.5:3306 or [2001:db8::5]:3306)")
    })?;
    Ok(Forward { local, host, port })
}

/// `host:port`, `a.b.c.d:port` or `[v6]:port`; the port 1-65535.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        h.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6)?;
        (h.to_string(), p)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.is_empty() || h.contains(':') {
            return None;
        }
        (h.to_string(), p)
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    Some((host, port))
}

/// The capture rules, for the user to read and apply.
fn iptables(uid: u32, port: u16, ipv6: bool) -> String {
    let mut out = format!(
        "# Capture outbound TCP for `meshctl proxy --transparent --listen 127.0.0.1:{port}`.\n\
         # Run as root in the application's network namespace; the proxy runs as uid {uid},\n\
         # whose own connections (to the real destinations) are not captured, nor is loopback.\n\
         # Start the proxy as that uid, e.g.: setpriv --reuid={uid} --regid={uid} --clear-groups meshctl proxy --transparent\n"
    );
    let rules = |tool: &str, loopback: &str, prefix: &str| {
        format!(
            "{prefix}{tool} -t nat -N MESHCTL_OUTPUT\n\
             {prefix}{tool} -t nat -A MESHCTL_OUTPUT -m owner --uid-owner {uid} -j RETURN\n\
             {prefix}{tool} -t nat -A MESHCTL_OUTPUT -d {loopback} -j RETURN\n\
             {prefix}{tool} -t nat -A MESHCTL_OUTPUT -p tcp -j REDIRECT --to-ports {port}\n\
             {prefix}{tool} -t nat -A OUTPUT -p tcp -j MESHCTL_OUTPUT\n"
        )
    };
    out.push_str("\n# IPv4\n");
    out.push_str(&rules("iptables", "127.0.0.0/8", ""));
    if ipv6 {
        out.push_str("\n# IPv6 (redirected to [::1]; the proxy listens on an IPv6 address)\n");
        out.push_str(&rules("ip6tables", "::1/128", ""));
    } else {
        out.push_str(
            "\n# IPv6: captured IPv6 traffic is redirected to [::1], where this proxy does not listen; run a\n\
             # second proxy with --listen [::1]:PORT (or one with --listen [::]:PORT) and then apply these:\n",
        );
        out.push_str(&rules("ip6tables", "::1/128", "# "));
    }
    out.push_str(
        "\n# To undo:\n\
         #   iptables -t nat -D OUTPUT -p tcp -j MESHCTL_OUTPUT; iptables -t nat -F MESHCTL_OUTPUT; iptables -t nat -X MESHCTL_OUTPUT\n\
         #   (likewise with ip6tables)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards() {
        let f = parse_forward("127.0.0.1:3306=10.0.0.5:3306").unwrap();
        assert_eq!(f.local, "127.0.0.1:3306".parse().unwrap());
        assert_eq!((f.host.as_str(), f.port), ("10.0.0.5", 3306));
        let f = parse_forward("13306=db.example.com:3306").unwrap();
        assert_eq!(f.local, "127.0.0.1:13306".parse().unwrap());
        assert_eq!(f.host, "db.example.com");
        let f = parse_forward("[::1]:0=[2001:db8::5]:3306").unwrap();
        assert_eq!(f.host, "2001:db8::5");
        for bad in [
            "3306",
            "127.0.0.1:3306=",
            "x=db:0",
            "1=db:99999",
            "1=2001:db8::5:3306",
            "a:b=db:1",
        ] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capture_rules_exempt_the_proxy_and_loopback() {
        let s = iptables(1337, 15001, false);
        assert!(s.contains("iptables -t nat -A MESHCTL_OUTPUT -m owner --uid-owner 1337 -j RETURN"));
        assert!(s.contains("-d 127.0.0.0/8 -j RETURN"));
        assert!(s.contains("REDIRECT --to-ports 15001"));
        // IPv6 capture only when the proxy listens on IPv6; otherwise shown commented out.
        assert!(s.contains("\n# ip6tables -t nat -A MESHCTL_OUTPUT -d ::1/128 -j RETURN"));
        assert!(!s.contains("\nip6tables"));
        let s = iptables(1337, 15001, true);
        assert!(s.contains("\nip6tables -t nat -A MESHCTL_OUTPUT -d ::1/128 -j RETURN"));
    }
}
