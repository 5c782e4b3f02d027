//! `ipc://`: Unix domain stream sockets, by path or (Linux) in the
//! abstract namespace.
//!
//! The rules about the socket file, where libzmq is looser:
//! - `bind` on a path where a socket file remains but nobody listens (a
//!   crashed process's) replaces it; where someone listens, it fails with
//!   `AddressInUse` (libzmq unlinks the path unconditionally, taking the
//!   address from a live listener);
//! - the file is removed when the listener closes (unbind, socket close,
//!   context termination), but only if it is still the file we created
//!   (same device and inode): never a file someone else put there since;
//! - `ipc://*` binds `socket` in a fresh directory under the temporary
//!   directory, and removes both.

use super::Listener;
use crate::conn::Stream;
use crate::endpoint::{EndpointError, EndpointErrorKind, IpcEndpoint, IPC_PATH_MAX};
use crate::error::{Error, Result};
use crate::monitor::ConnectFailure;
use mio::net::{UnixListener, UnixStream};
use socket2::{Domain, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How many fresh directory names `ipc://*` tries before giving up.
const WILDCARD_TRIES: u32 = 16;

/// A Unix socket address, with its endpoint for messages.
#[derive(Clone, Debug)]
pub(crate) struct IpcAddr {
    addr: SockAddr,
    endpoint: String,
}

impl IpcAddr {
    pub(super) fn new(ep: &IpcEndpoint) -> Result<IpcAddr> {
        let addr = match ep {
            IpcEndpoint::Path(p) => SockAddr::unix(p),
            IpcEndpoint::Abstract(name) => SockAddr::unix(format!("\0{name}")),
            IpcEndpoint::Any => {
                return Err(EndpointError::new(ep, EndpointErrorKind::WildcardConnect).into())
            }
        };
        // The parser bounds the length already; this is the OS's word.
        let addr = addr.map_err(|_| {
            EndpointError::new(
                ep,
                EndpointErrorKind::PathTooLong {
                    len: ep.to_string().len() - "ipc://".len(),
                },
            )
        })?;
        Ok(IpcAddr {
            addr,
            endpoint: ep.to_string(),
        })
    }
}

impl fmt::Display for IpcAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint)
    }
}

fn unix_socket() -> io::Result<Socket> {
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

pub(super) fn connect(addr: &IpcAddr) -> io::Result<(Stream, bool)> {
    let sock = unix_socket()?;
    let done = match sock.connect(&addr.addr) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    let std = std::os::unix::net::UnixStream::from(OwnedFd::from(sock));
    Ok((Stream::Unix(UnixStream::from_std(std)), done))
}

/// A missing path and a path nobody listens on are both "refused", as
/// for TCP: retried on backoff. `EACCES` is a permission error.
pub(super) fn classify(e: &io::Error) -> ConnectFailure {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ECONNREFUSED) => ConnectFailure::Refused,
        Some(libc::EACCES | libc::EPERM) => ConnectFailure::PermissionDenied,
        _ => ConnectFailure::classify(e),
    }
}

/// A listening Unix socket, and the file it must remove when closed.
#[derive(Debug)]
pub(crate) struct IpcListener {
    pub(super) listener: UnixListener,
    _file: Option<SocketFile>,
}

impl IpcListener {
    pub(super) fn accept(&self) -> io::Result<Stream> {
        self.listener.accept().map(|(s, _)| Stream::Unix(s))
    }
}

/// A socket file this listener created (and, for `ipc://*`, the
/// directory it made for it): removed on drop if still ours.
#[derive(Debug)]
struct SocketFile {
    /// Absolute, so that a change of working directory after a relative
    /// bind still removes the right file.
    path: PathBuf,
    dev: u64,
    ino: u64,
    dir: Option<PathBuf>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::debug!("cannot remove {}: {e}", self.path.display());
            }
        }
        if let Some(dir) = &self.dir {
            // Fails, harmlessly, if someone put something else there.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub(super) fn listen(ep: &IpcEndpoint, backlog: i32) -> Result<(Listener, String)> {
    let (listener, bound) = match ep {
        IpcEndpoint::Abstract(_) => {
            let addr = IpcAddr::new(ep)?;
            let sock = unix_socket()?;
            sock.bind(&addr.addr)
                .map_err(|e| super::bind_error(e, ep))?;
            sock.listen(backlog)?;
            let listener = IpcListener {
                listener: into_listener(sock),
                _file: None,
            };
            (listener, ep.to_string())
        }
        IpcEndpoint::Path(path) => {
            let listener = listen_path(ep, path, None, backlog)?;
            (listener, ep.to_string())
        }
        IpcEndpoint::Any => {
            let dir = fresh_dir()?;
            let path = dir.join("socket");
            let bound = IpcEndpoint::Path(path.clone());
            let len = path.as_os_str().len();
            if len > IPC_PATH_MAX {
                let _ = std::fs::remove_dir(&dir);
                return Err(EndpointError::new(ep, EndpointErrorKind::PathTooLong { len }).into());
            }
            let listener = listen_path(&bound, &path, Some(dir), backlog)?;
            (listener, bound.to_string())
        }
    };
    Ok((Listener::Ipc(listener), bound))
}

fn into_listener(sock: Socket) -> UnixListener {
    UnixListener::from_std(std::os::unix::net::UnixListener::from(OwnedFd::from(sock)))
}

/// Binds a path, replacing a stale socket file, and records the file as
/// ours.
fn listen_path(
    ep: &IpcEndpoint,
    path: &Path,
    dir: Option<PathBuf>,
    backlog: i32,
) -> Result<IpcListener> {
    let addr = IpcAddr::new(ep)?;
    let fail = |e: Error, dir: &Option<PathBuf>| {
        if let Some(d) = dir {
            let _ = std::fs::remove_dir(d);
        }
        e
    };
    let sock = unix_socket().map_err(|e| fail(e.into(), &dir))?;
    if let Err(e) = sock.bind(&addr.addr) {
        if e.kind() != io::ErrorKind::AddrInUse || !is_stale(&addr) {
            return Err(fail(super::bind_error(e, ep), &dir));
        }
        log::debug!("replacing the stale socket file {}", path.display());
        // Between the probe and here another process may have bound it;
        // then our bind below fails, as it should.
        let _ = std::fs::remove_file(path);
        sock.bind(&addr.addr)
            .map_err(|e| fail(super::bind_error(e, ep), &dir))?;
    }
    let meta = std::fs::symlink_metadata(path);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let file = meta.ok().map(|m| SocketFile {
        path: absolute,
        dev: m.dev(),
        ino: m.ino(),
        dir,
    });
    // From here on, failing drops `file`, which removes what we made.
    sock.listen(backlog)?;
    Ok(IpcListener {
        listener: into_listener(sock),
        _file: file,
    })
}

/// Whether the socket file at `addr` is left over: a socket, on which
/// nobody listens. Anything else (a live listener, a regular file, an
/// error we cannot interpret) is not ours to remove.
fn is_stale(addr: &IpcAddr) -> bool {
    let Some(path) = addr.addr.as_pathname() else {
        return false;
    };
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return false;
    }
    let Ok(probe) = unix_socket() else {
        return false;
    };
    // Non-blocking: a live listener with a full backlog answers EAGAIN
    // instead of making us wait.
    matches!(
        probe.connect(&addr.addr).map_err(|e| e.raw_os_error()),
        Err(Some(libc::ECONNREFUSED))
    )
}

/// A new private directory under the temporary directory, for `ipc://*`.
fn fresh_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let mut seed = crate::seed::random_seed();
    for _ in 0..WILDCARD_TRIES {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let dir = base.join(format!("ferrozmq-{:012x}", seed >> 16));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Err(Error::Io(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no fresh directory for ipc://*",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_classified_as_the_issue_asks() {
        let class = |errno| classify(&io::Error::from_raw_os_error(errno));
        // A path nobody created yet and a path nobody listens on are the
        // same to a client: retried on backoff.
        assert_eq!(class(libc::ENOENT), ConnectFailure::Refused);
        assert_eq!(class(libc::ECONNREFUSED), ConnectFailure::Refused);
        assert_eq!(class(libc::EACCES), ConnectFailure::PermissionDenied);
        assert_eq!(class(libc::EAGAIN), ConnectFailure::Other);
    }
}
