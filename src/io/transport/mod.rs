//! The transport boundary: everything that differs between `tcp://` and
//! `ipc://`, and nothing else.
//!
//! A transport provides four things:
//! - the concrete addresses a connecter tries ([`Addr`], from
//!   [`addrs`], or from the resolver for TCP host names);
//! - a non-blocking connect on a fresh socket per attempt
//!   ([`Addr::connect`]) and the classes of its errors
//!   ([`Addr::classify`]);
//! - a listener: bind, the endpoint actually bound (wildcards resolved),
//!   accept, and what it must clean up when closed ([`Listener`]);
//! - per-connection options ([`configure`]).
//!
//! What a connection carries is a `conn::Stream`. Everything else is
//! shared by every transport: the engine and its ZMTP session, backoff
//! and retry, connect and handshake timers, monitor events, endpoint
//! status (`connecter.rs`, `listener.rs`, `engine.rs`). A further
//! transport is one more variant here. `inproc://` is not one: it has no
//! stream and no I/O thread work (`crate::inproc`).

pub(super) mod ipc;
pub(super) mod tcp;

use crate::conn::Stream;
use crate::endpoint::{Endpoint, Host};
use crate::error::{Error, Result};
use crate::monitor::ConnectFailure;
use crate::options::Options;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io;
use std::net::SocketAddr;

/// One concrete address a connect attempt goes to.
#[derive(Debug, Clone)]
pub(super) enum Addr {
    Tcp(SocketAddr),
    Ipc(ipc::IpcAddr),
}

/// What a connecter must do before it can try an endpoint.
pub(super) enum Addrs {
    /// Try these, in order.
    Ready(Vec<Addr>),
    /// Resolve this host name first (off the I/O thread).
    Resolve(String, u16),
}

/// The addresses of a connectable endpoint (not `inproc://`, which never
/// reaches the I/O thread).
pub(super) fn addrs(endpoint: &Endpoint) -> Result<Addrs> {
    match endpoint {
        Endpoint::Tcp(t) => match (&t.host, t.literal_addr()) {
            (Host::Name(name), _) => Ok(Addrs::Resolve(name.clone(), t.port)),
            (_, Some(addr)) => Ok(Addrs::Ready(vec![Addr::Tcp(addr)])),
            (_, None) => Ok(Addrs::Ready(Vec::new())),
        },
        Endpoint::Ipc(i) => Ok(Addrs::Ready(vec![Addr::Ipc(ipc::IpcAddr::new(i)?)])),
        Endpoint::Inproc(_) => Err(Error::InvalidState("inproc endpoints have no address")),
    }
}

impl Addr {
    /// Starts a non-blocking connect on a fresh socket. `Ok((s, true))`
    /// means it connected at once; `Ok((s, false))` that it is in
    /// progress (wait for writability, then read `SO_ERROR`).
    pub(super) fn connect(&self) -> io::Result<(Stream, bool)> {
        match self {
            Addr::Tcp(a) => tcp::connect(*a),
            Addr::Ipc(a) => ipc::connect(a),
        }
    }

    /// The class of a connect failure, for events and `reconnect_stop`.
    pub(super) fn classify(&self, e: &io::Error) -> ConnectFailure {
        match self {
            Addr::Tcp(_) => ConnectFailure::classify(e),
            Addr::Ipc(_) => ipc::classify(e),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => a.fmt(f),
            Addr::Ipc(a) => a.fmt(f),
        }
    }
}

/// The name a connection's peer goes by in events: its address for TCP,
/// the endpoint for IPC (whose client sockets are unnamed).
pub(super) fn peer_name(stream: &Stream, endpoint: &str) -> String {
    match stream {
        Stream::Tcp(s) => s.peer_addr().map_or_else(
            |_| endpoint.to_owned(),
            |a| crate::endpoint::TcpEndpoint::from_addr(a).to_string(),
        ),
        Stream::Unix(_) => endpoint.to_owned(),
    }
}

/// Applies the options a transport has per connection: `TCP_NODELAY` and
/// the keepalive settings for TCP, nothing for IPC.
pub(super) fn configure(stream: &Stream, options: &Options) -> io::Result<()> {
    match stream {
        Stream::Tcp(s) => tcp::configure(s, options),
        Stream::Unix(_) => Ok(()),
    }
}

/// A listening socket.
#[derive(Debug)]
pub(super) enum Listener {
    Tcp(mio::net::TcpListener),
    Ipc(ipc::IpcListener),
}

impl Listener {
    /// Binds and listens. Returns the listener and the endpoint actually
    /// bound, wildcards resolved (`tcp://127.0.0.1:40123`,
    /// `ipc:///tmp/ferrozmq-…/socket`).
    pub(super) fn bind(endpoint: &Endpoint, backlog: i32) -> Result<(Listener, String)> {
        match endpoint {
            Endpoint::Tcp(t) => tcp::listen(t, backlog),
            Endpoint::Ipc(i) => ipc::listen(i, backlog),
            Endpoint::Inproc(_) => Err(Error::InvalidState("inproc endpoints have no listener")),
        }
    }

    /// Accepts one connection, and names its peer.
    pub(super) fn accept(&self, bound: &str) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                Ok((
                    Stream::Tcp(s),
                    crate::endpoint::TcpEndpoint::from_addr(peer).to_string(),
                ))
            }
            Listener::Ipc(l) => Ok((l.accept()?, bound.to_owned())),
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, token, interests),
            Listener::Ipc(l) => l.listener.register(r, token, interests),
        }
    }

    fn reregister(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, token, interests),
            Listener::Ipc(l) => l.listener.reregister(r, token, interests),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Ipc(l) => l.listener.deregister(r),
        }
    }
}

/// Maps a bind error to the crate's error: "in use" and "not available"
/// are typed, anything else stays the OS error.
fn bind_error(e: io::Error, endpoint: &dyn std::fmt::Display) -> Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => Error::AddressInUse(endpoint.to_string()),
        io::ErrorKind::AddrNotAvailable => Error::AddressNotAvailable(endpoint.to_string()),
        _ => Error::Io(e),
    }
}
