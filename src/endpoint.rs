//! Endpoint strings: `tcp://host:port`.

use crate::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The host part of a TCP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// `*`: every IPv4 interface (bind only), as in libzmq.
    Any,
    /// A literal IP address (IPv6 written as `[::1]`).
    Ip(IpAddr),
    /// A name to resolve, such as `localhost`.
    Name(String),
}

/// A parsed `tcp://host:port` endpoint. Port 0 or `*` means "any port"
/// and is only valid for `bind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Where.
    pub host: Host,
    /// Port; 0 for an ephemeral port.
    pub port: u16,
}

impl Endpoint {
    /// Parses an endpoint string.
    pub fn parse(s: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| Error::InvalidEndpoint(format!("{s}: {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected tcp://host:port"))?;
        if scheme != "tcp" {
            return Err(bad("only the tcp transport is supported"));
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
        let port = match port {
            "*" | "0" => 0,
            p => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("port must be 1-65535 or *"))?,
        };
        let host = if host == "*" {
            Host::Any
        } else if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?;
            let inner = inner.split('%').next().unwrap_or(inner);
            Host::Ip(IpAddr::V6(
                inner
                    .parse::<Ipv6Addr>()
                    .map_err(|_| bad("bad IPv6 address"))?,
            ))
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(bad("bad host name"));
        } else {
            Host::Name(host.to_owned())
        };
        Ok(Endpoint { host, port })
    }

    /// Checks that this endpoint can be connected to.
    pub fn check_connectable(&self) -> Result<(), Error> {
        if self.host == Host::Any || self.port == 0 {
            return Err(Error::InvalidEndpoint(format!(
                "{self}: connect needs a concrete host and port"
            )));
        }
        Ok(())
    }

    /// The endpoint string for a concrete socket address.
    pub fn from_addr(addr: SocketAddr) -> Endpoint {
        Endpoint {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The literal address, when the host needs no resolution.
    pub fn literal_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Any => Some(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port)),
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Any => write!(f, "tcp://*")?,
            Host::Ip(IpAddr::V4(ip)) => write!(f, "tcp://{ip}")?,
            Host::Ip(IpAddr::V6(ip)) => write!(f, "tcp://[{ip}]")?,
            Host::Name(n) => write!(f, "tcp://{n}")?,
        }
        if self.port == 0 {
            write!(f, ":*")
        } else {
            write!(f, ":{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_libzmq_accepts() {
        let e = Endpoint::parse("tcp://127.0.0.1:5555").expect("v4");
        assert_eq!(
            e.literal_addr(),
            Some("127.0.0.1:5555".parse().expect("addr"))
        );
        assert_eq!(Endpoint::parse("tcp://*:*").expect("any").port, 0);
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:0").expect("zero").port, 0);
        let v6 = Endpoint::parse("tcp://[::1]:80").expect("v6");
        assert_eq!(v6.to_string(), "tcp://[::1]:80");
        assert_eq!(
            Endpoint::parse("tcp://[::]:80")
                .expect("v6 any")
                .to_string(),
            "tcp://[::]:80"
        );
        assert_eq!(
            Endpoint::parse("tcp://localhost:1").expect("name").host,
            Host::Name("localhost".into())
        );
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in [
            "",
            "tcp://",
            "udp://1.2.3.4:5",
            "tcp://1.2.3.4",
            "tcp://1.2.3.4:65536",
            "tcp://1.2.3.4:-1",
            "tcp://[::1:5",
            "tcp://ho st:5",
            "tcp://:5",
            "ipc:///tmp/x",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::InvalidEndpoint(_))),
                "{bad:?} should be rejected"
            );
        }
        assert!(Endpoint::parse("tcp://*:5")
            .expect("parse")
            .check_connectable()
            .is_err());
        assert!(Endpoint::parse("tcp://a:*")
            .expect("parse")
            .check_connectable()
            .is_err());
    }
}
