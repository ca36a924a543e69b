//! The compiled EgressRule matcher: the proxy's per-connection question "which rule, if any, allows
//! this destination?".
//!
//! Rules are compiled once per change into hash tables, so that a lookup costs the same with ten
//! rules as with a hundred thousand:
//!
//! - **by address** (TCP-level ports: `tcp`, `mongo`): one table per prefix length that occurs in the
//!   rules, keyed by (masked address, port). A lookup masks the address once per prefix length
//!   present, longest first, and stops at the first hit: at most 33 probes for IPv4, 129 for IPv6.
//! - **by host name** (`http`, `http2`, `grpc`, `https` ports): a table of exact names and a table of
//!   wildcard suffixes (`*.example.com` is stored as `example.com`), each mapping a name to its ports.
//!   A lookup probes the exact name, then each suffix of the queried name after a dot, longest first:
//!   the cost grows with the labels of the query, not with the rules.
//!
//! Where several rules allow the same destination, the most specific wins (an exact name over a
//! wildcard, a longer wildcard suffix or prefix over a shorter one); rules equally specific are ordered
//! by (namespace, name), the first winning. Rules are sorted by name before they are inserted and a
//! table slot keeps its first occupant, so ties cost nothing at lookup time.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4: a queried mapped address is looked up as
//! IPv4, and a rule destination inside `::ffff:0:0/96` (with a prefix of at least 96) is stored as the
//! IPv4 network it maps, so that it can match at all.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::model::egress_rule::{EgressRule, Protocol};
use crate::model::{Resource, Spec};
use crate::validate::egress_rule::{EgressHost, parse_egress_host};

/// Names the rule that allowed a destination; Display is `egress-rule/NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleName {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "egress-rule/{}/{}", self.namespace, self.name)
    }
}

/// Why a destination is allowed: the rule, the protocol of its matching port, and the rule's
/// destination as written.
#[derive(Debug, Clone, Copy)]
pub struct Allow<'a> {
    pub rule: &'a RuleName,
    pub protocol: Protocol,
    /// The destination as written, e.g. "10.0.0.0/8" or "*.example.com".
    pub destination: &'a str,
}

/// The EgressRules of one rule set, compiled into lookup tables. Immutable once built: a change of
/// rules compiles a new one.
#[derive(Clone)]
pub struct RuleSet {
    /// Every rule with a usable destination, in (namespace, name) order; entries point into it.
    rules: Vec<CompiledRule>,
    /// EgressRule objects seen by `compile`.
    egress_rules: usize,
    /// One table per IPv4 prefix length present, longest first.
    v4: Vec<PrefixTable<u32>>,
    /// One table per IPv6 prefix length present, longest first.
    v6: Vec<PrefixTable<u128>>,
    /// Exact host names (lowercase, no trailing dot) and their ports.
    exact: FastMap<Box<str>, PortList>,
    /// Wildcard suffixes (`*.example.com` as `example.com`) and their ports.
    wildcard: FastMap<Box<str>, PortList>,
    /// A bit per port that some host-name rule opens (empty when there are none).
    host_ports: Box<[u64]>,
}

#[derive(Clone)]
struct CompiledRule {
    name: RuleName,
    destination: Box<str>,
}

/// What a table slot holds: which rule, and the protocol its port declares.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rule: u32,
    protocol: Protocol,
}

/// The rules' networks of one prefix length.
#[derive(Clone)]
struct PrefixTable<A> {
    mask: A,
    map: FastMap<(A, u16), Entry>,
}

/// A host's ports, sorted by port, one entry each (looked up by binary search).
type PortList = Vec<(u16, Entry)>;

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::empty()
    }
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("egress_rules", &self.egress_rules)
            .field("v4_prefix_lengths", &self.v4.len())
            .field("v6_prefix_lengths", &self.v6.len())
            .field("exact_hosts", &self.exact.len())
            .field("wildcards", &self.wildcard.len())
            .finish()
    }
}

impl RuleSet {
    /// A rule set that allows nothing.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            egress_rules: 0,
            v4: Vec::new(),
            v6: Vec::new(),
            exact: FastMap::default(),
            wildcard: FastMap::default(),
            host_ports: Box::default(),
        }
    }

    /// Compiles the EgressRules among `objects` (other kinds are ignored). Objects are assumed
    /// validated, but an unparsable destination or port is skipped, never a panic.
    pub fn compile(objects: &[Resource]) -> RuleSet {
        let mut egress: Vec<(&Resource, &EgressRule)> = objects
            .iter()
            .filter_map(|o| match &o.spec {
                Spec::EgressRule(e) => Some((o, e)),
                _ => None,
            })
            .collect();
        // Stable: among objects with the same name, the first given wins.
        egress.sort_by(|a, b| (a.0.namespace(), a.0.name()).cmp(&(b.0.namespace(), b.0.name())));

        let mut set = RuleSet::empty();
        set.egress_rules = egress.len();
        let mut v4: HashMap<u8, FastMap<(u32, u16), Entry>> = HashMap::new();
        let mut v6: HashMap<u8, FastMap<(u128, u16), Entry>> = HashMap::new();
        let mut exact: FastMap<Box<str>, PortList> = FastMap::default();
        let mut wildcard: FastMap<Box<str>, PortList> = FastMap::default();

        for (object, rule) in egress {
            let Some(destination) = rule.destination.as_ref().and_then(|d| d.service.as_deref()) else {
                continue;
            };
            let Ok(host) = parse_egress_host(destination) else {
                continue;
            };
            let Ok(index) = u32::try_from(set.rules.len()) else {
                // More than four billion rules: the rest cannot be indexed (nor held in memory).
                break;
            };
            let tcp_level = matches!(host, EgressHost::Net(_));
            // The usable ports, walked twice rather than collected: no allocation per rule.
            let ports = || {
                rule.ports.iter().flatten().filter_map(|p| {
                    let port = u16::try_from(p.port?).ok().filter(|&n| n != 0)?;
                    let protocol = parse_protocol(p.protocol.as_deref()?)?;
                    (protocol.is_tcp_level() == tcp_level).then_some((port, protocol))
                })
            };
            if ports().next().is_none() {
                continue;
            }
            let entry = |protocol| Entry { rule: index, protocol };
            match host {
                EgressHost::Net(net) => match canonical_net(net) {
                    IpNet::V4(n) => {
                        let len = n.prefix_len();
                        let addr = u32::from(n.network());
                        let table = v4.entry(len).or_default();
                        for (port, protocol) in ports() {
                            table.entry((addr, port)).or_insert(entry(protocol));
                        }
                    }
                    IpNet::V6(n) => {
                        let len = n.prefix_len();
                        let addr = u128::from(n.network());
                        let table = v6.entry(len).or_default();
                        for (port, protocol) in ports() {
                            table.entry((addr, port)).or_insert(entry(protocol));
                        }
                    }
                },
                EgressHost::Name { wildcard: is_wildcard } => {
                    let name = if is_wildcard {
                        destination.get(2..).unwrap_or_default()
                    } else {
                        destination
                    };
                    let key = normalize_rule_host(name);
                    let table = if is_wildcard { &mut wildcard } else { &mut exact };
                    let list = table.entry(key).or_default();
                    list.extend(ports().map(|(port, protocol)| (port, entry(protocol))));
                }
            }
            set.rules.push(CompiledRule {
                name: RuleName {
                    namespace: object.namespace().to_string(),
                    name: object.name().to_string(),
                },
                destination: destination.into(),
            });
        }

        set.v4 = prefix_tables(v4, 32);
        set.v6 = prefix_tables(v6, 128);
        sort_port_lists(&mut exact);
        sort_port_lists(&mut wildcard);
        set.exact = exact;
        set.wildcard = wildcard;
        if !(set.exact.is_empty() && set.wildcard.is_empty()) {
            let mut bits = vec![0u64; 1 << 10];
            for list in set.exact.values().chain(set.wildcard.values()) {
                for &(port, _) in list.iter() {
                    if let Some(word) = bits.get_mut(usize::from(port >> 6)) {
                        *word |= 1 << (port & 63);
                    }
                }
            }
            set.host_ports = bits.into_boxed_slice();
        }
        set
    }

    /// How many EgressRules were compiled.
    pub fn egress_rules(&self) -> usize {
        self.egress_rules
    }

    /// TCP-level match: a `tcp`/`mongo` port `port` of a rule whose IP/CIDR destination contains
    /// `ip`. Longest prefix wins; ties by (namespace, name). IPv4-mapped IPv6 addresses
    /// (::ffff:a.b.c.d) are matched as IPv4.
    pub fn match_addr(&self, ip: IpAddr, port: u16) -> Option<Allow<'_>> {
        let entry = match canonical_ip(ip) {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                self.v4.iter().find_map(|t| t.map.get(&(addr & t.mask, port)))
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6.iter().find_map(|t| t.map.get(&(addr & t.mask, port)))
            }
        }?;
        self.allow(*entry)
    }

    /// By name: an `http`/`http2`/`grpc`/`https` port `port` of a rule whose destination is `host`
    /// exactly or `*.suffix` covering it (`*.example.com` matches `a.example.com` and
    /// `a.b.example.com`, not `example.com`). Case-insensitive; one trailing dot ignored. Exact beats
    /// wildcard; the longest wildcard suffix wins; ties by (namespace, name). An IP literal never
    /// matches here.
    pub fn match_host(&self, host: &str, port: u16) -> Option<Allow<'_>> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || is_ip_literal(host) {
            return None;
        }
        // Lowercase without allocating: in place on the stack (a DNS name is at most 253 bytes),
        // and only when there is something to lowercase.
        let mut buf = [0u8; 256];
        let owned: String;
        let host: &str = if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            host
        } else if let Some(slot) = buf.get_mut(..host.len()) {
            slot.copy_from_slice(host.as_bytes());
            slot.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid; this cannot fail.
            std::str::from_utf8(slot).ok()?
        } else {
            owned = host.to_ascii_lowercase();
            &owned
        };
        if let Some(entry) = lookup_port(&self.exact, host, port) {
            return self.allow(entry);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // Suffixes after each dot, longest first; a dot at the start leaves no label to cover.
        for (i, b) in host.bytes().enumerate().skip(1) {
            if b == b'.' {
                if let Some(entry) = host
                    .get(i + 1..)
                    .and_then(|suffix| lookup_port(&self.wildcard, suffix, port))
                {
                    return self.allow(entry);
                }
            }
        }
        None
    }

    /// Whether some host-name rule (exact or wildcard) opens `port` (for http, http2, grpc or https):
    /// whether traffic to that port can be allowed at all once its host name is known. One bit test.
    pub fn has_host_port(&self, port: u16) -> bool {
        self.host_ports
            .get(usize::from(port >> 6))
            .is_some_and(|word| word & (1 << (port & 63)) != 0)
    }

    fn allow(&self, entry: Entry) -> Option<Allow<'_>> {
        let rule = self.rules.get(usize::try_from(entry.rule).ok()?)?;
        Some(Allow {
            rule: &rule.name,
            protocol: entry.protocol,
            destination: &rule.destination,
        })
    }
}

/// A mapped IPv6 address as the IPv4 address it maps; others unchanged.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The network with its host bits cleared; a network inside `::ffff:0:0/96` (prefix 96 or longer)
/// as the IPv4 network it maps.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(n) = net {
        if n.prefix_len() >= 96 {
            if let Some(v4) = n.network().to_ipv4_mapped() {
                if let Ok(v4net) = ipnet::Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(v4net);
                }
            }
        }
    }
    net
}

/// Whether a queried host is an IP address rather than a name (`[::1]` and `::1` both count).
fn is_ip_literal(host: &str) -> bool {
    host.contains(':') || (host.ends_with(|c: char| c.is_ascii_digit()) && host.parse::<Ipv4Addr>().is_ok())
}

/// A rule's host name as a table key: lowercase, without a trailing dot.
fn normalize_rule_host(name: &str) -> Box<str> {
    name.strip_suffix('.')
        .unwrap_or(name)
        .to_ascii_lowercase()
        .into_boxed_str()
}

fn lookup_port(table: &FastMap<Box<str>, PortList>, host: &str, port: u16) -> Option<Entry> {
    let ports = table.get(host)?;
    let i = ports.binary_search_by_key(&port, |&(p, _)| p).ok()?;
    ports.get(i).map(|&(_, e)| e)
}

/// Orders the per-prefix-length tables longest first, with their masks.
fn prefix_tables<A: Mask>(tables: HashMap<u8, FastMap<(A, u16), Entry>>, bits: u8) -> Vec<PrefixTable<A>> {
    let mut out: Vec<(u8, PrefixTable<A>)> = tables
        .into_iter()
        .filter(|(len, _)| *len <= bits)
        .map(|(len, mut map)| {
            map.shrink_to_fit();
            (
                len,
                PrefixTable {
                    mask: A::mask(len),
                    map,
                },
            )
        })
        .collect();
    out.sort_by_key(|&(len, _)| std::cmp::Reverse(len));
    out.into_iter().map(|(_, t)| t).collect()
}

/// Sorts each host's ports, keeping the first entry of a port listed more than once (the ports were
/// pushed in rule order, so that is the first rule by (namespace, name)).
fn sort_port_lists(table: &mut FastMap<Box<str>, PortList>) {
    for ports in table.values_mut() {
        ports.sort_by_key(|&(p, _)| p);
        ports.dedup_by_key(|&mut (p, _)| p);
        ports.shrink_to_fit();
    }
}

/// [`Protocol::parse`] without its allocation (it lowercases into a new string).
fn parse_protocol(s: &str) -> Option<Protocol> {
    const ALL: [Protocol; 6] = [
        Protocol::Http,
        Protocol::Https,
        Protocol::Tcp,
        Protocol::Grpc,
        Protocol::Http2,
        Protocol::Mongo,
    ];
    ALL.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
}

/// The netmask of a prefix length, for the two address widths.
trait Mask: Copy + Eq + std::hash::Hash {
    fn mask(len: u8) -> Self;
}

impl Mask for u32 {
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
    }
}

impl Mask for u128 {
    fn mask(len: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
    }
}

/// A hash map with a fast, unkeyed hash. The keys come from the rules (trusted configuration), and
/// lookups never insert, so a client cannot grow a chain: SipHash's protection against chosen keys
/// would buy nothing here and cost a large share of every lookup.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A multiply-rotate word hash (in the manner of FxHash) with a final avalanche, so that the low
/// bits the table indexes by depend on every input bit (masked addresses end in zeros).
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // MurmurHash3's fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::model::common::IstioService;
    use crate::model::egress_rule::EgressPort;
    use crate::model::{API_VERSION, Kind, Metadata};

    fn rule(namespace: &str, name: &str, destination: &str, ports: &[(i64, &str)]) -> Resource {
        Resource {
            api_version: API_VERSION.to_string(),
            kind: Kind::EgressRule,
            metadata: Metadata {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Metadata::default()
            },
            spec: Spec::EgressRule(EgressRule {
                destination: Some(IstioService {
                    service: Some(destination.to_string()),
                    ..IstioService::default()
                }),
                ports: Some(
                    ports
                        .iter()
                        .map(|&(port, protocol)| EgressPort {
                            port: Some(port),
                            protocol: Some(protocol.to_string()),
                        })
                        .collect(),
                ),
                use_egress_proxy: None,
            }),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// (rule, protocol, destination) of a match, for comparisons.
    fn show(a: Option<Allow<'_>>) -> Option<(String, &'static str, String)> {
        a.map(|a| (a.rule.to_string(), a.protocol.as_str(), a.destination.to_string()))
    }

    fn by_host(set: &RuleSet, host: &str, port: u16) -> Option<String> {
        set.match_host(host, port).map(|a| a.rule.to_string())
    }

    fn by_addr(set: &RuleSet, addr: &str, port: u16) -> Option<String> {
        set.match_addr(ip(addr), port).map(|a| a.rule.to_string())
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn rule_name_display() {
        let n = RuleName {
            namespace: "default".into(),
            name: "mysql".into(),
        };
        assert_eq!(n.to_string(), "egress-rule/default/mysql");
    }

    #[test]
    fn empty_allows_nothing() {
        let set = RuleSet::empty();
        assert_eq!(set.egress_rules(), 0);
        assert!(set.match_addr(ip("10.0.0.5"), 3306).is_none());
        assert!(set.match_host("example.com", 80).is_none());
        let set = RuleSet::compile(&[]);
        assert!(set.match_host("example.com", 80).is_none());
        assert_eq!(RuleSet::default().egress_rules(), 0);
    }

    #[test]
    fn the_walk_through_rule() {
        let set = RuleSet::compile(&[rule("default", "mysql", "10.0.0.5/32", &[(3306, "tcp")])]);
        assert_eq!(set.egress_rules(), 1);
        assert_eq!(
            show(set.match_addr(ip("10.0.0.5"), 3306)),
            Some(("egress-rule/default/mysql".into(), "tcp", "10.0.0.5/32".into()))
        );
        assert!(set.match_addr(ip("10.0.0.5"), 3307).is_none());
        assert!(set.match_addr(ip("10.0.0.6"), 3306).is_none());
        assert!(set.match_host("10.0.0.5", 3306).is_none());
    }

    #[test]
    fn exact_beats_wildcard_and_longest_suffix_wins() {
        let set = RuleSet::compile(&[
            rule("default", "any", "*.com", &[(443, "https")]),
            rule("default", "wide", "*.example.com", &[(443, "https"), (80, "http")]),
            rule("default", "narrow", "*.api.example.com", &[(443, "https")]),
            rule("default", "exact", "v1.api.example.com", &[(443, "https")]),
        ]);
        assert_eq!(
            by_host(&set, "v1.api.example.com", 443),
            some("egress-rule/default/exact")
        );
        assert_eq!(
            by_host(&set, "v2.api.example.com", 443),
            some("egress-rule/default/narrow")
        );
        assert_eq!(
            by_host(&set, "a.b.api.example.com", 443),
            some("egress-rule/default/narrow")
        );
        assert_eq!(by_host(&set, "api.example.com", 443), some("egress-rule/default/wide"));
        assert_eq!(by_host(&set, "x.y.example.com", 443), some("egress-rule/default/wide"));
        assert_eq!(by_host(&set, "example.com", 443), some("egress-rule/default/any"));
        assert_eq!(by_host(&set, "com", 443), None);
        // The exact rule has no port 80: the wildcard that has it answers.
        assert_eq!(
            by_host(&set, "v1.api.example.com", 80),
            some("egress-rule/default/wide")
        );
        assert_eq!(by_host(&set, "v1.api.example.com", 8080), None);
    }

    #[test]
    fn a_wildcard_does_not_cover_its_own_domain() {
        let set = RuleSet::compile(&[rule("default", "w", "*.example.com", &[(80, "http")])]);
        assert_eq!(by_host(&set, "a.example.com", 80), some("egress-rule/default/w"));
        assert_eq!(by_host(&set, "a.b.example.com", 80), some("egress-rule/default/w"));
        assert_eq!(by_host(&set, "example.com", 80), None);
        assert_eq!(by_host(&set, ".example.com", 80), None);
        assert_eq!(by_host(&set, "notexample.com", 80), None);
        assert_eq!(by_host(&set, "a.example.com.evil.net", 80), None);
        assert_eq!(by_host(&set, "", 80), None);
        assert_eq!(by_host(&set, ".", 80), None);
    }

    #[test]
    fn hosts_are_case_insensitive_and_one_trailing_dot_is_ignored() {
        let set = RuleSet::compile(&[
            rule("default", "e", "API.Example.com", &[(443, "HTTPS")]),
            rule("default", "w", "*.Svc.Example.COM.", &[(80, "http")]),
        ]);
        for host in [
            "api.example.com",
            "API.EXAMPLE.COM",
            "Api.Example.Com.",
            "api.example.com.",
        ] {
            assert_eq!(by_host(&set, host, 443), some("egress-rule/default/e"), "{host}");
        }
        assert_eq!(by_host(&set, "api.example.com..", 443), None);
        assert_eq!(by_host(&set, "A.SVC.example.com.", 80), some("egress-rule/default/w"));
        assert_eq!(
            set.match_host("api.example.com", 443).map(|a| a.protocol),
            Some(Protocol::Https)
        );
        // The destination comes back as written.
        assert_eq!(
            set.match_host("x.svc.example.com", 80).map(|a| a.destination),
            Some("*.Svc.Example.COM.")
        );
        // A name longer than the stack buffer still lowercases (and still matches nothing here).
        let long = format!("{}.EXAMPLE.COM", "A".repeat(300));
        assert_eq!(by_host(&set, &long, 443), None);
        let set = RuleSet::compile(&[rule("default", "w", "*.example.com", &[(80, "http")])]);
        assert_eq!(by_host(&set, &long, 80), some("egress-rule/default/w"));
    }

    #[test]
    fn an_ip_literal_never_matches_by_host() {
        // `*.0.0.5` is a valid wildcard (its labels are names); an address is still not a name.
        let set = RuleSet::compile(&[
            rule("default", "w", "*.0.0.5", &[(80, "http")]),
            rule("default", "net", "10.0.0.5/32", &[(80, "tcp")]),
        ]);
        assert_eq!(by_host(&set, "a.0.0.5", 80), some("egress-rule/default/w"));
        assert_eq!(by_host(&set, "10.0.0.5", 80), None);
        assert_eq!(by_host(&set, "10.0.0.5.", 80), None);
        assert_eq!(by_host(&set, "::1", 80), None);
        assert_eq!(by_host(&set, "[::1]", 80), None);
        assert_eq!(by_addr(&set, "10.0.0.5", 80), some("egress-rule/default/net"));
    }

    #[test]
    fn longest_prefix_wins() {
        let set = RuleSet::compile(&[
            rule("default", "all", "0.0.0.0/0", &[(443, "tcp")]),
            rule("default", "ten", "10.0.0.0/8", &[(443, "tcp"), (27017, "mongo")]),
            rule("default", "sub", "10.1.0.0/16", &[(443, "tcp")]),
            rule("default", "host", "10.1.2.3", &[(443, "tcp")]),
        ]);
        assert_eq!(by_addr(&set, "10.1.2.3", 443), some("egress-rule/default/host"));
        assert_eq!(by_addr(&set, "10.1.2.4", 443), some("egress-rule/default/sub"));
        assert_eq!(by_addr(&set, "10.2.0.1", 443), some("egress-rule/default/ten"));
        assert_eq!(by_addr(&set, "192.168.0.1", 443), some("egress-rule/default/all"));
        assert_eq!(by_addr(&set, "10.1.2.3", 27017), some("egress-rule/default/ten"));
        assert_eq!(
            set.match_addr(ip("10.1.2.3"), 27017).map(|a| a.protocol),
            Some(Protocol::Mongo)
        );
        assert_eq!(by_addr(&set, "192.168.0.1", 27017), None);
        assert_eq!(by_addr(&set, "2001:db8::1", 443), None);
        assert_eq!(
            set.match_addr(ip("10.1.2.3"), 443).map(|a| a.destination),
            Some("10.1.2.3")
        );
    }

    #[test]
    fn ties_go_to_the_first_by_namespace_then_name() {
        let objects = [
            rule("b", "a", "10.0.0.0/8", &[(5432, "tcp")]),
            rule("a", "z", "10.0.0.0/8", &[(5432, "mongo")]),
            rule("a", "y", "10.0.0.0/8", &[(5432, "tcp")]),
            rule("b", "a", "*.example.com", &[(443, "https")]),
            rule("a", "z", "*.example.com", &[(443, "http2")]),
            rule("a", "y", "*.example.com", &[(443, "grpc")]),
            rule("c", "c", "api.example.com", &[(443, "https")]),
            rule("c", "b", "API.example.com", &[(443, "http")]),
        ];
        let set = RuleSet::compile(&objects);
        assert_eq!(set.egress_rules(), 8);
        assert_eq!(by_addr(&set, "10.9.9.9", 5432), some("egress-rule/a/y"));
        assert_eq!(by_host(&set, "x.example.com", 443), some("egress-rule/a/y"));
        assert_eq!(by_host(&set, "api.example.com", 443), some("egress-rule/c/b"));
        // Input order does not matter.
        let mut reversed = objects.to_vec();
        reversed.reverse();
        let set = RuleSet::compile(&reversed);
        assert_eq!(by_addr(&set, "10.9.9.9", 5432), some("egress-rule/a/y"));
        assert_eq!(by_host(&set, "x.example.com", 443), some("egress-rule/a/y"));
        assert_eq!(by_host(&set, "api.example.com", 443), some("egress-rule/c/b"));
    }

    #[test]
    fn a_missing_namespace_is_default() {
        let mut r = rule("x", "mysql", "10.0.0.5", &[(3306, "tcp")]);
        r.metadata.namespace = None;
        let set = RuleSet::compile(&[r]);
        assert_eq!(by_addr(&set, "10.0.0.5", 3306), some("egress-rule/default/mysql"));
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let set = RuleSet::compile(&[
            rule("default", "v6", "2001:db8::/32", &[(443, "tcp")]),
            rule("default", "v6host", "2001:db8::5", &[(443, "tcp")]),
            rule("default", "v4", "10.0.0.0/8", &[(3306, "tcp")]),
            rule("default", "mapped", "::ffff:192.168.0.0/112", &[(5432, "tcp")]),
            rule("default", "all6", "::/0", &[(22, "tcp")]),
        ]);
        assert_eq!(by_addr(&set, "2001:db8::5", 443), some("egress-rule/default/v6host"));
        assert_eq!(by_addr(&set, "2001:db8:1::5", 443), some("egress-rule/default/v6"));
        assert_eq!(by_addr(&set, "2001:db9::5", 443), None);
        // A mapped address is its IPv4 address.
        assert_eq!(by_addr(&set, "::ffff:10.1.2.3", 3306), some("egress-rule/default/v4"));
        assert_eq!(by_addr(&set, "::ffff:11.1.2.3", 3306), None);
        // A mapped rule is its IPv4 network, queried either way.
        assert_eq!(by_addr(&set, "192.168.7.7", 5432), some("egress-rule/default/mapped"));
        assert_eq!(
            by_addr(&set, "::ffff:192.168.7.7", 5432),
            some("egress-rule/default/mapped")
        );
        assert_eq!(by_addr(&set, "192.169.0.1", 5432), None);
        // `::/0` is every IPv6 address, and IPv4 ones are not IPv6 ones.
        assert_eq!(by_addr(&set, "fe80::1", 22), some("egress-rule/default/all6"));
        assert_eq!(by_addr(&set, "10.0.0.1", 22), None);
        assert_eq!(by_addr(&set, "::ffff:10.0.0.1", 22), None);
        // The IPv4-compatible form (::a.b.c.d) is plain IPv6.
        assert_eq!(by_addr(&set, "::10.1.2.3", 3306), None);
    }

    #[test]
    fn host_ports() {
        let set = RuleSet::compile(&[
            rule("default", "api", "api.example.com", &[(443, "https"), (65535, "http")]),
            rule("default", "w", "*.example.net", &[(8080, "grpc")]),
            rule("default", "db", "10.0.0.5", &[(3306, "tcp")]),
        ]);
        for port in [443, 65535, 8080] {
            assert!(set.has_host_port(port), "{port}");
        }
        for port in [0, 1, 80, 3306, 65534] {
            assert!(!set.has_host_port(port), "{port}");
        }
        assert!(!RuleSet::empty().has_host_port(443));
        assert!(!RuleSet::compile(&[rule("default", "db", "10.0.0.5", &[(443, "tcp")])]).has_host_port(443));
    }

    #[test]
    fn ports_must_match() {
        let set = RuleSet::compile(&[
            rule("default", "db", "10.0.0.5", &[(3306, "tcp"), (33060, "TCP")]),
            rule("default", "api", "api.example.com", &[(443, "https"), (8080, "grpc")]),
        ]);
        assert_eq!(by_addr(&set, "10.0.0.5", 33060), some("egress-rule/default/db"));
        assert_eq!(by_addr(&set, "10.0.0.5", 3307), None);
        assert_eq!(by_host(&set, "api.example.com", 8080), some("egress-rule/default/api"));
        assert_eq!(by_host(&set, "api.example.com", 80), None);
    }

    #[test]
    fn protocols_decide_how_a_port_is_matched() {
        // Both are invalid rules (validation refuses them); compiled anyway, their wrong ports are
        // skipped: a tcp port never matches by host, an http port never by address.
        let set = RuleSet::compile(&[
            rule(
                "default",
                "named-tcp",
                "db.example.com",
                &[(3306, "tcp"), (443, "https")],
            ),
            rule("default", "ip-http", "10.0.0.5", &[(80, "http"), (3306, "mongo")]),
        ]);
        assert_eq!(by_host(&set, "db.example.com", 3306), None);
        assert_eq!(
            by_host(&set, "db.example.com", 443),
            some("egress-rule/default/named-tcp")
        );
        assert_eq!(by_addr(&set, "10.0.0.5", 80), None);
        assert_eq!(by_addr(&set, "10.0.0.5", 3306), some("egress-rule/default/ip-http"));
        for protocol in ["http", "http2", "grpc", "https", "HTTP"] {
            let set = RuleSet::compile(&[rule("default", "r", "h.example.com", &[(1000, protocol)])]);
            assert_eq!(
                by_host(&set, "h.example.com", 1000),
                some("egress-rule/default/r"),
                "{protocol}"
            );
            let set = RuleSet::compile(&[rule("default", "r", "10.0.0.0/8", &[(1000, protocol)])]);
            assert_eq!(by_addr(&set, "10.0.0.1", 1000), None, "{protocol}");
        }
        for protocol in ["tcp", "mongo", "Mongo"] {
            let set = RuleSet::compile(&[rule("default", "r", "10.0.0.0/8", &[(1000, protocol)])]);
            assert_eq!(
                by_addr(&set, "10.0.0.1", 1000),
                some("egress-rule/default/r"),
                "{protocol}"
            );
            let set = RuleSet::compile(&[rule("default", "r", "h.example.com", &[(1000, protocol)])]);
            assert_eq!(by_host(&set, "h.example.com", 1000), None, "{protocol}");
        }
    }

    #[test]
    fn broken_objects_are_skipped_and_other_kinds_ignored() {
        let mut no_dest = rule("default", "nodest", "10.0.0.1", &[(1, "tcp")]);
        if let Spec::EgressRule(e) = &mut no_dest.spec {
            e.destination = None;
        }
        let mut no_ports = rule("default", "noports", "10.0.0.2", &[]);
        if let Spec::EgressRule(e) = &mut no_ports.spec {
            e.ports = None;
        }
        let mut half_ports = rule("default", "half", "10.0.0.3", &[]);
        if let Spec::EgressRule(e) = &mut half_ports.spec {
            e.ports = Some(vec![
                EgressPort {
                    port: None,
                    protocol: Some("tcp".into()),
                },
                EgressPort {
                    port: Some(5),
                    protocol: None,
                },
                EgressPort {
                    port: Some(6),
                    protocol: Some("tcp".into()),
                },
            ]);
        }
        let route = Resource {
            api_version: API_VERSION.to_string(),
            kind: Kind::RouteRule,
            metadata: Metadata::default(),
            spec: Spec::RouteRule(Box::default()),
        };
        let objects = vec![
            no_dest,
            no_ports,
            half_ports,
            route,
            rule("default", "badhost", "bad_host.com", &[(80, "http")]),
            rule("default", "empty", "", &[(80, "http")]),
            rule("default", "hostbits", "10.0.0.5/8", &[(80, "tcp")]),
            rule(
                "default",
                "badports",
                "10.0.0.4",
                &[(0, "tcp"), (65536, "tcp"), (-1, "tcp"), (7, "udp")],
            ),
            rule("default", "ok", "10.0.0.7", &[(65535, "tcp")]),
        ];
        let set = RuleSet::compile(&objects);
        assert_eq!(set.egress_rules(), 8);
        assert_eq!(by_addr(&set, "10.0.0.3", 6), some("egress-rule/default/half"));
        assert_eq!(by_addr(&set, "10.0.0.3", 5), None);
        assert_eq!(by_addr(&set, "10.0.0.4", 0), None);
        assert_eq!(by_addr(&set, "10.0.0.4", 7), None);
        assert_eq!(by_addr(&set, "10.0.0.5", 80), None);
        assert_eq!(by_addr(&set, "10.0.0.7", 65535), some("egress-rule/default/ok"));
        assert_eq!(by_host(&set, "bad_host.com", 80), None);
    }

    #[test]
    fn a_port_listed_twice_keeps_its_first_protocol() {
        let set = RuleSet::compile(&[
            rule("default", "db", "10.0.0.5", &[(3306, "mongo"), (3306, "tcp")]),
            rule("default", "api", "api.example.com", &[(443, "https"), (443, "http")]),
        ]);
        assert_eq!(
            set.match_addr(ip("10.0.0.5"), 3306).map(|a| a.protocol),
            Some(Protocol::Mongo)
        );
        assert_eq!(
            set.match_host("api.example.com", 443).map(|a| a.protocol),
            Some(Protocol::Https)
        );
    }

    #[test]
    fn protocols_parse_as_the_model_parses_them() {
        for s in [
            "tcp", "TCP", "Mongo", "http", "HTTP2", "grpc", "https", "udp", "", "http ", "tcp2",
        ] {
            assert_eq!(parse_protocol(s), Protocol::parse(s), "{s}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(<u32 as Mask>::mask(0), 0);
        assert_eq!(<u32 as Mask>::mask(8), 0xff00_0000);
        assert_eq!(<u32 as Mask>::mask(32), u32::MAX);
        assert_eq!(<u128 as Mask>::mask(0), 0);
        assert_eq!(<u128 as Mask>::mask(128), u128::MAX);
        assert_eq!(<u128 as Mask>::mask(1), 1u128 << 127);
    }

    /// 100,000 rules of every shape; lookups still answer right (and compile stays quick: the time is
    /// printed, run with --release --nocapture to see it).
    #[test]
    fn a_hundred_thousand_rules() {
        let mut objects = Vec::with_capacity(100_000);
        for i in 0..100_000u32 {
            let name = format!("r{i:06}");
            let [_, b, c, d] = i.to_be_bytes();
            let object = match i % 5 {
                0 => rule("default", &name, &format!("10.{b}.{c}.{d}"), &[(3306, "tcp")]),
                1 => rule("default", &name, &format!("172.{b}.{c}.0/24"), &[(5432, "tcp")]),
                2 => rule(
                    "default",
                    &name,
                    &format!("svc{i}.example.com"),
                    &[(443, "https"), (80, "http")],
                ),
                3 => rule("default", &name, &format!("*.tenant{i}.example.net"), &[(443, "https")]),
                _ => rule(
                    "default",
                    &name,
                    &format!("2001:db8:{:x}:{:x}::/64", i >> 16, i & 0xffff),
                    &[(443, "tcp")],
                ),
            };
            objects.push(object);
        }
        let started = std::time::Instant::now();
        let set = RuleSet::compile(&objects);
        eprintln!("compiled 100,000 rules in {:?}", started.elapsed());
        assert_eq!(set.egress_rules(), 100_000);
        assert_eq!(by_addr(&set, "10.0.0.0", 3306), some("egress-rule/default/r000000"));
        assert_eq!(by_addr(&set, "10.1.134.155", 3306), some("egress-rule/default/r099995"));
        assert_eq!(by_addr(&set, "10.1.134.156", 3306), None);
        // 256 rules name 172.1.134.0/24 (r099841 to r100091, every fifth): the first by name wins.
        assert_eq!(by_addr(&set, "172.1.134.9", 5432), some("egress-rule/default/r099841"));
        assert_eq!(
            by_host(&set, "SVC99997.example.com", 80),
            some("egress-rule/default/r099997")
        );
        assert_eq!(by_host(&set, "svc99998.example.com", 80), None);
        assert_eq!(
            by_host(&set, "a.b.tenant99998.example.net", 443),
            some("egress-rule/default/r099998")
        );
        assert_eq!(by_host(&set, "tenant99998.example.net", 443), None);
        assert_eq!(
            by_addr(&set, "2001:db8:1:869f::1", 443),
            some("egress-rule/default/r099999")
        );
        assert_eq!(
            by_addr(&set, "2001:db8:0:c34f:ff::1", 443),
            some("egress-rule/default/r049999")
        );
        assert_eq!(by_addr(&set, "2001:db8:0:c350::1", 443), None);
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            assert!(set.match_host("x.y.tenant3.example.net", 443).is_some());
            assert!(set.match_addr(ip("10.0.0.5"), 3306).is_some());
        }
        eprintln!("20,000 lookups in {:?}", started.elapsed());
    }

    // === The differential test: the tables against a linear scan of the rules ===

    /// What the spec says, the slow way: every rule considered, the best kept.
    fn naive_addr(objects: &[Resource], ip: IpAddr, port: u16) -> Option<(String, &'static str, String)> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.octets() {
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                _ => ip,
            },
            v4 => v4,
        };
        let mut best: Option<(u8, RuleName, Protocol, String)> = None;
        for o in objects {
            let Spec::EgressRule(e) = &o.spec else { continue };
            let Some(dest) = e.destination.as_ref().and_then(|d| d.service.clone()) else {
                continue;
            };
            let Ok(EgressHost::Net(net)) = parse_egress_host(&dest) else {
                continue;
            };
            // A rule inside ::ffff:0:0/96 is the IPv4 network it maps.
            let net = match net {
                IpNet::V6(n)
                    if n.prefix_len() >= 96
                        && n.addr().octets()[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] =>
                {
                    let [.., a, b, c, d] = n.addr().octets();
                    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::new(a, b, c, d), n.prefix_len() - 96).unwrap())
                }
                n => n,
            };
            if !net.contains(&ip) {
                continue;
            }
            let Some(protocol) = e.ports.iter().flatten().find_map(|p| {
                let proto = Protocol::parse(p.protocol.as_deref()?)?;
                (p.port == Some(i64::from(port)) && proto.is_tcp_level()).then_some(proto)
            }) else {
                continue;
            };
            let name = RuleName {
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
            };
            let better = match &best {
                None => true,
                Some((len, n, _, _)) => net.prefix_len() > *len || (net.prefix_len() == *len && name < *n),
            };
            if better {
                best = Some((net.prefix_len(), name, protocol, dest));
            }
        }
        best.map(|(_, n, p, d)| (n.to_string(), p.as_str(), d))
    }

    fn naive_host(objects: &[Resource], host: &str, port: u16) -> Option<(String, &'static str, String)> {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.parse::<IpAddr>().is_ok() || host.contains(':') {
            return None;
        }
        // Rank: exact (2) over wildcard (1), then the longer suffix.
        let mut best: Option<((u8, usize), RuleName, Protocol, String)> = None;
        for o in objects {
            let Spec::EgressRule(e) = &o.spec else { continue };
            let Some(dest) = e.destination.as_ref().and_then(|d| d.service.clone()) else {
                continue;
            };
            let Ok(EgressHost::Name { wildcard }) = parse_egress_host(&dest) else {
                continue;
            };
            let pattern = dest.strip_suffix('.').unwrap_or(&dest).to_ascii_lowercase();
            let rank = if wildcard {
                let suffix = &pattern[2..];
                if !(host.ends_with(&format!(".{suffix}")) && host.len() > suffix.len() + 1) {
                    continue;
                }
                (1, suffix.len())
            } else {
                if host != pattern {
                    continue;
                }
                (2, 0)
            };
            let Some(protocol) = e.ports.iter().flatten().find_map(|p| {
                let proto = Protocol::parse(p.protocol.as_deref()?)?;
                (p.port == Some(i64::from(port)) && !proto.is_tcp_level()).then_some(proto)
            }) else {
                continue;
            };
            let name = RuleName {
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
            };
            let better = match &best {
                None => true,
                Some((r, n, _, _)) => rank > *r || (rank == *r && name < *n),
            };
            if better {
                best = Some((rank, name, protocol, dest));
            }
        }
        best.map(|(_, n, p, d)| (n.to_string(), p.as_str(), d))
    }

    /// Labels of names; "" makes empty labels (`.a.com`, `a..com`): invalid in rules, which compile
    /// skips, and odd in queries, which must not match more than the spec says.
    const LABELS: &[&str] = &["a", "b", "api", "example", "com", "0", "5", ""];
    const OCTETS: &[u8] = &[0, 1, 5, 10, 128, 255];
    const PORTS: &[i64] = &[80, 443, 3306, 0, 70000];
    const PROTOCOLS: &[&str] = &["tcp", "mongo", "http", "HTTPS", "grpc", "http2", "udp"];

    fn arb_name() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(LABELS), 1..4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(labels, upper, dot)| {
                let mut s = labels.join(".");
                if upper {
                    s = s.to_ascii_uppercase();
                }
                if dot {
                    s.push('.');
                }
                s
            })
    }

    fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
        prop::array::uniform4(prop::sample::select(OCTETS)).prop_map(Ipv4Addr::from)
    }

    fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
        (
            prop::sample::select(&[0u16, 0x2001, 0xfe80][..]),
            prop::sample::select(&[0u16, 1, 0xdb8][..]),
            any::<u8>(),
        )
            .prop_map(|(a, b, c)| Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, u16::from(c) & 0x3))
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            arb_v4().prop_map(IpAddr::V4),
            arb_v6().prop_map(IpAddr::V6),
            arb_v4().prop_map(|v4| IpAddr::V6(v4.to_ipv6_mapped())),
        ]
    }

    /// A destination as a user might write it: names, wildcards, addresses and networks (mostly
    /// valid; some with host bits set or otherwise broken, which compile must skip).
    fn arb_destination() -> impl Strategy<Value = String> {
        prop_oneof![
            arb_name(),
            arb_name().prop_map(|n| format!("*.{n}")),
            (arb_v4(), 0u8..=32, any::<bool>()).prop_map(|(a, len, trunc)| {
                let net = ipnet::Ipv4Net::new(a, len).unwrap();
                if trunc {
                    net.trunc().to_string()
                } else {
                    net.to_string()
                }
            }),
            arb_v4().prop_map(|a| a.to_string()),
            (arb_v6(), prop::sample::select(&[0u8, 16, 32, 64, 126, 127, 128][..]))
                .prop_map(|(a, len)| ipnet::Ipv6Net::new(a, len).unwrap().trunc().to_string()),
            (arb_v4(), 96u8..=128).prop_map(|(a, len)| ipnet::Ipv6Net::new(a.to_ipv6_mapped(), len)
                .unwrap()
                .trunc()
                .to_string()),
            Just("bad_host".to_string()),
            Just(String::new()),
        ]
    }

    fn arb_rule() -> impl Strategy<Value = Resource> {
        (
            prop::sample::select(&["default", "a", "b"][..]),
            prop::sample::select(&["r0", "r1", "r2", "r3"][..]),
            arb_destination(),
            prop::collection::vec((prop::sample::select(PORTS), prop::sample::select(PROTOCOLS)), 0..4),
        )
            .prop_map(|(ns, name, dest, ports)| rule(ns, name, &dest, &ports))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn tables_agree_with_a_linear_scan(
            objects in prop::collection::vec(arb_rule(), 0..24),
            ips in prop::collection::vec(arb_ip(), 1..16),
            hosts in prop::collection::vec(arb_name(), 1..16),
            ports in prop::collection::vec(prop::sample::select(&[80u16, 443, 3306, 1][..]), 1..4),
        ) {
            let set = RuleSet::compile(&objects);
            for &port in &ports {
                for &ip in &ips {
                    prop_assert_eq!(show(set.match_addr(ip, port)), naive_addr(&objects, ip, port), "{} {}", ip, port);
                }
                for host in &hosts {
                    prop_assert_eq!(show(set.match_host(host, port)), naive_host(&objects, host, port), "{} {}", host, port);
                }
                let naive_has = objects.iter().any(|o| {
                    let Spec::EgressRule(e) = &o.spec else { return false };
                    let dest = e.destination.as_ref().and_then(|d| d.service.as_deref()).unwrap_or_default();
                    matches!(parse_egress_host(dest), Ok(EgressHost::Name { .. }))
                        && e.ports.iter().flatten().any(|p| {
                            p.port == Some(i64::from(port))
                                && p.protocol.as_deref().and_then(Protocol::parse).is_some_and(|p| !p.is_tcp_level())
                        })
                });
                prop_assert_eq!(set.has_host_port(port), naive_has, "{}", port);
                // Addresses written as hosts never match by host.
                for &ip in &ips {
                    prop_assert!(set.match_host(&ip.to_string(), port).is_none());
                }
            }
        }
    }
}
