//! `tcp://`: listen, connect, and the per-connection TCP options.

use super::Listener;
use crate::conn::Stream;
use crate::endpoint::{EndpointError, EndpointErrorKind, TcpEndpoint};
use crate::error::Result;
use crate::options::Options;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

pub(super) fn listen(endpoint: &TcpEndpoint, backlog: i32) -> Result<(Listener, String)> {
    let addr = endpoint.literal_addr().ok_or_else(|| {
        EndpointError::new(
            endpoint,
            EndpointErrorKind::Unresolved("unresolved host".into()),
        )
    })?;
    let listener = listen_at(addr, backlog).map_err(|e| super::bind_error(e, endpoint))?;
    let bound = TcpEndpoint::from_addr(listener.local_addr()?).to_string();
    Ok((Listener::Tcp(listener), bound))
}

fn listen_at(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `tcp://[::]:port` takes IPv4 clients too, as a dual-stack socket.
        sock.set_only_v6(false)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    sock.set_nonblocking(true)?;
    Ok(TcpListener::from_std(sock.into()))
}

pub(super) fn connect(addr: SocketAddr) -> io::Result<(Stream, bool)> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    let done = match sock.connect(&addr.into()) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    Ok((Stream::Tcp(TcpStream::from_std(sock.into())), done))
}

/// `TCP_NODELAY`, and the `tcp_keepalive*` options as libzmq applies
/// them: only what was set.
pub(super) fn configure(stream: &TcpStream, o: &Options) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    if let Some(on) = o.tcp_keepalive {
        sock.set_keepalive(on)?;
    }
    if o.tcp_keepalive == Some(true) {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(idle) = o.tcp_keepalive_idle {
            ka = ka.with_time(idle);
        }
        if let Some(intvl) = o.tcp_keepalive_intvl {
            ka = ka.with_interval(intvl);
        }
        if let Some(cnt) = o.tcp_keepalive_cnt {
            ka = ka.with_retries(cnt);
        }
        sock.set_tcp_keepalive(&ka)?;
    }
    Ok(())
}
