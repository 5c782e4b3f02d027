//! Monitor events: what the I/O thread did with a socket's endpoints.
//!
//! `Socket::monitor()` returns a channel of [`MonitorEvent`]s. The kinds map
//! one-to-one onto libzmq's `ZMQ_EVENT_*`, but carry typed causes instead of
//! an errno packed into a binary frame.

use crate::error::ProtocolError;
use std::io;
use std::time::{Duration, Instant};

/// One event on one endpoint.
#[derive(Debug)]
pub struct MonitorEvent {
    /// The endpoint the event concerns: the connect or bind endpoint, or for
    /// accepted connections the peer's address.
    pub endpoint: String,
    /// What happened.
    pub kind: EventKind,
}

/// Why a connect attempt failed, classified from the OS error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The peer answered the SYN with RST: nothing listens there.
    Refused,
    /// No answer within `connect_timeout` (or the kernel's own limit).
    TimedOut,
    /// ICMP host/network unreachable, or no route.
    Unreachable,
    /// The host name did not resolve.
    Resolve,
    /// The OS refused us the address (`EACCES`: for `ipc://`, no search
    /// or write permission on the socket file or its directory).
    PermissionDenied,
    /// Anything else; see the attached `io::Error`.
    Other,
}

impl ConnectFailure {
    /// Classifies an OS error from `connect()` or `SO_ERROR`.
    pub fn classify(e: &io::Error) -> ConnectFailure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::PermissionDenied => ConnectFailure::PermissionDenied,
            io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectFailure::Unreachable
            }
            _ => ConnectFailure::Other,
        }
    }
}

/// The kinds of events, named after libzmq's `ZMQ_EVENT_*`.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// `ZMQ_EVENT_CONNECTED`: a TCP connection was established.
    Connected,
    /// `ZMQ_EVENT_CONNECT_DELAYED`: a non-blocking connect is in progress.
    ConnectDelayed,
    /// `ZMQ_EVENT_CONNECT_RETRIED`: the next attempt starts after `after`.
    ConnectRetried {
        /// Delay before the next attempt.
        after: Duration,
    },
    /// A connect attempt failed (libzmq folds this into `CLOSED`/retried).
    ConnectFailed {
        /// The class of failure.
        cause: ConnectFailure,
        /// The OS error, when there is one.
        error: Option<io::Error>,
    },
    /// `ZMQ_EVENT_LISTENING`.
    Listening,
    /// `ZMQ_EVENT_BIND_FAILED`.
    BindFailed {
        /// The OS error.
        error: io::Error,
    },
    /// `ZMQ_EVENT_ACCEPTED`.
    Accepted,
    /// `ZMQ_EVENT_ACCEPT_FAILED`.
    AcceptFailed {
        /// The OS error.
        error: io::Error,
    },
    /// `ZMQ_EVENT_HANDSHAKE_SUCCEEDED`.
    HandshakeSucceeded,
    /// `ZMQ_EVENT_HANDSHAKE_FAILED_*`: which of libzmq's three it is
    /// (and whether a CURVE box failed to open) is
    /// [`ProtocolError::handshake_failure`] of `reason`.
    HandshakeFailed {
        /// Why.
        reason: ProtocolError,
    },
    /// `ZMQ_EVENT_DISCONNECTED`: an established session ended.
    Disconnected {
        /// The protocol error that ended it, if any; `None` for EOF or an
        /// OS error.
        reason: Option<ProtocolError>,
        /// The OS error that ended it, if any.
        error: Option<io::Error>,
    },
    /// `ZMQ_EVENT_CLOSED`: a listener or connecter was closed.
    Closed,
    /// Not in libzmq: messages for this peer were dropped at its HWM (a
    /// PUB's or XPUB's slow subscriber, a ROUTER's or REP's full peer).
    /// Sent at the 1st, 2nd, 4th, 8th... drop for the peer, with the count
    /// so far: which subscriber is slow. `EndpointStatus::peers` has the
    /// current count.
    DroppedAtHwm {
        /// Messages dropped for this peer so far.
        dropped: u64,
    },
    /// `ZMQ_EVENT_MONITOR_STOPPED`: no more events will follow.
    MonitorStopped,
}

/// What one endpoint of a socket is doing now: the answer to "why is my
/// request hanging?". Returned by `Socket::endpoints()`.
#[derive(Clone, Debug)]
pub struct EndpointStatus {
    /// The endpoint as given to `connect`, or as bound.
    pub endpoint: String,
    /// Its current state.
    pub state: EndpointState,
    /// Connect attempts so far (one per address tried); 0 for listeners.
    pub attempts: u64,
    /// The last connect failure, cleared by a successful handshake.
    pub last_error: Option<(ConnectFailure, String)>,
    /// Messages queued for this endpoint and not yet written to the
    /// kernel: for a connect endpoint, its pipe and connection; for a
    /// bound one, the sum over the connections it accepted. A request
    /// that "hangs" while this is non-zero has not left this process.
    pub queued: u64,
    /// Its connections: at most one for a connect endpoint, one per
    /// accepted peer for a bound one. "Which subscriber is slow?" is the
    /// peer whose `dropped_hwm` grows.
    pub peers: Vec<PeerStatus>,
}

/// One connection of an endpoint, in [`EndpointStatus::peers`].
#[derive(Clone, Debug)]
pub struct PeerStatus {
    /// The peer's address, as in monitor events.
    pub address: String,
    /// Handshake done: messages flow.
    pub ready: bool,
    /// Messages queued for this peer and not yet written to the kernel.
    pub queued: u64,
    /// Messages for this peer dropped at its send HWM (a PUB's slow
    /// subscriber, a ROUTER's full peer). For a connect endpoint the count
    /// runs across reconnects; for an accepted peer, since it connected.
    /// The socket-wide total is `Stats::dropped_hwm`.
    pub dropped_hwm: u64,
}

/// The state of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Bound and accepting connections.
    Listening,
    /// Waiting for the host name to resolve.
    Resolving,
    /// A TCP connect is in flight.
    Connecting,
    /// Connected; the ZMTP handshake is in progress.
    Handshaking,
    /// Connected and handshaken: messages flow.
    Connected,
    /// Waiting for the next attempt, due at `until`.
    Waiting {
        /// When the next attempt starts.
        until: Instant,
    },
    /// Not reconnecting (disabled, or stopped by `reconnect_stop`).
    Stopped,
}

/// The class of a failed handshake, as libzmq's monitor tells them apart
/// (`ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`, `_PROTOCOL`, `_NO_DETAIL`), with
/// CURVE's cryptographic failures split out of `_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// Authentication refused, with the ZAP status code
    /// (`ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`).
    Auth {
        /// 300 temporary, 400 refused, 500 internal.
        status: u16,
    },
    /// A CURVE box did not open, or a nonce was replayed: wrong keys or
    /// changed bytes (libzmq: `_PROTOCOL`, `ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC`
    /// or `_INVALID_SEQUENCE`).
    Encryption,
    /// The peer broke the protocol (`ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL`).
    Protocol,
    /// No reason known, such as a handshake that timed out
    /// (`ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL`).
    NoDetail,
}

impl ProtocolError {
    /// Which class of handshake failure this error is.
    pub fn handshake_failure(&self) -> HandshakeFailure {
        match self {
            ProtocolError::AuthFailed { status, .. } => HandshakeFailure::Auth { status: *status },
            ProtocolError::Decryption(_) | ProtocolError::ReplayedNonce { .. } => {
                HandshakeFailure::Encryption
            }
            ProtocolError::HandshakeTimeout => HandshakeFailure::NoDetail,
            _ => HandshakeFailure::Protocol,
        }
    }
}
