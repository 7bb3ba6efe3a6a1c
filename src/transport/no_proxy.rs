//! `NO_PROXY`: the hosts that bypass a proxy, with curl's rules (see
//! [`Proxy`](super::Proxy) for where the list comes from).

use std::net::IpAddr;

/// Hosts that bypass the proxy, with curl's `NO_PROXY` rules (see the
/// [module](self) documentation).
///
/// ```
/// use apns_provider::transport::NoProxy;
/// let list = NoProxy::parse("example.com, .corp, 192.168.0.0/16, ::1");
/// assert!(list.matches("example.com") && list.matches("api.example.com"));
/// assert!(!list.matches("notexample.com"));
/// assert!(list.matches("mock.corp") && list.matches("192.168.4.5") && list.matches("[::1]"));
/// assert!(!list.matches("localhost")); // loopback is not special
/// assert!(NoProxy::parse("*").matches("anything"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<String>,
}

impl NoProxy {
    /// No host bypasses the proxy.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma- (or space-) separated list.
    pub fn parse(list: &str) -> Self {
        let list = list.trim();
        NoProxy {
            all: list == "*",
            entries: list
                .split([',', ' ', '\t'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    /// `no_proxy`, else `NO_PROXY`, from the environment.
    pub fn from_env() -> Self {
        Self::from_lookup(&|name: &str| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        lookup("no_proxy")
            .or_else(|| lookup("NO_PROXY"))
            .map(|v| Self::parse(&v))
            .unwrap_or_default()
    }

    /// Whether `host` (a name or an IP address, IPv6 with or without
    /// brackets) bypasses the proxy.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.entries.iter().any(|entry| match ip {
            Some(ip) => ip_matches(ip, &host, entry),
            None => name_matches(&host, entry),
        })
    }
}

/// `example.com` matches itself and `*.example.com`, never `notexample.com`.
fn name_matches(host: &str, entry: &str) -> bool {
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    let entry = entry.strip_prefix('.').unwrap_or(entry);
    if entry.is_empty() {
        return false;
    }
    host == entry
        || (host.len() > entry.len()
            && host.ends_with(entry)
            && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
}

/// An address as written, or within a CIDR range.
fn ip_matches(ip: IpAddr, written: &str, entry: &str) -> bool {
    let entry = entry.trim_start_matches('[').replace(']', "");
    match entry.split_once('/') {
        None => entry == written || entry.parse::<IpAddr>().is_ok_and(|e| e == ip),
        Some((net, bits)) => {
            let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
                return false;
            };
            match (ip, net) {
                (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
                    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                    u32::from(a) & mask == u32::from(n) & mask
                }
                (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    u128::from(a) & mask == u128::from(n) & mask
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_follows_curls_rules() {
        let list =
            NoProxy::parse(" example.com,.corp ,  10.0.0.0/8,192.168.1.5, [::1], fe80::/10, host.");
        for yes in [
            "example.com",
            "EXAMPLE.com",
            "www.example.com",
            "example.com.",
            "a.b.corp",
            "corp",
            "10.200.3.4",
            "192.168.1.5",
            "::1",
            "[::1]",
            "fe80::1",
            "host",
        ] {
            assert!(list.matches(yes), "{yes} should bypass");
        }
        for no in [
            "notexample.com",
            "example.com.org",
            "xcorp",
            "11.0.0.1",
            "192.168.1.50",
            "localhost",
            "127.0.0.1",
            "::2",
        ] {
            assert!(!list.matches(no), "{no} should use the proxy");
        }
        assert!(NoProxy::parse("*").matches("api.push.apple.com"));
        assert!(NoProxy::parse(" * ").matches("127.0.0.1"));
        // As in curl, `*` is a wildcard only alone.
        assert!(!NoProxy::parse("example.com,*").matches("other.org"));
        assert!(!NoProxy::parse("").matches("anything"));
        assert!(NoProxy::parse("0.0.0.0/0").matches("8.8.8.8"));
        assert!(!NoProxy::parse("10.0.0.0/99").matches("10.0.0.1"));
    }
}
