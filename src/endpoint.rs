//! Endpoint strings: `tcp://host:port`, `ipc://path` and `inproc://name`,
//! parsed into typed values with typed errors
//! ([`EndpointError`]/[`EndpointErrorKind`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The longest `ipc://` path or abstract name: `sun_path` is 108 bytes on
/// Linux, and a path needs its terminating NUL (an abstract name its
/// leading one).
pub const IPC_PATH_MAX: usize = 107;

/// A parsed endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `tcp://host:port`.
    Tcp(TcpEndpoint),
    /// `ipc://path`, `ipc://@name` or `ipc://*`: a Unix domain stream socket.
    Ipc(IpcEndpoint),
    /// `inproc://name`: sockets of one `Context`, without a kernel socket.
    Inproc(String),
}

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

/// A `tcp://host:port` endpoint. Port 0 or `*` means "any port" and is
/// only valid for `bind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEndpoint {
    /// Where.
    pub host: Host,
    /// Port; 0 for an ephemeral port.
    pub port: u16,
}

/// Where an `ipc://` endpoint lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcEndpoint {
    /// A file system path, absolute or relative to the working directory.
    Path(PathBuf),
    /// Linux's abstract namespace (`ipc://@name`): no file.
    Abstract(String),
    /// `ipc://*`: bind a fresh path under the temporary directory (bind
    /// only), as libzmq does.
    Any,
}

/// Why an endpoint string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointError {
    /// The endpoint as given.
    pub endpoint: String,
    /// What is wrong with it.
    pub kind: EndpointErrorKind,
}

/// The ways an endpoint can be malformed or unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointErrorKind {
    /// No `scheme://`.
    MissingScheme,
    /// A scheme other than `tcp`, `ipc` or `inproc`.
    UnsupportedScheme(String),
    /// `tcp://host` without `:port`.
    MissingPort,
    /// The port is not 1-65535 or `*`.
    BadPort,
    /// The host is not an address or a valid host name.
    BadHost,
    /// A host name did not resolve (bind resolves on the caller's thread).
    Unresolved(String),
    /// `connect` needs a concrete address: no `*` and no port 0.
    WildcardConnect,
    /// An `ipc://` path or an `inproc://` name is empty.
    Empty,
    /// The `ipc://` path or abstract name is longer than [`IPC_PATH_MAX`].
    PathTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The abstract namespace exists only on Linux.
    AbstractUnsupported,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = &self.endpoint;
        match &self.kind {
            EndpointErrorKind::MissingScheme => {
                write!(f, "{ep}: expected tcp://, ipc:// or inproc://")
            }
            EndpointErrorKind::UnsupportedScheme(s) => {
                write!(f, "{ep}: unsupported transport {s:?}")
            }
            EndpointErrorKind::MissingPort => write!(f, "{ep}: missing port"),
            EndpointErrorKind::BadPort => write!(f, "{ep}: port must be 1-65535 or *"),
            EndpointErrorKind::BadHost => write!(f, "{ep}: bad host"),
            EndpointErrorKind::Unresolved(why) => write!(f, "{ep}: {why}"),
            EndpointErrorKind::WildcardConnect => {
                write!(f, "{ep}: connect needs a concrete address")
            }
            EndpointErrorKind::Empty => write!(f, "{ep}: empty path or name"),
            EndpointErrorKind::PathTooLong { len } => write!(
                f,
                "{ep}: ipc path of {len} bytes, at most {IPC_PATH_MAX} fit in sun_path"
            ),
            EndpointErrorKind::AbstractUnsupported => {
                write!(f, "{ep}: the abstract namespace exists only on Linux")
            }
        }
    }
}

impl std::error::Error for EndpointError {}

impl EndpointError {
    pub(crate) fn new(endpoint: impl fmt::Display, kind: EndpointErrorKind) -> EndpointError {
        EndpointError {
            endpoint: endpoint.to_string(),
            kind,
        }
    }
}

impl Endpoint {
    /// Parses an endpoint string.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let bad = |kind| EndpointError::new(s, kind);
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad(EndpointErrorKind::MissingScheme))?;
        match scheme {
            "tcp" => TcpEndpoint::parse(rest).map(Endpoint::Tcp).map_err(bad),
            "ipc" => IpcEndpoint::parse(rest).map(Endpoint::Ipc).map_err(bad),
            "inproc" if rest.is_empty() => Err(bad(EndpointErrorKind::Empty)),
            "inproc" => Ok(Endpoint::Inproc(rest.to_owned())),
            other => Err(bad(EndpointErrorKind::UnsupportedScheme(other.to_owned()))),
        }
    }

    /// Checks that this endpoint can be connected to.
    pub fn check_connectable(&self) -> Result<(), EndpointError> {
        let wildcard = match self {
            Endpoint::Tcp(t) => t.host == Host::Any || t.port == 0,
            Endpoint::Ipc(i) => *i == IpcEndpoint::Any,
            Endpoint::Inproc(_) => false,
        };
        if wildcard {
            return Err(EndpointError::new(self, EndpointErrorKind::WildcardConnect));
        }
        Ok(())
    }
}

impl TcpEndpoint {
    fn parse(rest: &str) -> Result<TcpEndpoint, EndpointErrorKind> {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or(EndpointErrorKind::MissingPort)?;
        let port = match port {
            "*" | "0" => 0,
            p => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(EndpointErrorKind::BadPort)?,
        };
        let host = if host == "*" {
            Host::Any
        } else if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(EndpointErrorKind::BadHost)?;
            let inner = inner.split('%').next().unwrap_or(inner);
            Host::Ip(IpAddr::V6(
                inner
                    .parse::<Ipv6Addr>()
                    .map_err(|_| EndpointErrorKind::BadHost)?,
            ))
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(EndpointErrorKind::BadHost);
        } else {
            Host::Name(host.to_owned())
        };
        Ok(TcpEndpoint { host, port })
    }

    /// The endpoint for a concrete socket address.
    pub fn from_addr(addr: SocketAddr) -> TcpEndpoint {
        TcpEndpoint {
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

impl IpcEndpoint {
    fn parse(rest: &str) -> Result<IpcEndpoint, EndpointErrorKind> {
        if rest == "*" {
            return Ok(IpcEndpoint::Any);
        }
        let (ep, len) = match rest.strip_prefix('@') {
            Some(_) if !cfg!(target_os = "linux") => {
                return Err(EndpointErrorKind::AbstractUnsupported)
            }
            Some(name) => (IpcEndpoint::Abstract(name.to_owned()), name.len()),
            None => (IpcEndpoint::Path(PathBuf::from(rest)), rest.len()),
        };
        if rest.is_empty() || rest == "@" || rest.contains('\0') {
            return Err(EndpointErrorKind::Empty);
        }
        if len > IPC_PATH_MAX {
            return Err(EndpointErrorKind::PathTooLong { len });
        }
        Ok(ep)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(t) => t.fmt(f),
            Endpoint::Ipc(i) => i.fmt(f),
            Endpoint::Inproc(name) => write!(f, "inproc://{name}"),
        }
    }
}

impl fmt::Display for TcpEndpoint {
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

impl fmt::Display for IpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpcEndpoint::Path(p) => write!(f, "ipc://{}", p.display()),
            IpcEndpoint::Abstract(name) => write!(f, "ipc://@{name}"),
            IpcEndpoint::Any => write!(f, "ipc://*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> TcpEndpoint {
        match Endpoint::parse(s).expect(s) {
            Endpoint::Tcp(t) => t,
            other => panic!("{s}: parsed as {other:?}"),
        }
    }

    fn kind(s: &str) -> EndpointErrorKind {
        match Endpoint::parse(s) {
            Err(e) => e.kind,
            other => panic!("{s:?} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_tcp_forms_libzmq_accepts() {
        let e = tcp("tcp://127.0.0.1:5555");
        assert_eq!(
            e.literal_addr(),
            Some("127.0.0.1:5555".parse().expect("addr"))
        );
        assert_eq!(tcp("tcp://*:*").port, 0);
        assert_eq!(tcp("tcp://127.0.0.1:0").port, 0);
        assert_eq!(tcp("tcp://[::1]:80").to_string(), "tcp://[::1]:80");
        assert_eq!(tcp("tcp://[::]:80").to_string(), "tcp://[::]:80");
        assert_eq!(
            tcp("tcp://localhost:1").host,
            Host::Name("localhost".into())
        );
    }

    #[test]
    fn parses_ipc_and_inproc() {
        let p = |s: &str| Endpoint::parse(s).expect(s);
        assert_eq!(
            p("ipc:///tmp/x.sock"),
            Endpoint::Ipc(IpcEndpoint::Path("/tmp/x.sock".into()))
        );
        assert_eq!(
            p("ipc://rel/x"),
            Endpoint::Ipc(IpcEndpoint::Path("rel/x".into()))
        );
        assert_eq!(p("ipc://*"), Endpoint::Ipc(IpcEndpoint::Any));
        assert_eq!(p("inproc://a b"), Endpoint::Inproc("a b".into()));
        for s in ["ipc:///tmp/x.sock", "ipc://rel/x", "ipc://*", "inproc://a"] {
            assert_eq!(p(s).to_string(), s);
        }
        if cfg!(target_os = "linux") {
            assert_eq!(
                p("ipc://@n"),
                Endpoint::Ipc(IpcEndpoint::Abstract("n".into()))
            );
            assert_eq!(p("ipc://@n").to_string(), "ipc://@n");
        }
        let longest = format!("ipc:///{}", "a".repeat(IPC_PATH_MAX - 1));
        assert!(Endpoint::parse(&longest).is_ok());
    }

    #[test]
    fn rejects_bad_endpoints_with_their_reason() {
        use EndpointErrorKind as K;
        for (bad, want) in [
            ("", K::MissingScheme),
            ("tcp://", K::MissingPort),
            ("udp://1.2.3.4:5", K::UnsupportedScheme("udp".into())),
            ("tcp://1.2.3.4", K::MissingPort),
            ("tcp://1.2.3.4:65536", K::BadPort),
            ("tcp://1.2.3.4:-1", K::BadPort),
            ("tcp://[::1:5", K::BadHost),
            ("tcp://ho st:5", K::BadHost),
            ("tcp://:5", K::BadHost),
            ("ipc://", K::Empty),
            ("inproc://", K::Empty),
            (
                &format!("ipc:///{}", "a".repeat(IPC_PATH_MAX)),
                K::PathTooLong {
                    len: IPC_PATH_MAX + 1,
                },
            ),
        ] {
            assert_eq!(kind(bad), want, "{bad:?}");
        }
        for s in ["tcp://*:5", "tcp://a:*", "ipc://*"] {
            match Endpoint::parse(s).expect(s).check_connectable() {
                Err(e) => assert_eq!(e.kind, K::WildcardConnect),
                other => panic!("{s}: {other:?}"),
            }
        }
    }
}
