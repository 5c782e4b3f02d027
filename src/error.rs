//! Typed errors. Every failure a user can act on has its own variant, so
//! that callers can `match` instead of parsing strings.

use crate::message::Message;
use std::{fmt, io};

/// Why a ZMTP peer was refused or disconnected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes were not a ZMTP signature.
    BadSignature,
    /// The peer speaks a ZMTP major version below 3.
    UnsupportedVersion {
        /// Major version the peer announced.
        major: u8,
        /// Minor version the peer announced.
        minor: u8,
    },
    /// The peer asked for a security mechanism we do not offer.
    MechanismMismatch {
        /// The mechanism name the peer sent.
        peer: String,
    },
    /// The peer's socket type cannot talk to ours (RFC 28).
    IncompatibleSocketType {
        /// Our type.
        ours: &'static str,
        /// The peer's type, as it named it.
        peer: String,
    },
    /// The READY command had no `Socket-Type` property.
    MissingSocketType,
    /// A command could not be parsed.
    MalformedCommand(&'static str),
    /// A frame header was invalid (reserved flags, or a long length that
    /// would fit in a short frame where that is forbidden).
    MalformedFrame(&'static str),
    /// A command arrived where it is not allowed (for example a message
    /// frame during the handshake).
    UnexpectedCommand(String),
    /// A frame or message exceeded `maxmsgsize`.
    MessageTooLarge {
        /// Size announced or accumulated.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The handshake did not finish within `handshake_ivl`.
    HandshakeTimeout,
    /// The peer did not answer heartbeats in time.
    HeartbeatTimeout,
    /// The peer sent an ERROR command with this reason.
    PeerError(String),
    /// A ROUTER already has a peer with this routing id.
    DuplicateRoutingId,
    /// A subscriber's subscriptions grew past the publisher's
    /// `subscription_limit`.
    TooManySubscriptions {
        /// What its subscriptions cost: their bytes, plus a fixed overhead
        /// per subscription.
        held: u64,
        /// The limit.
        limit: u64,
    },
    /// The socket's `inbound_budget` was overdrawn and this connection
    /// held the most of it, in a message still arriving.
    InboundBudget {
        /// Bytes this connection held for its message.
        held: u64,
        /// The socket's budget.
        budget: u64,
    },
    /// A PAIR socket already has a connected peer; it takes one at a time.
    AlreadyPaired,
    /// Authentication refused: by our ZAP handler (we are the server), or
    /// by the server, whose ERROR carried a ZAP status code (libzmq's
    /// `ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`).
    AuthFailed {
        /// The ZAP status code: 300 temporary, 400 refused, 500 internal.
        status: u16,
        /// The handler's reason, when we are the server (never sent).
        text: String,
    },
    /// ZAP could not decide: the handler bound on
    /// `inproc://zeromq.zap.01` answered something RFC 27 does not allow
    /// (a malformed reply, another version, an unknown status code), or
    /// the request could not be queued for it (libzmq's
    /// `ZMQ_PROTOCOL_ERROR_ZAP_*`, a protocol failure).
    ZapFailed(&'static str),
    /// A CURVE box did not open: the peer used other keys than we expect,
    /// or the bytes were changed on the way.
    Decryption(&'static str),
    /// A CURVE short nonce was not above the last one received: a
    /// replayed or reordered command or message.
    ReplayedNonce {
        /// The nonce received.
        nonce: u64,
        /// The last nonce accepted.
        last: u64,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BadSignature => write!(f, "not a ZMTP peer (bad signature)"),
            ProtocolError::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported ZMTP version {major}.{minor}")
            }
            ProtocolError::MechanismMismatch { peer } => {
                write!(
                    f,
                    "security mechanism mismatch: peer wants {peer:?}, we use another"
                )
            }
            ProtocolError::IncompatibleSocketType { ours, peer } => {
                write!(f, "incompatible socket type: {ours} cannot talk to {peer}")
            }
            ProtocolError::MissingSocketType => write!(f, "READY without Socket-Type"),
            ProtocolError::MalformedCommand(why) => write!(f, "malformed command: {why}"),
            ProtocolError::MalformedFrame(why) => write!(f, "malformed frame: {why}"),
            ProtocolError::UnexpectedCommand(name) => write!(f, "unexpected command {name}"),
            ProtocolError::MessageTooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds maxmsgsize {limit}")
            }
            ProtocolError::HandshakeTimeout => write!(f, "handshake timed out"),
            ProtocolError::HeartbeatTimeout => write!(f, "peer stopped answering heartbeats"),
            ProtocolError::PeerError(reason) => write!(f, "peer sent ERROR: {reason}"),
            ProtocolError::DuplicateRoutingId => write!(f, "duplicate routing id"),
            ProtocolError::TooManySubscriptions { held, limit } => write!(
                f,
                "subscriptions cost {held} bytes, over the limit of {limit}"
            ),
            ProtocolError::InboundBudget { held, budget } => write!(
                f,
                "inbound budget of {budget} bytes overdrawn; this peer held {held} bytes of a \
                 message still arriving"
            ),
            ProtocolError::AlreadyPaired => write!(f, "the PAIR socket already has a peer"),
            ProtocolError::AuthFailed { status, text } if text.is_empty() => {
                write!(f, "authentication refused (ZAP status {status})")
            }
            ProtocolError::AuthFailed { status, text } => {
                write!(f, "authentication refused (ZAP status {status}: {text})")
            }
            ProtocolError::ZapFailed(why) => write!(f, "ZAP failed: {why}"),
            ProtocolError::Decryption(what) => {
                write!(f, "{what} did not decrypt: wrong keys or tampered bytes")
            }
            ProtocolError::ReplayedNonce { nonce, last } => write!(
                f,
                "CURVE nonce {nonce} not above the last one ({last}): replayed or reordered"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The error type of this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A non-blocking operation could not proceed now (libzmq `EAGAIN`).
    WouldBlock,
    /// A blocking operation did not finish within its timeout.
    TimedOut,
    /// The call is not allowed in the socket's current state, for example
    /// a second `send` on a REQ socket before its reply (libzmq `EFSM`).
    InvalidState(&'static str),
    /// The endpoint string could not be parsed, is not supported, or is
    /// not usable for this call (a wildcard given to `connect`).
    InvalidEndpoint(crate::endpoint::EndpointError),
    /// An option value was out of range, or the option does not apply to
    /// this socket's type (libzmq `EINVAL`). The option was not changed.
    InvalidOption(&'static str),
    /// An option that shapes connections as they are made (a routing id,
    /// a heartbeat, a security key...) was set after the socket's first
    /// `bind` or `connect`. Connections made since were shaped by the old
    /// value, so that a new one would apply to some connections only: the
    /// option must be set before the first `bind` or `connect`, and its
    /// value was not changed. (libzmq applies it to later connections
    /// only, silently.)
    OptionAfterConnect {
        /// The option's name, as its setter has it (`"heartbeat_ivl"`).
        option: &'static str,
    },
    /// The address is already bound by another socket or process.
    AddressInUse(String),
    /// The address cannot be bound on this host.
    AddressNotAvailable(String),
    /// `unbind`/`disconnect` named an endpoint that this socket does not have.
    UnknownEndpoint(String),
    /// A ROUTER with `router_mandatory` had no peer with this routing id
    /// (libzmq `EHOSTUNREACH`).
    HostUnreachable,
    /// The message is not valid for this socket, for example a ROUTER
    /// message without a routing-id frame, or a message with no frames.
    InvalidMessage(&'static str),
    /// The connection that carried a REQ socket's outstanding request was
    /// lost before the reply came. The socket can send again. (libzmq would
    /// wait forever or until `rcvtimeo` here.)
    PeerLost {
        /// The peer's endpoint.
        endpoint: String,
    },
    /// The context was terminated; the socket can no longer be used.
    ContextTerminated,
    /// The socket was closed with [`crate::Socket::close`], possibly by
    /// another thread while this call was blocked (libzmq `ENOTSOCK`).
    SocketClosed,
    /// A ZMTP protocol failure.
    Protocol(ProtocolError),
    /// An operating-system error.
    Io(io::Error),
}

impl From<crate::endpoint::EndpointError> for Error {
    fn from(e: crate::endpoint::EndpointError) -> Error {
        Error::InvalidEndpoint(e)
    }
}

impl Error {
    /// The error itself: with [`SendError::kind`], one `match` serves the
    /// errors of `send` and of `recv` alike:
    ///
    /// ```
    /// # use ferrozmq::{Context, Error, SocketType};
    /// # let ctx = Context::new();
    /// # let s = ctx.socket(SocketType::Push).unwrap();
    /// fn retry_later(e: &Error) -> bool {
    ///     matches!(e, Error::WouldBlock | Error::TimedOut)
    /// }
    /// let sent = s.try_send("x").map_err(|e| retry_later(e.kind()));
    /// assert_eq!(sent, Err(true)); // no peer yet
    /// # let r = ctx.socket(SocketType::Pull).unwrap();
    /// let received = r.try_recv().map_err(|e| retry_later(e.kind()));
    /// assert_eq!(received.err(), Some(true));
    /// ```
    pub fn kind(&self) -> &Error {
        self
    }

    /// True for [`Error::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }

    /// True for [`Error::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => write!(f, "operation would block"),
            Error::TimedOut => write!(f, "operation timed out"),
            Error::InvalidState(why) => write!(f, "invalid state: {why}"),
            Error::InvalidEndpoint(e) => write!(f, "invalid endpoint: {e}"),
            Error::InvalidOption(why) => write!(f, "invalid option: {why}"),
            Error::OptionAfterConnect { option } => write!(
                f,
                "{option} shapes connections as they are made, so it must be set before the \
                 socket's first bind or connect; its value was not changed"
            ),
            Error::AddressInUse(a) => write!(f, "address in use: {a}"),
            Error::AddressNotAvailable(a) => write!(f, "address not available: {a}"),
            Error::UnknownEndpoint(e) => write!(f, "no such endpoint on this socket: {e}"),
            Error::HostUnreachable => write!(f, "no peer with that routing id"),
            Error::InvalidMessage(why) => write!(f, "invalid message: {why}"),
            Error::PeerLost { endpoint } => {
                write!(f, "connection to {endpoint} lost before the reply came")
            }
            Error::ContextTerminated => write!(f, "context terminated"),
            Error::SocketClosed => write!(f, "socket closed"),
            Error::Protocol(p) => write!(f, "protocol error: {p}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(p) => Some(p),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

/// A failed send: the error, and the message handed back so that nothing
/// is lost (as crossbeam's `TrySendError` does).
#[derive(Debug)]
pub struct SendError {
    /// Why the send failed.
    pub error: Error,
    /// The message that was not sent.
    pub message: Message,
}

impl SendError {
    /// Pairs an error with the message that was not sent.
    pub fn new(error: Error, message: Message) -> Self {
        SendError { error, message }
    }

    /// The message that was not sent.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// Why the send failed, to match on as on a `recv` error (see
    /// [`Error::kind`]).
    pub fn kind(&self) -> &Error {
        &self.error
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send failed: {}", self.error)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        e.error
    }
}

/// Shorthand for results with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
