//! Network policy: which addresses a check's guests may reach.
//!
//! Rules are CIDRs (`10.0.0.0/8`), host:port patterns (`api.example.com:443`,
//! `*.example.com:*`, `127.0.0.1:8080`) or bare hosts (any port). Deny rules
//! win over allow rules; when any allow rule exists, a target must match one.
//! Some addresses are denied unless an allow rule names them with an IP or a
//! range of /8 or narrower (so `0.0.0.0/0` opens none of them): link-local
//! and cloud-metadata addresses, loopback, the unspecified address, every
//! address of this machine's interfaces, and the addresses this process
//! listens on (its API), so a plugin cannot reach a database or admin port
//! that trusts local callers. An IPv6 address that carries an IPv4 one
//! (NAT64, 6to4, Teredo, IPv4-compatible) is judged as both. Raw sockets are judged by IP only (the host
//! resolves names and the guest connects to the IP it was given); HTTP
//! requests are judged by name and by every address the name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("invalid network rule `{rule}`: {reason}")]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Net(IpNet),
    Name(String),
    AnyName,
    /// `localhost`, which always means this machine's loopback addresses
    /// (RFC 6761), so it also matches raw-socket connections, where only
    /// the address is known.
    Loopback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    host: Host,
    port: Option<u16>,
    source: String,
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| RuleError {
            rule: s.to_string(),
            reason: reason.to_string(),
        };
        let rule = s.trim();
        if rule.is_empty() {
            return Err(err("empty rule"));
        }
        if let Ok(net) = rule.parse::<IpNet>() {
            return Ok(Rule::new(Host::Net(net), None, s));
        }
        if let Ok(ip) = rule.parse::<IpAddr>() {
            return Ok(Rule::new(Host::Net(IpNet::from(ip)), None, s));
        }
        if let Ok(addr) = rule.parse::<SocketAddr>() {
            return Ok(Rule::new(
                Host::Net(IpNet::from(addr.ip())),
                Some(addr.port()),
                s,
            ));
        }
        let (host, port) = match rule.rsplit_once(':') {
            Some((host, "*")) => (host, None),
            Some((host, port)) => {
                let port = port
                    .parse()
                    .map_err(|_| err("port must be a number or *"))?;
                (host, Some(port))
            }
            None => (rule, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let parsed = if let Ok(net) = host.parse::<IpNet>() {
            Host::Net(net)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Host::Net(IpNet::from(ip))
        } else if host == "*" {
            Host::AnyName
        } else if host.eq_ignore_ascii_case("localhost") {
            Host::Loopback
        } else if host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '_'))
        {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(err("expected a CIDR, an IP, or host[:port]"));
        };
        Ok(Rule::new(parsed, port, s))
    }
}

impl Rule {
    fn new(host: Host, port: Option<u16>, source: &str) -> Self {
        let host = match host {
            Host::Net(net) => Host::Net(canonical_net(net)),
            other => other,
        };
        Rule {
            host,
            port,
            source: source.trim().to_string(),
        }
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    fn matches_ip(&self, target: &Target) -> bool {
        self.port_matches(target.port)
            && match &self.host {
                Host::Net(net) => target.forms.iter().any(|ip| net.contains(ip)),
                Host::AnyName => true,
                Host::Loopback => target.forms.iter().any(IpAddr::is_loopback),
                Host::Name(_) => false,
            }
    }

    fn matches_name(&self, name: &str, port: u16) -> bool {
        self.port_matches(port)
            && match &self.host {
                Host::Name(pattern) => name_matches(pattern, &name.to_ascii_lowercase()),
                Host::AnyName => true,
                Host::Loopback => name.eq_ignore_ascii_case("localhost"),
                Host::Net(_) => false,
            }
    }

    /// An allow rule that names `addr` with an IP, a narrow range or
    /// `localhost`, not a wildcard or a default route.
    fn names_explicitly(&self, target: &Target) -> bool {
        // Every guarded form must be named: opening 10.0.0.0/8 does not
        // open loopback carried inside a NAT64 address.
        let named = |&(ip, guard): &(IpAddr, Guard)| match (&self.host, guard) {
            (Host::Net(net), Guard::OwnAddress) => {
                net.prefix_len() == net.max_prefix_len() && net.contains(&ip)
            }
            (Host::Net(net), _) => narrow(net) && net.contains(&ip),
            (Host::Loopback, _) => ip.is_loopback(),
            (Host::Name(_) | Host::AnyName, _) => false,
        };
        self.port_matches(target.port) && target.guards.iter().all(named)
    }
}

impl Rule {
    /// An allow rule naming exactly this address and port: the only kind
    /// that opens the daemon's own API to a check.
    fn names_socket(&self, addr: SocketAddr) -> bool {
        let single = |net: &IpNet| net.prefix_len() == net.max_prefix_len();
        self.port == Some(addr.port())
            && matches!(&self.host, Host::Net(net) if single(net) && net.contains(&canonical(addr.ip())))
    }
}

impl Rule {
    /// Whether everything this rule allows, `wider` allows too: how a
    /// proposed check's `network.allow` is held to what an operator granted.
    pub fn within(&self, wider: &Rule) -> bool {
        let port = wider.port.is_none() || wider.port == self.port;
        let host = match (&self.host, &wider.host) {
            (Host::Net(net), Host::Net(outer)) => {
                let single = |n: &IpNet| n.prefix_len() == n.max_prefix_len();
                outer.contains(net)
                    // A narrow rule opens protected addresses (loopback,
                    // metadata) a wide one leaves shut: only a grant as
                    // narrow covers it.
                    && (narrow(outer) || !narrow(net))
                    // One address and port can open the daemon's own API:
                    // only that same grant covers it.
                    && (!(single(net) && self.port.is_some())
                        || (single(outer) && wider.port == self.port))
            }
            (Host::Name(name), Host::Name(pattern)) => {
                name == pattern
                    || (!name.starts_with("*.") && name_matches(pattern, name))
                    || name
                        .strip_prefix("*.")
                        .zip(pattern.strip_prefix("*."))
                        .is_some_and(|(inner, outer)| {
                            inner == outer || inner.ends_with(&format!(".{outer}"))
                        })
            }
            (Host::Name(_) | Host::AnyName, Host::AnyName) => true,
            (Host::Loopback, Host::Loopback) => true,
            _ => false,
        };
        port && host
    }
}

/// A range narrow enough that naming it opens the protected addresses in
/// it; a default route or a /7 does not.
fn narrow(net: &IpNet) -> bool {
    match net {
        IpNet::V4(v4) => v4.prefix_len() >= 8,
        IpNet::V6(v6) => v6.prefix_len() >= 10,
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => pattern == name,
    }
}

/// A rule written in IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is the IPv4
/// range it carries, because targets are judged as IPv4 too (`canonical`).
fn canonical_net(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(v4), Some(prefix)) => Ipv4Net::new(v4, prefix).map_or(net, IpNet::V4),
        _ => net,
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Every form a target address is judged in: itself (IPv4-mapped
/// unwrapped) and each IPv4 address an IPv6 address may carry to a
/// translator or relay: NAT64 (`64:ff9b::/96`, and `64:ff9b:1::/48` in each
/// RFC 6052 layout), 6to4 (`2002::/16`), Teredo (`2001::/32`, the client
/// address) and IPv4-compatible (`::a.b.c.d`). A rule or guard that matches
/// any form matches the address.
fn forms(ip: IpAddr) -> Vec<IpAddr> {
    let first = canonical(ip);
    let mut all = vec![first];
    if let IpAddr::V6(v6) = first {
        for v4 in embedded_ipv4(v6) {
            if !all.contains(&IpAddr::V4(v4)) {
                all.push(IpAddr::V4(v4));
            }
        }
    }
    all
}

fn embedded_ipv4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let at = |i: [usize; 4]| Ipv4Addr::new(o[i[0]], o[i[1]], o[i[2]], o[i[3]]);
    let last = at([12, 13, 14, 15]);
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => vec![last],
        // Local-use NAT64: the prefix may be /48, /56, /64 or /96, and the
        // octet at bits 64–71 is skipped (RFC 6052 §2.2).
        [0x64, 0xff9b, 1, ..] => vec![
            at([6, 7, 9, 10]),
            at([7, 9, 10, 11]),
            at([9, 10, 11, 12]),
            last,
        ],
        [0x2002, ..] => vec![at([2, 3, 4, 5])],
        [0x2001, 0, ..] => vec![Ipv4Addr::from(!u32::from(last))],
        [0, 0, 0, 0, 0, 0, _, _] if !v6.is_unspecified() && !v6.is_loopback() => vec![last],
        _ => Vec::new(),
    }
}

/// Why an address is denied unless an allow rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    LinkLocal,
    Loopback,
    Unspecified,
    /// An address of this machine's own interfaces: opened only by a rule
    /// naming that very address, since private ranges an operator allows
    /// (`10.0.0.0/8`) often hold it.
    OwnAddress,
}

impl Guard {
    fn reason(self) -> &'static str {
        match self {
            Guard::LinkLocal => {
                "link-local and cloud-metadata addresses are denied unless network.allow names them"
            }
            Guard::Loopback => {
                "loopback is denied unless network.allow names it, e.g. `127.0.0.1/32` or `localhost:5432`"
            }
            Guard::Unspecified => "the unspecified address is denied unless network.allow names it",
            Guard::OwnAddress => {
                "this host's own addresses are denied unless network.allow names the address itself"
            }
        }
    }
}

/// A connection's destination as the rules judge it, worked out once per
/// connection: its port, every form of its address, and the guarded ones.
struct Target {
    port: u16,
    forms: Vec<IpAddr>,
    guards: Vec<(IpAddr, Guard)>,
}

impl Target {
    fn new(addr: SocketAddr) -> Target {
        let forms = forms(addr.ip());
        let guards = forms
            .iter()
            .filter_map(|&ip| guard_of(ip).map(|guard| (ip, guard)))
            .collect();
        Target {
            port: addr.port(),
            forms,
            guards,
        }
    }

    /// Why the target is denied unless an allow rule names it, if it is.
    fn guarded(&self) -> Option<&'static str> {
        self.guards.first().map(|(_, guard)| guard.reason())
    }
}

fn guard_of(ip: IpAddr) -> Option<Guard> {
    if is_link_local_or_metadata(ip) {
        Some(Guard::LinkLocal)
    } else if ip.is_loopback() {
        Some(Guard::Loopback)
    } else if ip.is_unspecified() {
        Some(Guard::Unspecified)
    } else if is_local_address(&ip) {
        Some(Guard::OwnAddress)
    } else {
        None
    }
}

/// The sockets this process serves on (its API), as bound.
static OWN_LISTENERS: RwLock<Vec<SocketAddr>> = RwLock::new(Vec::new());

/// Guards a socket this process listens on. A socket bound to the
/// unspecified address stands for that port on every address of this
/// machine, as the interfaces are when a connection is decided.
pub fn guard_own_listener(addr: SocketAddr) {
    if let Ok(mut listeners) = OWN_LISTENERS.write() {
        listeners.push(SocketAddr::new(canonical(addr.ip()), addr.port()));
    }
}

/// Whether `target` reaches one of this process's own listening sockets.
fn is_own_listener(target: &Target) -> bool {
    // Every connection asks, so the list is read in place, not copied.
    let Ok(listeners) = OWN_LISTENERS.read() else {
        return true;
    };
    let mut candidates = listeners.iter().filter(|l| l.port() == target.port);
    candidates.any(|l| {
        target.forms.iter().any(|ip| {
            l.ip() == *ip || (l.ip().is_unspecified() && (ip.is_loopback() || is_local_address(ip)))
        })
    })
}

/// How long a listing of this machine's addresses is trusted: interfaces
/// that come and go (DHCP, VPNs, containers) are seen within this time.
const LOCAL_ADDRESSES_TTL: Duration = Duration::from_secs(1);

struct LocalAddresses {
    /// When a listing was last tried.
    tried: Option<Instant>,
    /// The last listing that worked; `None` until one has.
    ips: Option<Vec<IpAddr>>,
}

static LOCAL_ADDRESSES: RwLock<LocalAddresses> = RwLock::new(LocalAddresses {
    tried: None,
    ips: None,
});

impl LocalAddresses {
    /// Fails closed: with no listing yet, every address counts as local.
    fn contains(&self, ip: &IpAddr) -> bool {
        self.ips.as_ref().is_none_or(|ips| ips.contains(ip))
    }
}

/// Whether `ip` is an address of one of this machine's network interfaces.
/// The listing is taken again when older than `LOCAL_ADDRESSES_TTL`; when a
/// listing fails the previous one stands, and before any has worked every
/// address counts as this machine's.
fn is_local_address(ip: &IpAddr) -> bool {
    let fresh = |cached: &LocalAddresses| {
        cached
            .tried
            .is_some_and(|at| at.elapsed() < LOCAL_ADDRESSES_TTL)
    };
    if let Ok(cached) = LOCAL_ADDRESSES.read()
        && fresh(&cached)
    {
        return cached.contains(ip);
    }
    let Ok(mut cached) = LOCAL_ADDRESSES.write() else {
        return true;
    };
    if !fresh(&cached) {
        if let Ok(interfaces) = if_addrs::get_if_addrs() {
            cached.ips = Some(interfaces.iter().map(|i| canonical(i.ip())).collect());
        }
        cached.tried = Some(Instant::now());
    }
    cached.contains(ip)
}

fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// The network rules of one check, as written in its YAML `network` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

/// Why a connection was refused, worded for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub target: String,
    pub reason: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection to {} denied by network policy ({})",
            self.target, self.reason
        )
    }
}

impl NetworkPolicy {
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, RuleError> {
        let parse = |rules: &[String]| rules.iter().map(|r| r.parse()).collect::<Result<_, _>>();
        Ok(NetworkPolicy {
            allow: parse(&spec.allow)?,
            deny: parse(&spec.deny)?,
        })
    }

    /// Decides a connection to an address.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), Denial> {
        self.check(addr, None)
    }

    /// Decides a connection to `ip` when the port is not known: refused
    /// only when no port the rules name (nor any other) would be let through.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denial> {
        let named_ports = self.allow.iter().filter_map(|r| r.port);
        let mut verdicts = std::iter::once(0)
            .chain(named_ports)
            .map(|port| self.check_addr(SocketAddr::new(ip, port)));
        let first = verdicts.next().unwrap_or(Ok(()));
        if first.is_ok() || verdicts.any(|v| v.is_ok()) {
            return Ok(());
        }
        first.map_err(|d| Denial {
            target: ip.to_string(),
            ..d
        })
    }

    /// Decides a connection to `name` that resolved to `addr`.
    pub fn check_named(&self, name: &str, addr: SocketAddr) -> Result<(), Denial> {
        self.check(addr, Some(name))
    }

    fn check(&self, addr: SocketAddr, name: Option<&str>) -> Result<(), Denial> {
        let ip = canonical(addr.ip());
        let target = match name {
            Some(name) => format!("{name}:{} ({ip})", addr.port()),
            None => SocketAddr::new(ip, addr.port()).to_string(),
        };
        let deny = |reason: String| {
            Err(Denial {
                target: target.clone(),
                reason,
            })
        };
        let judged = Target::new(addr);
        let matches = |rule: &Rule| {
            rule.matches_ip(&judged) || name.is_some_and(|n| rule.matches_name(n, addr.port()))
        };
        if let Some(rule) = self.deny.iter().find(|r| matches(r)) {
            return deny(format!("deny rule `{}`", rule.source));
        }
        if is_own_listener(&judged) && !self.allow.iter().any(|r| r.names_socket(addr)) {
            return deny(
                "checkhost's own listening address is denied unless network.allow names it with its port"
                    .into(),
            );
        }
        if let Some(reason) = judged.guarded()
            && !self.allow.iter().any(|r| r.names_explicitly(&judged))
        {
            return deny(reason.into());
        }
        if !self.allow.is_empty() && !self.allow.iter().any(matches) {
            return deny("no allow rule matches".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        NetworkPolicy::from_spec(&PolicySpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_rule_is_within_a_wider_one_and_not_within_a_narrower_one() {
        let rule = |s: &str| s.parse::<Rule>().unwrap();
        let within = |a: &str, b: &str| rule(a).within(&rule(b));
        assert!(within("127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(
            !within("127.0.0.1:8080", "127.0.0.0/8"),
            "one socket may be the daemon's own API: only its exact grant covers it"
        );
        assert!(within("127.0.0.2", "127.0.0.0/8"));
        assert!(within("10.1.0.0/16", "10.0.0.0/8"));
        assert!(!within("10.0.0.0/8", "10.1.0.0/16"));
        assert!(
            !within("127.0.0.1", "127.0.0.1:8080"),
            "every port is wider than one"
        );
        assert!(!within("127.0.0.1:9090", "127.0.0.1:8080"));
        assert!(within("api.example.com:443", "*.example.com"));
        assert!(within("*.eu.example.com", "*.example.com"));
        assert!(!within("*.example.com", "api.example.com"));
        assert!(!within("example.org", "*.example.com"));
        assert!(within("example.org", "*"));
        assert!(!within("10.0.0.1", "*"), "a name wildcard opens no address");
        assert!(within("localhost:80", "localhost"));
        assert!(!within("localhost", "127.0.0.1"));
        assert!(
            !within("169.254.169.254", "0.0.0.0/0"),
            "a wide grant opens no metadata"
        );
        assert!(!within("127.0.0.1", "0.0.0.0/0"));
        assert!(!within("::1", "::/0"));
        assert!(within("10.1.2.3", "10.0.0.0/8"));
        assert!(
            !within("10.0.0.5:8080", "10.0.0.5"),
            "an exact socket needs an exact grant"
        );
        assert!(within("10.0.0.5:8080", "10.0.0.5:8080"));
    }

    #[test]
    fn default_policy_allows_ordinary_addresses_but_not_metadata() {
        let p = NetworkPolicy::default();
        assert!(p.check_addr(addr("10.1.2.3:5432")).is_ok());
        let denial = p.check_addr(addr("169.254.169.254:80")).unwrap_err();
        assert_eq!(
            denial.to_string(),
            "connection to 169.254.169.254:80 denied by network policy \
             (link-local and cloud-metadata addresses are denied unless network.allow names them)"
        );
        assert!(p.check_addr(addr("[fe80::1]:80")).is_err());
        assert!(p.check_addr(addr("[::ffff:169.254.169.254]:80")).is_err());
    }

    #[test]
    fn deny_wins_and_allow_lists_restrict() {
        let p = policy(&["10.0.0.0/8", "api.example.com:443"], &["10.9.0.0/16"]);
        assert!(p.check_addr(addr("10.1.0.1:22")).is_ok());
        assert!(p.check_addr(addr("10.9.0.1:22")).is_err());
        assert!(p.check_addr(addr("192.168.0.1:22")).is_err());
        assert!(
            p.check_named("api.example.com", addr("192.168.0.1:443"))
                .is_ok()
        );
        assert!(
            p.check_named("api.example.com", addr("192.168.0.1:80"))
                .is_err()
        );
    }

    #[test]
    fn a_name_resolving_to_a_denied_address_is_denied() {
        let p = policy(&["*.example.com:*"], &["127.0.0.0/8"]);
        assert!(
            p.check_named("evil.example.com", addr("127.0.0.1:80"))
                .is_err()
        );
        assert!(
            p.check_named("ok.example.com", addr("93.184.216.34:80"))
                .is_ok()
        );
    }

    #[test]
    fn loopback_and_unspecified_need_an_explicit_allow() {
        let p = NetworkPolicy::default();
        for target in [
            "127.0.0.1:5432",
            "127.8.0.1:6379",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            let denial = p.check_addr(addr(target)).unwrap_err();
            assert!(
                denial.reason.starts_with("loopback is denied"),
                "{target}: {denial}"
            );
        }
        assert!(p.check_addr(addr("0.0.0.0:80")).is_err());
        assert!(p.check_addr(addr("[::]:80")).is_err());
        assert!(p.check_named("localhost", addr("127.0.0.1:80")).is_err());
        let open = policy(&["127.0.0.1/32", "::1"], &[]);
        assert!(open.check_addr(addr("127.0.0.1:5432")).is_ok());
        assert!(open.check_addr(addr("[::1]:5432")).is_ok());
        assert!(open.check_addr(addr("127.0.0.2:5432")).is_err());
        let port = policy(&["127.0.0.1:8080"], &[]);
        assert!(port.check_addr(addr("127.0.0.1:8080")).is_ok());
        assert!(port.check_addr(addr("127.0.0.1:5432")).is_err());
        let named = policy(&["localhost:5432"], &[]);
        assert!(named.check_addr(addr("127.0.0.1:5432")).is_ok());
        assert!(named.check_addr(addr("[::1]:5432")).is_ok());
        assert!(
            named
                .check_named("LocalHost", addr("127.0.0.1:5432"))
                .is_ok()
        );
        assert!(named.check_addr(addr("127.0.0.1:6379")).is_err());
        assert!(named.check_addr(addr("10.0.0.1:5432")).is_err());
        let everything = policy(&["0.0.0.0/0", "::/0", "*"], &[]);
        assert!(everything.check_addr(addr("127.0.0.1:5432")).is_err());
        assert!(everything.check_addr(addr("10.0.0.1:5432")).is_ok());
    }

    #[test]
    fn rules_in_ipv4_mapped_ipv6_match_the_ipv4_targets_they_carry() {
        let p = policy(&["::ffff:10.0.0.0/104", "[::ffff:127.0.0.1]:8080"], &[]);
        assert!(p.check_addr(addr("10.1.2.3:80")).is_ok());
        assert!(p.check_addr(addr("[::ffff:10.1.2.3]:80")).is_ok());
        assert!(p.check_addr(addr("11.0.0.1:80")).is_err());
        assert!(p.check_addr(addr("127.0.0.1:8080")).is_ok());
        assert!(p.check_addr(addr("127.0.0.1:8081")).is_err());
        let deny = policy(&[], &["::ffff:192.168.0.0/112"]);
        assert!(deny.check_addr(addr("192.168.7.7:443")).is_err());
        assert!(deny.check_addr(addr("192.169.0.1:443")).is_ok());
        let v6 = policy(&["::/0"], &[]);
        assert!(v6.check_addr(addr("[2001:db8::1]:80")).is_ok());
        assert!(v6.check_addr(addr("10.1.2.3:80")).is_err());
    }

    #[test]
    fn an_ip_without_a_port_is_refused_only_if_every_port_is() {
        let p = policy(&["127.0.0.1:5432"], &[]);
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        let denial = NetworkPolicy::default()
            .check_ip("127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(denial.target, "127.0.0.1");
    }

    #[test]
    fn the_own_listener_opens_only_to_a_rule_naming_address_and_port() {
        guard_own_listener(addr("192.0.2.77:47125"));
        let reason = |p: &NetworkPolicy, a: &str| p.check_addr(addr(a)).map_err(|d| d.reason);
        let own = "checkhost's own listening address is denied unless network.allow names it with its port";
        assert_eq!(
            reason(&NetworkPolicy::default(), "192.0.2.77:47125"),
            Err(own.into())
        );
        assert_eq!(
            reason(&NetworkPolicy::default(), "192.0.2.77:47126"),
            Ok(())
        );
        assert_eq!(
            reason(&policy(&["192.0.2.0/24"], &[]), "192.0.2.77:47125"),
            Err(own.into())
        );
        assert_eq!(
            reason(&policy(&["192.0.2.77"], &[]), "192.0.2.77:47125"),
            Err(own.into())
        );
        assert_eq!(
            reason(&policy(&["192.0.2.77:47125"], &[]), "192.0.2.77:47125"),
            Ok(())
        );
    }

    #[test]
    fn an_unspecified_listener_is_guarded_on_loopback_and_local_addresses() {
        guard_own_listener(addr("0.0.0.0:47123"));
        let loopback = policy(&["127.0.0.0/8"], &[]);
        assert!(loopback.check_addr(addr("127.0.0.1:47123")).is_err());
        assert!(loopback.check_addr(addr("127.0.0.1:47124")).is_ok());
        let by_name = policy(&["localhost:47123"], &[]);
        assert!(by_name.check_addr(addr("127.0.0.1:47123")).is_err());
        let local: Vec<IpAddr> = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(|i| canonical(i.ip()))
            .filter(|ip| !ip.is_loopback() && !is_link_local_or_metadata(*ip))
            .collect();
        for ip in local {
            let target = SocketAddr::new(ip, 47123);
            assert!(is_own_listener(&Target::new(target)), "{target}");
            assert!(NetworkPolicy::default().check_addr(target).is_err());
        }
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_as_ipv4() {
        let p = NetworkPolicy::default();
        for target in [
            "[64:ff9b::7f00:1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[64:ff9b:1::7f00:1]:80",
            "[64:ff9b:1:7f00:1::]:80",
            "[2002:7f00:1::1]:80",
            "[2001:0:4136:e378:8000:63bf:80ff:fffe]:80",
            "[::127.0.0.1]:80",
        ] {
            assert!(p.check_addr(addr(target)).is_err(), "{target}");
        }
        assert!(p.check_addr(addr("[64:ff9b::a00:1]:80")).is_ok());
        let deny = policy(&[], &["10.0.0.0/8"]);
        assert!(deny.check_addr(addr("[64:ff9b::a00:1]:80")).is_err());
        // Opening a range does not open loopback carried inside NAT64.
        let open = policy(&["10.0.0.0/8", "64:ff9b::/96"], &[]);
        assert!(open.check_addr(addr("[64:ff9b::7f00:1]:80")).is_err());
        assert!(
            policy(&["127.0.0.1"], &[])
                .check_addr(addr("[64:ff9b::7f00:1]:80"))
                .is_ok()
        );
    }

    #[test]
    fn this_hosts_own_addresses_need_an_explicit_allow() {
        let own: Vec<IpAddr> = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(|i| canonical(i.ip()))
            .filter(|ip| !ip.is_loopback() && !is_link_local_or_metadata(*ip))
            .collect();
        assert!(!own.is_empty(), "this machine has a non-loopback address");
        for ip in own {
            let target = SocketAddr::new(ip, 8080);
            let denial = NetworkPolicy::default().check_addr(target).unwrap_err();
            assert_eq!(
                denial.reason,
                "this host's own addresses are denied unless network.allow names the address itself"
            );
            let everything = policy(&["0.0.0.0/0", "::/0"], &[]);
            assert!(everything.check_addr(target).is_err(), "{target}");
            // The private range an operator opens for other hosts does not
            // open this one.
            let range = IpNet::new(ip, if ip.is_ipv4() { 16 } else { 64 })
                .unwrap()
                .trunc()
                .to_string();
            let ranged = policy(&[range.as_str()], &[]);
            assert!(ranged.check_addr(target).is_err(), "{target} under {range}");
            let rule = ip.to_string();
            let named = policy(&[rule.as_str()], &[]);
            assert!(named.check_addr(target).is_ok(), "{target}");
        }
    }

    #[test]
    fn explicit_allow_opens_link_local() {
        let p = policy(&["169.254.0.0/16"], &[]);
        assert!(p.check_addr(addr("169.254.169.254:80")).is_ok());
    }

    #[test]
    fn bad_rules_are_named() {
        let err = "10.0.0.0/99".parse::<Rule>().unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
        assert!("host:notaport".parse::<Rule>().is_err());
    }
}
