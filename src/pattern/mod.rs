//! Socket-type logic (RFC 28 and friends), sans-IO.
//!
//! A [`Pattern`] sees only whole [`Message`]s and the [`Pipes`] of its
//! peers. It never touches sockets, threads or the clock, so every type is
//! unit-tested by pushing messages into pipes by hand.
//!
//! Lifecycle of a pipe, as a pattern sees it:
//! 1. [`Pattern::attach`]: the pipe exists. A connecter's pipe is attached
//!    at `connect()` time and survives reconnections (libzmq's default,
//!    `ZMQ_IMMEDIATE=0`); an accepted connection's pipe is attached after
//!    its handshake.
//! 2. [`Pattern::peer_ready`]: the handshake with the peer behind the pipe
//!    succeeded; `pipes.peer(id)` now returns its [`PeerInfo`]. Called again
//!    after every reconnection.
//! 3. [`Pattern::peer_lost`]: the connection behind a connecter's pipe
//!    dropped; the pipe stays and will be ready again after a reconnect.
//! 4. [`Pattern::detach`]: the pipe is about to be removed from `pipes`.

mod lb;
pub mod pipe;
// The building blocks of issue 12 (PUB, SUB, XPUB, XSUB, PAIR). Some of
// their API serves only tests and the wiring to come (per-pipe drop
// counts, subscription sizes for the per-peer bound).
#[allow(dead_code)]
mod dist;
mod pair;
#[allow(dead_code)]
mod trie;
mod xpub;
mod xsub;

mod dealer;
mod pull;
mod push;
mod rep;
mod req;
mod router;

pub use lb::LoadBalancer;
pub use pipe::{IoRequest, Pipe, PipeId, Pipes};

use crate::error::{Error, ProtocolError, SendError};
use crate::message::Message;
use crate::socket_type::SocketType;
use bytes::Bytes;

/// What the handshake told us about a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket type.
    pub socket_type: SocketType,
    /// The `Identity` property the peer sent; empty when it sent none.
    pub routing_id: Bytes,
}

/// Counters of messages that ZeroMQ semantics drop instead of delivering.
/// Exposed to users as `Socket::stats()`, so that no drop is silent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// ROUTER messages addressed to a routing id with no peer
    /// (without `router_mandatory`).
    pub dropped_unroutable: u64,
    /// ROUTER messages dropped because the peer's pipe was at its send HWM
    /// (without `router_mandatory`), and REP replies to a full pipe.
    pub dropped_hwm: u64,
    /// Messages dropped because they were malformed for this socket type,
    /// such as a reply without an empty delimiter.
    pub dropped_malformed: u64,
    /// REQ replies from a peer other than the one asked, or stale replies.
    pub dropped_unexpected: u64,
    /// SUB messages whose first frame matches none of the socket's
    /// subscriptions (a publisher filters too, but one that does not, or
    /// a message published before an unsubscribe reached it, lands here).
    /// A multipart message counts once.
    pub dropped_unsubscribed: u64,
    /// Replies (REP) or queued outbound messages whose peer disconnected
    /// before they could be written (with `immediate`, also those queued
    /// for a connecter whose connection dropped).
    pub dropped_peer_gone: u64,
    /// Outbound messages still queued, or written only in part, when the
    /// socket's `linger` ran out after close. A message counts as
    /// delivered once its last byte is written to the kernel; whether
    /// the peer read it is not known.
    pub dropped_linger: u64,
    /// Not a drop: REQ requests sent again (`req_resend`) because the
    /// connection carrying them was lost. Each resend abandons a copy
    /// that may still be answered late (and is then discarded).
    pub requests_resent: u64,
    /// Not a message count: connections dropped because the socket's
    /// `inbound_budget` was overdrawn and they held the most of it (each
    /// with the message it was sending).
    pub disconnected_over_budget: u64,
    /// Inbound messages replaced by a newer one from the same peer before
    /// the application read them (`conflate`).
    pub dropped_conflated: u64,
}

/// Options that change pattern behaviour.
#[derive(Clone, Debug, Default)]
pub struct PatternOptions {
    /// ROUTER: report unroutable messages as errors instead of dropping them,
    /// and block (or would-block) at the HWM instead of dropping.
    pub router_mandatory: bool,
    /// REQ: allow a new request before the reply to the previous one
    /// (`ZMQ_REQ_RELAXED`); the old request is abandoned.
    pub req_relaxed: bool,
    /// REQ: prefix each request with a request-id frame and accept only
    /// the reply carrying the current id (`ZMQ_REQ_CORRELATE`).
    pub req_correlate: bool,
    /// REQ: when the connection carrying the outstanding request is lost,
    /// resend the request (to another peer, or the same one once it has
    /// reconnected) instead of failing `recv` with `Error::PeerLost`.
    pub req_resend: bool,
    /// REQ, DEALER, PUSH: queue messages only to peers whose handshake
    /// has completed (`ZMQ_IMMEDIATE`).
    pub immediate: bool,
    /// XPUB: pass every subscription up, duplicates included
    /// (`ZMQ_XPUB_VERBOSE`).
    pub xpub_verbose: bool,
    /// XPUB: pass every unsubscription up too (`ZMQ_XPUB_VERBOSER`).
    pub xpub_verboser: bool,
    /// XPUB: the application decides what is subscribed, by sending
    /// subscription messages itself (`ZMQ_XPUB_MANUAL`).
    pub xpub_manual: bool,
    /// XPUB: at a subscriber's HWM, `send` blocks or returns `WouldBlock`
    /// instead of dropping the message for that subscriber
    /// (`ZMQ_XPUB_NODROP`).
    pub xpub_nodrop: bool,
    /// XPUB: a message sent to every new subscriber first
    /// (`ZMQ_XPUB_WELCOME_MSG`).
    pub xpub_welcome_msg: Option<Bytes>,
    /// PUB, XPUB: what one subscriber's subscriptions may cost before it
    /// is disconnected; `None` is unlimited.
    pub subscription_limit: Option<u64>,
}

/// Socket-type logic over pipes. See the module docs for the pipe lifecycle.
pub trait Pattern: Send + std::fmt::Debug {
    /// A new pipe exists in `pipes`.
    fn attach(&mut self, pipe: PipeId, pipes: &mut Pipes);

    /// The peer behind `pipe` completed its handshake. An `Err` refuses the
    /// peer (for example a duplicate routing id on a ROUTER); the caller then
    /// closes the connection.
    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        let _ = (pipe, pipes);
        Ok(())
    }

    /// The connection behind `pipe` was lost; the pipe remains attached.
    fn peer_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        let _ = (pipe, pipes);
    }

    /// `pipe` is about to be removed from `pipes`.
    fn detach(&mut self, pipe: PipeId, pipes: &mut Pipes);

    /// Sends one message. Returns it inside the error when it cannot be
    /// queued now ([`Error::WouldBlock`]) or at all.
    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError>;

    /// Receives one message, or [`Error::WouldBlock`] when none is ready.
    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error>;

    /// Whether [`Pattern::recv`] would return now instead of
    /// [`Error::WouldBlock`] (ZeroMQ's `POLLIN`): a message, or the failure
    /// of an outstanding request. Messages that `recv` would drop are
    /// dropped (and counted) here, so that readiness is never reported for
    /// a message the application will not see. A usage error such as a REQ
    /// with no request outstanding is not readiness.
    fn has_in(&mut self, pipes: &mut Pipes) -> bool;

    /// Whether [`Pattern::send`] of a well-formed message would not block
    /// (ZeroMQ's `POLLOUT`).
    fn has_out(&self, pipes: &Pipes) -> bool;

    /// Applies changed options.
    fn configure(&mut self, opts: &PatternOptions) {
        let _ = opts;
    }

    /// SUB: adds (`subscribe`) or removes one count of a subscription to
    /// messages starting with `prefix` (`Socket::subscribe`). Subscriptions
    /// travel to peers as single-frame messages in the ZMTP 3.0 form
    /// (`1` or `0`, then the prefix), which the session turns into
    /// SUBSCRIBE/CANCEL commands for ZMTP 3.1 peers. An XPUB with
    /// `xpub_manual` subscribes (or unsubscribes) the peer whose
    /// subscription it received last, as libzmq's `ZMQ_SUBSCRIBE` option
    /// does on such a socket. Other types refuse.
    fn set_subscription(
        &mut self,
        prefix: &[u8],
        subscribe: bool,
        pipes: &mut Pipes,
    ) -> Result<(), Error> {
        let _ = (prefix, subscribe, pipes);
        Err(Error::InvalidState("only SUB sockets subscribe"))
    }
}

/// Creates the pattern for a socket type. `seed` feeds anything random
/// (ROUTER's first generated routing id), so tests can be deterministic.
pub fn new_pattern(ty: SocketType, opts: &PatternOptions, seed: u64) -> Box<dyn Pattern> {
    let mut p: Box<dyn Pattern> = match ty {
        SocketType::Req => Box::new(req::Req::new()),
        SocketType::Rep => Box::new(rep::Rep::new()),
        SocketType::Dealer => Box::new(dealer::Dealer::new()),
        SocketType::Router => Box::new(router::Router::new(seed)),
        SocketType::Push => Box::new(push::Push::new()),
        SocketType::Pull => Box::new(pull::Pull::new()),
        SocketType::Pub => Box::new(xpub::XPub::publisher()),
        SocketType::Sub => Box::new(xsub::XSub::subscriber()),
        SocketType::XPub => Box::new(xpub::XPub::new()),
        SocketType::XSub => Box::new(xsub::XSub::new()),
        SocketType::Pair => Box::new(pair::Pair::new()),
    };
    p.configure(opts);
    p
}

/// First byte of a subscribe in the message form (ZMTP 3.0, and how
/// subscriptions travel through pipes in both directions).
const SUBSCRIBE: u8 = 1;
/// First byte of a cancel in the message form.
const CANCEL: u8 = 0;

/// The message form of a subscription change: one frame, the flag byte
/// and then the prefix. (`zmtp::command` has the same form, but `zmtp`
/// depends on `pattern`, not the other way round.)
fn subscription_message(subscribe: bool, prefix: &[u8]) -> Message {
    let mut frame = Vec::with_capacity(1 + prefix.len());
    frame.push(if subscribe { SUBSCRIBE } else { CANCEL });
    frame.extend_from_slice(prefix);
    Message::from(frame)
}

/// Reads the message form: `Some((subscribe, prefix))` for a single frame
/// starting with 1 or 0, the prefix a slice of it, not a copy. Anything
/// else (several frames, an empty frame, another first byte) is data.
fn parse_subscription(msg: &Message) -> Option<(bool, Bytes)> {
    if msg.len() != 1 {
        return None;
    }
    let frame = msg.first()?;
    match *frame.first()? {
        SUBSCRIBE => Some((true, frame.slice(1..))),
        CANCEL => Some((false, frame.slice(1..))),
        _ => None,
    }
}

/// The frame a message is matched against subscriptions by: its first,
/// or nothing for a message without frames.
fn topic_of(msg: &Message) -> &[u8] {
    msg.first().map_or(&[][..], |f| &f[..])
}

/// Rejects messages with no frames, which ZMTP cannot express.
pub(crate) fn check_not_empty(msg: Message) -> Result<Message, SendError> {
    if msg.is_empty() {
        Err(SendError::new(
            Error::InvalidMessage("a message needs at least one frame"),
            msg,
        ))
    } else {
        Ok(msg)
    }
}
