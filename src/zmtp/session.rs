//! One connection's ZMTP state machine: greeting, the handshake of its
//! security mechanism, traffic and timers. Sans-IO: bytes and `Instant`s
//! in, bytes and events out.

use super::command::{
    Command, Metadata, SubscriptionChange, MAX_PING_CONTEXT, PROP_IDENTITY, PROP_SOCKET_TYPE,
};
use super::frame::{self, Frame, FrameDecoder};
use super::greeting::{Greeting, GREETING_LEN};
use super::mechanism::{
    Mechanism, MechanismConfig, Step, ZapAnswer, ZapContext, ZapReply, ZapRequest,
};
use crate::error::ProtocolError;
use crate::message::Message;
use crate::pattern::PeerInfo;
use crate::socket_type::SocketType;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Upper bound of [`Session::bytes_wanted`], so that an announced frame
/// length (untrusted) never turns into a large allocation.
pub const MAX_READ_HINT: usize = 64 * 1024;

/// The reason sent in the ERROR command when the peer's socket type is
/// unknown or cannot talk to ours.
const INVALID_SOCKET_TYPE: &str = "Invalid socket type";

/// Configuration of one connection's protocol state machine.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our socket type, sent in READY and checked against the peer's.
    pub socket_type: SocketType,
    /// Our routing id, sent as the `Identity` property by REQ, DEALER, ROUTER.
    pub routing_id: Bytes,
    /// Drop the peer if the handshake has not completed within this time.
    /// `Some(Duration::ZERO)` means no limit, like libzmq's 0.
    pub handshake_ivl: Option<Duration>,
    /// Largest accepted frame or message, in bytes; `None` is unlimited.
    pub maxmsgsize: Option<u64>,
    /// Largest accepted command, in bytes, when larger than `maxmsgsize`
    /// (see `FrameDecoder::with_command_limit`); `None` leaves commands
    /// bounded by `maxmsgsize` alone. The engine passes the
    /// `subscription_limit`: a SUBSCRIBE is the only command that can be
    /// large.
    pub command_limit: Option<u64>,
    /// Send a PING this often once the handshake is done (`ZMQ_HEARTBEAT_IVL`);
    /// `None` or zero disables heartbeats. ZMTP 3.0 peers, which do not
    /// know PING, are never sent one.
    pub heartbeat_ivl: Option<Duration>,
    /// Drop the peer when nothing at all arrives for this long after a PING
    /// (`ZMQ_HEARTBEAT_TIMEOUT`); `None` uses `heartbeat_ivl`, zero
    /// disables the check. Only used when `heartbeat_ivl` is set.
    pub heartbeat_timeout: Option<Duration>,
    /// The TTL sent in our PINGs (`ZMQ_HEARTBEAT_TTL`), asking the peer to
    /// drop us after that much silence. Sent in whole deciseconds, rounded
    /// down and capped at `u16::MAX` (as libzmq does): under 100 ms is 0,
    /// which means no TTL.
    pub heartbeat_ttl: Option<Duration>,
    /// The security mechanism, its role and secrets.
    pub mechanism: MechanismConfig,
    /// What a server mechanism needs to ask ZAP (domain, the peer's
    /// address), and who answers (see [`ZapContext`]).
    pub zap: ZapContext,
}

impl SessionConfig {
    /// A configuration with no limits and no heartbeats; set fields with
    /// struct-update syntax (`SessionConfig { maxmsgsize: .., ..SessionConfig::new(t) }`).
    pub fn new(socket_type: SocketType) -> SessionConfig {
        SessionConfig {
            socket_type,
            routing_id: Bytes::new(),
            handshake_ivl: None,
            maxmsgsize: None,
            command_limit: Some(frame::MIN_COMMAND_LIMIT),
            heartbeat_ivl: None,
            heartbeat_timeout: None,
            heartbeat_ttl: None,
            mechanism: MechanismConfig::Null,
            zap: ZapContext::default(),
        }
    }
}

/// What a session reports to its engine.
#[derive(Debug)]
pub enum SessionEvent {
    /// The handshake completed.
    Ready(PeerInfo),
    /// A whole message arrived.
    Message(Message),
}

/// The session's timers.
///
/// Heartbeats follow RFC 37 and libzmq 4.3: once the handshake is done,
/// a PING goes out every `heartbeat_ivl`; the first PING sent while no
/// `HeartbeatTimeout` is pending arms it, and any bytes from the peer
/// disarm it. A PING from the peer with a non-zero TTL arms `Ttl`, which
/// any later bytes from the peer push back by the same TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// `handshake_ivl`: READY must arrive before it fires.
    Handshake = 0,
    /// When to send the next PING (`heartbeat_ivl`).
    Heartbeat = 1,
    /// When to give up waiting for traffic after a PING
    /// (`heartbeat_timeout`).
    HeartbeatTimeout = 2,
    /// When to give up on a silent peer, from the TTL in its last PING.
    Ttl = 3,
}

impl Timer {
    const VALUES: [Timer; 4] = [
        Timer::Handshake,
        Timer::Heartbeat,
        Timer::HeartbeatTimeout,
        Timer::Ttl,
    ];
}

/// Deadlines indexed by [`Timer`], as in quinn-proto.
#[derive(Clone, Copy, Debug, Default)]
struct TimerTable {
    data: [Option<Instant>; Timer::VALUES.len()],
}

impl TimerTable {
    fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    fn stop_all(&mut self) {
        self.data = Default::default();
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }
}

/// Where the connection is. Each state only accepts what the protocol
/// allows there; anything else fails the session.
#[derive(Debug)]
enum State {
    /// Waiting for the peer's 64-byte greeting.
    Greeting,
    /// Greetings exchanged, our READY queued; waiting for the peer's.
    Handshake {
        /// The version from the peer's greeting.
        peer_version: (u8, u8),
    },
    /// Handshake done: messages flow both ways.
    Traffic {
        /// The version from the peer's greeting.
        peer_version: (u8, u8),
        /// What the peer's READY told us.
        peer: PeerInfo,
    },
    /// A protocol error ended the session; every later call reports it.
    Failed(ProtocolError),
}

/// One connection's ZMTP 3.1 state machine, whatever its mechanism.
///
/// The session owns no socket and reads no clock. Its methods fall into
/// three groups:
///
/// - **inputs**: [`handle_input`](Self::handle_input) with bytes read from
///   the peer, [`handle_timeout`](Self::handle_timeout) when the deadline
///   from `poll_timeout` has passed, [`send_message`](Self::send_message)
///   with messages from the local socket, and [`zap_reply`](Self::zap_reply)
///   with ZAP's answer to the request `poll_zap_request` gave;
/// - **outputs**: [`poll_event`](Self::poll_event) for handshake completion
///   and received messages, [`poll_zap_request`](Self::poll_zap_request)
///   for an authentication request to take to a ZAP handler,
///   [`output`](Self::output) / [`consume_output`](Self::consume_output)
///   for bytes to write to the peer, and
///   [`poll_timeout`](Self::poll_timeout) for the next deadline;
/// - **getters**: [`is_ready`](Self::is_ready), [`peer_info`](Self::peer_info),
///   [`peer_version`](Self::peer_version), [`error`](Self::error),
///   [`bytes_wanted`](Self::bytes_wanted), [`has_output`](Self::has_output),
///   [`last_received`](Self::last_received).
///
/// After creating it (which queues our greeting), the engine loops:
///
/// 1. read bytes into its buffer and call `handle_input`, or call
///    `handle_timeout` if `poll_timeout` has passed;
/// 2. take `poll_zap_request`, if any, to the ZAP handler, and call
///    `zap_reply` whenever its answer comes (at once or much later: the
///    handshake waits, bounded by `handshake_ivl`, and the peer's commands
///    meanwhile are checked as usual);
/// 3. drain `poll_event` until `None`, handing `Ready` and messages to the
///    socket; then call `send_message` for messages the socket wants sent
///    (only once `Ready` was seen);
/// 4. write `output()` to the peer and call `consume_output` with the count
///    written; keep the rest for when the socket is writable;
/// 5. re-arm its timer with `poll_timeout`.
///
/// If an input returns `Err`, the session is dead: the engine should still
/// drain `poll_event` (messages completed before the error are delivered),
/// flush `output()` (it may hold an ERROR command for the peer), then close.
/// Later inputs return the same error and do nothing.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    /// The security mechanism: runs the handshake and, if it encrypts,
    /// boxes and opens every frame after it.
    mechanism: Mechanism,
    /// The peer's metadata (READY's properties, and `User-Id` from ZAP).
    peer_properties: Metadata,
    /// The same, shared, attached to each received message when the
    /// mechanism is not NULL.
    message_properties: Option<std::sync::Arc<[(Bytes, Bytes)]>>,
    /// Messages sent before the handshake finished, when the mechanism
    /// encrypts (they can only be encoded once its keys exist).
    early_msgs: Vec<Message>,
    decoder: FrameDecoder,
    /// Bytes for the peer, written front to back.
    out: BytesMut,
    /// Messages handed to `send_message` before the handshake finished;
    /// appended to `out` once the peer is known to be acceptable.
    early: BytesMut,
    /// Output that goes before `out`: frozen stretches of `out` and large
    /// message bodies queued by reference
    /// ([`send_message_zero_copy`](Session::send_message_zero_copy)).
    chunks: VecDeque<Bytes>,
    /// Where each message handed to `send_message*` ends, in output bytes
    /// since the session began; popped as `consume_output` passes them.
    /// What remains are the messages not yet wholly written: the count
    /// that linger and a lost connection report as dropped.
    msg_ends: VecDeque<u64>,
    /// Output bytes consumed (written to the peer) since the session began.
    consumed: u64,
    /// Messages held in `early`, by where each ends in it. Kept after a
    /// failure (when `early` is dropped), so that they still count as
    /// unsent.
    early_ends: Vec<usize>,
    /// Messages whose last byte has been consumed.
    written: u64,
    events: VecDeque<SessionEvent>,
    /// Frames of the message being received.
    partial: Vec<Bytes>,
    /// Bytes missing for the next item, after the last `handle_input`.
    wanted: usize,
    timers: TimerTable,
    last_received: Instant,
    /// The TTL from the peer's last PING, if it asked for one.
    peer_ttl: Option<Duration>,
    /// The engine stopped reading (backpressure): silence proves nothing,
    /// so the liveness timers are off.
    input_paused: bool,
    /// A ZAP request for the driver, not yet taken by `poll_zap_request`.
    zap_request: Option<ZapRequest>,
    /// The mechanism waits for `zap_reply`.
    awaiting_zap: bool,
    /// A ZAP handler allowed this peer: its messages carry the user id
    /// (and ZAP's properties) even on NULL, whose messages otherwise
    /// carry none.
    zap_allowed: bool,
}

impl Session {
    /// A new session; its greeting is already queued as output, and the
    /// handshake timer (if any) runs from `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let mut timers = TimerTable::default();
        if let Some(ivl) = config.handshake_ivl.filter(|d| !d.is_zero()) {
            if let Some(at) = now.checked_add(ivl) {
                timers.set(Timer::Handshake, at);
            }
        }
        let mut md = Metadata::new();
        md.push(PROP_SOCKET_TYPE, config.socket_type.as_str());
        if config.socket_type.sends_identity() {
            md.push(PROP_IDENTITY, config.routing_id.clone());
        }
        let mechanism = Mechanism::new(&config.mechanism, md, config.zap.clone());
        let greeting = Greeting::with_mechanism(mechanism.name(), mechanism.as_server());
        let mut out = BytesMut::with_capacity(256);
        out.extend_from_slice(&greeting.to_bytes_for(config.routing_id.len()));
        Session {
            mechanism,
            peer_properties: Metadata::new(),
            message_properties: None,
            early_msgs: Vec::new(),
            decoder: FrameDecoder::new(config.maxmsgsize).with_command_limit(config.command_limit),
            config,
            state: State::Greeting,
            out,
            early: BytesMut::new(),
            chunks: VecDeque::new(),
            msg_ends: VecDeque::new(),
            consumed: 0,
            early_ends: Vec::new(),
            written: 0,
            events: VecDeque::new(),
            partial: Vec::new(),
            wanted: GREETING_LEN,
            timers,
            last_received: now,
            peer_ttl: None,
            input_paused: false,
            zap_request: None,
            awaiting_zap: false,
            zap_allowed: false,
        }
    }

    /// A session whose mechanism draws its ephemeral keys and random
    /// nonces from `seed` instead of the operating system, so that a
    /// CURVE handshake fed the same bytes writes the same bytes: the seam
    /// of the golden-bytes tests, which record a handshake with libzmq
    /// and replay it. Never for a real connection: whoever knows the seed
    /// can read the traffic. No socket option leads here.
    #[doc(hidden)]
    pub fn new_seeded(config: SessionConfig, now: Instant, seed: [u8; 32]) -> Session {
        let mut s = Session::new(config, now);
        s.mechanism.seed_randomness(seed);
        s
    }

    // ----- inputs -----

    /// Feeds bytes received from the peer.
    ///
    /// Consumes every complete item (greeting, frame) from the front of
    /// `input` and leaves a trailing partial item there for the next call;
    /// message bodies are split off `input` without copying. Call it when
    /// new bytes have arrived: any non-empty `input` counts as activity
    /// for [`last_received`](Self::last_received).
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if !input.is_empty() {
            self.last_received = now;
            self.on_activity(now);
        }
        let result = self.process_input(input, now);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Fires expired timers.
    ///
    /// - A handshake still unfinished when `handshake_ivl` expires fails
    ///   the session with [`ProtocolError::HandshakeTimeout`].
    /// - Every `heartbeat_ivl` a PING is queued as output (write it).
    /// - Silence for `heartbeat_timeout` after a PING, or for the TTL the
    ///   peer's PING asked for, fails the session with
    ///   [`ProtocolError::HeartbeatTimeout`].
    ///
    /// When it returns `Ok`, [`poll_timeout`](Self::poll_timeout) is later
    /// than `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        for timer in Timer::VALUES {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            self.timers.stop(timer);
            match timer {
                Timer::Handshake => {
                    if !self.is_ready() {
                        let e = ProtocolError::HandshakeTimeout;
                        self.fail(e.clone());
                        return Err(e);
                    }
                }
                Timer::Heartbeat => self.send_ping(now),
                Timer::HeartbeatTimeout | Timer::Ttl => {
                    let e = ProtocolError::HeartbeatTimeout;
                    self.fail(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// ZAP's answer to the request [`poll_zap_request`](Self::poll_zap_request)
    /// gave: the handshake goes on (WELCOME, READY or the ERROR of a
    /// refusal is queued as output, and `Ready` may follow in
    /// `poll_event`). An answer when none is awaited (it was answered
    /// already) changes nothing; after the session failed (a timeout
    /// meanwhile, say) it returns that failure. A refusal or a failed
    /// answer fails the session, as `handle_input` does.
    pub fn zap_reply(
        &mut self,
        answer: impl Into<ZapAnswer>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if !self.awaiting_zap {
            return Ok(());
        }
        let result = self.answer_zap(answer.into(), now);
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        result
    }

    /// Encodes a message into the output: one frame per message frame,
    /// MORE on all but the last.
    ///
    /// Meant to be called after `Ready`. Messages sent earlier are held
    /// back until the handshake succeeds (so nothing reaches a peer we
    /// then refuse); after a failure they are dropped. A message without
    /// frames encodes to nothing.
    pub fn send_message(&mut self, msg: &Message) {
        match self.state {
            State::Traffic { .. } => {
                match self.subscription_command(msg) {
                    Some(cmd) => self.encode_command(&cmd),
                    None => self.encode_message(msg),
                }
                self.message_queued();
            }
            State::Greeting | State::Handshake { .. } if self.mechanism.encrypts() => {
                self.early_msgs.push(msg.clone());
                self.early_ends.push(0);
            }
            State::Greeting | State::Handshake { .. } => {
                encode_message(&mut self.early, msg);
                self.early_ends.push(self.early.len());
            }
            State::Failed(_) => self.early_ends.push(0),
        }
    }

    /// A subscriber's subscription message (one frame: 1 or 0, then the
    /// prefix) goes to a ZMTP 3.1 peer as a SUBSCRIBE or CANCEL command
    /// (RFC 37); a 3.0 peer gets the message itself.
    fn subscription_command(&self, msg: &Message) -> Option<Command> {
        let State::Traffic { peer_version, .. } = &self.state else {
            return None;
        };
        if !self.config.socket_type.subscribes() || *peer_version < (3, 1) || msg.len() != 1 {
            return None;
        }
        let change = SubscriptionChange::from_message_frame(msg.first()?)?;
        Some(change.to_command())
    }

    /// Appends a message, through the mechanism when it encrypts.
    fn encode_message(&mut self, msg: &Message) {
        if !self.mechanism.encrypts() {
            return encode_message(&mut self.out, msg);
        }
        let frames = msg.frames();
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.iter().enumerate() {
            self.mechanism
                .encode_frame(&mut self.out, f, i != last, false);
        }
    }

    /// Appends a command, through the mechanism when it encrypts (after
    /// a CURVE handshake, PING and SUBSCRIBE travel in MESSAGE boxes too).
    fn encode_command(&mut self, cmd: &Command) {
        if !self.mechanism.encrypts() {
            return cmd.encode(&mut self.out);
        }
        let whole = cmd.to_frame_bytes();
        let header = if whole.first().is_some_and(|&f| f & frame::FLAG_LONG != 0) {
            9
        } else {
            2
        };
        self.mechanism
            .encode_frame(&mut self.out, &whole[header..], false, true);
    }

    /// Records that a message now ends at the end of the output.
    fn message_queued(&mut self) {
        let end = self.consumed + self.output_len() as u64;
        self.msg_ends.push_back(end);
    }

    /// Like [`send_message`](Self::send_message), but frame bodies of at
    /// least `min_body` bytes are queued by reference instead of copied:
    /// the output then has several chunks, for a vectored write (see
    /// [`output_chunks`](Self::output_chunks)). Before the handshake it
    /// copies, as `send_message` does.
    pub fn send_message_zero_copy(&mut self, msg: &Message, min_body: usize) {
        if !matches!(self.state, State::Traffic { .. })
            || self.mechanism.encrypts()
            || self.subscription_command(msg).is_some()
        {
            return self.send_message(msg);
        }
        let frames = msg.frames();
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.iter().enumerate() {
            frame::encode_header(&mut self.out, f.len(), i != last, false);
            if f.len() >= min_body {
                if !self.out.is_empty() {
                    self.chunks.push_back(self.out.split().freeze());
                }
                self.chunks.push_back(f.clone());
            } else {
                self.out.extend_from_slice(f);
            }
        }
        self.message_queued();
    }

    /// Tells the session whether the engine has stopped reading from the
    /// peer (for example at the receive high-water mark).
    ///
    /// While reading is paused, unread bytes may be waiting in the kernel,
    /// so silence proves nothing: the heartbeat timeout and TTL timers are
    /// stopped (PINGs still go out), as libzmq does while its input is
    /// stopped. Resuming counts as activity and restarts the TTL.
    pub fn set_input_paused(&mut self, paused: bool, now: Instant) {
        if self.input_paused == paused {
            return;
        }
        self.input_paused = paused;
        if paused {
            self.timers.stop(Timer::HeartbeatTimeout);
            self.timers.stop(Timer::Ttl);
        } else if self.error().is_none() {
            self.on_activity(now);
        }
    }

    // ----- outputs -----

    /// The next event, in the order they happened.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The authentication request the mechanism waits on, once: take it
    /// to a ZAP handler and hand its answer to
    /// [`zap_reply`](Self::zap_reply). Only when the configuration's
    /// [`ZapContext`] has no handler and is `external`; a handler is asked
    /// at once, inside the input call.
    pub fn poll_zap_request(&mut self) -> Option<ZapRequest> {
        self.zap_request.take()
    }

    /// True when [`poll_event`](Self::poll_event) has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Bytes waiting to be written to the peer: all of them, unless
    /// [`send_message_zero_copy`](Self::send_message_zero_copy) queued
    /// bodies by reference, in which case this is the first chunk.
    pub fn output(&self) -> &[u8] {
        self.chunks.front().map_or(&self.out[..], |c| &c[..])
    }

    /// Every chunk of output, in order, for a vectored write.
    pub fn output_chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.out[..]).filter(|o| !o.is_empty()))
    }

    /// The total bytes waiting to be written.
    pub fn output_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.out.len()
    }

    /// Marks the first `n` bytes of output as written, across chunks.
    /// `n` larger than the output is clamped.
    pub fn consume_output(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                let k = n.min(self.out.len());
                self.out.advance(k);
                self.consumed += k as u64;
                break;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.consumed += k as u64;
            n -= k;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        while self
            .msg_ends
            .front()
            .is_some_and(|&end| end <= self.consumed)
        {
            self.msg_ends.pop_front();
            self.written += 1;
        }
    }

    /// Messages handed to [`send_message`](Self::send_message) (or its
    /// zero-copy twin) whose last byte has not been written yet: a message
    /// partly written counts, since the peer cannot use half of one. What
    /// a closing engine reports as dropped.
    pub fn unsent_messages(&self) -> usize {
        self.msg_ends.len() + self.early_ends.len()
    }

    /// Frees what was received of a message not yet complete: the
    /// connection is closed, and it will never complete.
    pub fn discard_partial(&mut self) {
        self.decoder.discard();
        self.partial = Vec::new();
    }

    /// Body bytes received of the message not yet complete: its frames
    /// decoded so far. With the unparsed input the caller still holds,
    /// what this connection makes us hold for a message still arriving
    /// (the inbound budget, `conn::budget`).
    pub fn partial_message_bytes(&self) -> u64 {
        self.decoder.message_bytes()
    }

    /// Messages wholly written so far (handed to the kernel; whether the
    /// peer read them is not known).
    pub fn messages_written(&self) -> u64 {
        self.written
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called;
    /// `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    // ----- getters -----

    /// True once the handshake completed (and the session has not failed).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Traffic { .. })
    }

    /// The peer's socket type and routing id, once the handshake completed.
    pub fn peer_info(&self) -> Option<&PeerInfo> {
        match &self.state {
            State::Traffic { peer, .. } => Some(peer),
            _ => None,
        }
    }

    /// The peer's metadata once the handshake completed: its READY (or
    /// INITIATE) properties, and `User-Id` when our ZAP handler gave one.
    pub fn peer_properties(&self) -> &Metadata {
        &self.peer_properties
    }

    /// The (major, minor) version from the peer's greeting, once received.
    /// A 3.0 peer does not know PING/PONG.
    pub fn peer_version(&self) -> Option<(u8, u8)> {
        match &self.state {
            State::Handshake { peer_version } | State::Traffic { peer_version, .. } => {
                Some(*peer_version)
            }
            _ => None,
        }
    }

    /// The error that ended the session, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// True while the handshake waits for [`zap_reply`](Self::zap_reply).
    pub fn is_awaiting_zap(&self) -> bool {
        self.awaiting_zap
    }

    /// True when [`output`](Self::output) is not empty.
    pub fn has_output(&self) -> bool {
        !self.chunks.is_empty() || !self.out.is_empty()
    }

    /// How many more bytes the item at the front of the input needs, as of
    /// the last `handle_input`, capped at [`MAX_READ_HINT`]. A hint for
    /// sizing reads: the engine should still read whatever is available.
    pub fn bytes_wanted(&self) -> usize {
        self.wanted.clamp(1, MAX_READ_HINT)
    }

    /// When bytes last arrived from the peer (or when the session was
    /// created).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    // ----- internals -----

    fn fail(&mut self, e: ProtocolError) {
        self.timers.stop_all();
        self.early = BytesMut::new();
        self.early_msgs = Vec::new();
        self.partial = Vec::new();
        self.zap_request = None;
        self.awaiting_zap = false;
        self.state = State::Failed(e);
    }

    /// Bytes arrived from the peer: it is alive.
    fn on_activity(&mut self, now: Instant) {
        self.timers.stop(Timer::HeartbeatTimeout);
        match self.peer_ttl.filter(|_| !self.input_paused) {
            Some(ttl) => self.arm(Timer::Ttl, now, ttl),
            None => self.timers.stop(Timer::Ttl),
        }
    }

    /// Arms `timer` to fire `after` from `now`; a deadline past the end of
    /// `Instant` never fires.
    fn arm(&mut self, timer: Timer, now: Instant, after: Duration) {
        match now.checked_add(after) {
            Some(at) => self.timers.set(timer, at),
            None => self.timers.stop(timer),
        }
    }

    /// The PING interval, when heartbeats are on and the peer knows PING.
    fn heartbeat_ivl(&self, peer_version: (u8, u8)) -> Option<Duration> {
        self.config
            .heartbeat_ivl
            .filter(|d| !d.is_zero() && peer_version >= (3, 1))
    }

    /// Queues a PING, arms the timeout unless one is pending, and
    /// schedules the next PING.
    fn send_ping(&mut self, now: Instant) {
        let State::Traffic { peer_version, .. } = self.state else {
            return;
        };
        let Some(ivl) = self.heartbeat_ivl(peer_version) else {
            return;
        };
        let ttl = self.config.heartbeat_ttl.map_or(0, |t| {
            u16::try_from(t.as_millis() / 100).unwrap_or(u16::MAX)
        });
        self.encode_command(&Command::Ping {
            ttl,
            context: Bytes::new(),
        });
        let timeout = self.config.heartbeat_timeout.unwrap_or(ivl);
        if !timeout.is_zero()
            && !self.input_paused
            && self.timers.get(Timer::HeartbeatTimeout).is_none()
        {
            self.arm(Timer::HeartbeatTimeout, now, timeout);
        }
        self.arm(Timer::Heartbeat, now, ivl);
    }

    fn process_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), ProtocolError> {
        loop {
            if let State::Greeting = self.state {
                let Some(greeting) = Greeting::parse(input)? else {
                    self.wanted = GREETING_LEN.saturating_sub(input.len());
                    return Ok(());
                };
                input.advance(GREETING_LEN);
                self.on_greeting(&greeting, now)?;
                continue;
            }
            let Some(frame) = self.decoder.decode(input)? else {
                self.wanted = self.decoder.wanted();
                return Ok(());
            };
            self.on_frame(frame, now)?;
        }
    }

    fn on_greeting(&mut self, greeting: &Greeting, now: Instant) -> Result<(), ProtocolError> {
        // Like libzmq, all 20 bytes count: "NULL" followed by anything but
        // zeros is another mechanism.
        if greeting.mechanism_name() != self.mechanism.name() {
            return Err(ProtocolError::MechanismMismatch {
                peer: String::from_utf8_lossy(greeting.mechanism_name()).into_owned(),
            });
        }
        self.state = State::Handshake {
            peer_version: (greeting.major, greeting.minor),
        };
        let step = self.mechanism.start(&mut self.out);
        self.on_step(step, now)
    }

    /// Where a step of the mechanism leads. A ZAP request is answered
    /// here at once by the handler, or by nobody, or left to the driver.
    fn on_step(&mut self, step: Step, now: Instant) -> Result<(), ProtocolError> {
        match step {
            Step::Continue => Ok(()),
            Step::Done(md) => match self.state {
                State::Handshake { peer_version } => self.on_ready(md, peer_version, now),
                _ => Err(ProtocolError::MalformedCommand("handshake state")),
            },
            Step::Zap(request) => {
                self.awaiting_zap = true;
                if let Some(handler) = self.config.zap.handler.clone() {
                    let reply = handler.authenticate(&request);
                    self.answer_zap(reply.into(), now)
                } else if self.config.zap.external {
                    self.zap_request = Some(request);
                    Ok(())
                } else {
                    self.answer_zap(ZapAnswer::NoHandler, now)
                }
            }
        }
    }

    /// Hands the awaited ZAP answer to the mechanism.
    fn answer_zap(&mut self, answer: ZapAnswer, now: Instant) -> Result<(), ProtocolError> {
        self.awaiting_zap = false;
        self.zap_request = None;
        self.zap_allowed = matches!(
            answer,
            ZapAnswer::Reply {
                reply: ZapReply::Allow { .. },
                ..
            }
        );
        let step = self.mechanism.on_zap_reply(answer, &mut self.out)?;
        self.on_step(step, now)
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        match self.state {
            State::Handshake { .. } => {
                if !frame.command {
                    return Err(ProtocolError::UnexpectedCommand(
                        "message frame before READY".into(),
                    ));
                }
                let step = self.mechanism.on_command(frame.body, &mut self.out)?;
                self.on_step(step, now)
            }
            State::Traffic { .. } if self.mechanism.encrypts() => {
                let frame = self.mechanism.decode_frame(frame)?;
                self.on_traffic_frame(frame, now)
            }
            State::Traffic { .. } => self.on_traffic_frame(frame, now),
            // Frames are only decoded after the greeting, and a failed
            // session decodes nothing.
            State::Greeting | State::Failed(_) => Ok(()),
        }
    }

    /// One frame after the handshake (opened, if the mechanism encrypts).
    fn on_traffic_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        match frame.command {
            false => {
                if !frame.more && self.partial.is_empty() {
                    // The common single-frame message: no Vec to allocate.
                    let msg = Message::from(frame.body);
                    self.deliver(msg);
                    return Ok(());
                }
                self.partial.push(frame.body);
                if !frame.more {
                    let msg = Message::from(std::mem::take(&mut self.partial));
                    self.deliver(msg);
                }
                Ok(())
            }
            true => match Command::parse(frame.body)? {
                Command::Ping { ttl, context } => {
                    // The latest PING's TTL (deciseconds) replaces any
                    // earlier one; zero withdraws it.
                    self.peer_ttl = (ttl > 0).then(|| Duration::from_millis(u64::from(ttl) * 100));
                    self.on_activity(now);
                    let context = context.slice(..context.len().min(MAX_PING_CONTEXT));
                    self.encode_command(&Command::Pong { context });
                    Ok(())
                }
                // Like any traffic, a PONG already stopped the timeout.
                Command::Pong { .. } => Ok(()),
                Command::Error(reason) => Err(ProtocolError::PeerError(reason)),
                // A second READY means the peer's state machine is broken.
                ready @ Command::Ready(_) => Err(unexpected(&ready)),
                // A publisher takes subscriptions in as messages of the
                // ZMTP 3.0 form, whichever form the peer used, so that the
                // pattern sees one form (as libzmq's XPUB does).
                cmd @ (Command::Subscribe(_) | Command::Cancel(_)) => {
                    match SubscriptionChange::from_command(&cmd) {
                        Some(change) if self.config.socket_type.publishes() => {
                            let msg = Message::from(change.to_message_frame());
                            self.events.push_back(SessionEvent::Message(msg));
                        }
                        _ => log::debug!("ignoring a subscription sent to a non-publisher"),
                    }
                    Ok(())
                }
                Command::Unknown { name, .. } => {
                    log::debug!(
                        "ignoring unknown ZMTP command {:?}",
                        String::from_utf8_lossy(&name)
                    );
                    Ok(())
                }
            },
        }
    }

    /// Hands a received message to the engine, with the connection's
    /// properties when it has them.
    #[inline]
    fn deliver(&mut self, mut msg: Message) {
        if let Some(p) = &self.message_properties {
            msg.set_properties(p.clone());
        }
        self.events.push_back(SessionEvent::Message(msg));
    }

    fn on_ready(
        &mut self,
        md: Metadata,
        peer_version: (u8, u8),
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let ours = self.config.socket_type;
        let Some(name) = md.get(PROP_SOCKET_TYPE) else {
            return Err(ProtocolError::MissingSocketType);
        };
        let socket_type = match SocketType::from_name(name) {
            Some(t) if ours.is_compatible(t) => t,
            _ => {
                self.encode_command(&Command::Error(INVALID_SOCKET_TYPE.into()));
                return Err(ProtocolError::IncompatibleSocketType {
                    ours: ours.as_str(),
                    peer: String::from_utf8_lossy(name).into_owned(),
                });
            }
        };
        let peer = PeerInfo {
            socket_type,
            routing_id: md.get(PROP_IDENTITY).cloned().unwrap_or_default(),
        };
        self.timers.stop(Timer::Handshake);
        if let Some(ivl) = self.heartbeat_ivl(peer_version) {
            self.arm(Timer::Heartbeat, now, ivl);
        }
        if !self.early_msgs.is_empty() {
            self.early_ends.clear();
            for msg in std::mem::take(&mut self.early_msgs) {
                self.encode_message(&msg);
                self.message_queued();
            }
        }
        if !self.early.is_empty() {
            let base = self.consumed + self.output_len() as u64;
            self.out.extend_from_slice(&self.early);
            self.early = BytesMut::new();
            self.msg_ends
                .extend(self.early_ends.drain(..).map(|end| base + end as u64));
        }
        if self.zap_allowed || !matches!(self.config.mechanism, MechanismConfig::Null) {
            self.message_properties =
                Some(md.iter().map(|(n, v)| (n.clone(), v.clone())).collect());
        }
        self.peer_properties = md;
        self.events.push_back(SessionEvent::Ready(peer.clone()));
        self.state = State::Traffic { peer_version, peer };
        Ok(())
    }
}

fn unexpected(cmd: &Command) -> ProtocolError {
    ProtocolError::UnexpectedCommand(String::from_utf8_lossy(cmd.name()).into_owned())
}

/// Appends all frames of `msg`, reserving the whole size once.
fn encode_message(out: &mut BytesMut, msg: &Message) {
    let frames = msg.frames();
    let total: usize = frames
        .iter()
        .map(|f| frame::header_len(f.len()) + f.len())
        .sum();
    out.reserve(total);
    let last = frames.len().saturating_sub(1);
    for (i, f) in frames.iter().enumerate() {
        frame::encode_header(out, f.len(), i != last, false);
        out.extend_from_slice(f);
    }
}

#[cfg(test)]
mod zero_copy_tests {
    use super::*;
    use crate::zmtp::harness::{base, config};

    #[test]
    fn zero_copy_output_equals_copied_output() {
        let mut a = Session::new(config(SocketType::Dealer, b""), base());
        let mut b = Session::new(config(SocketType::Router, b""), base());
        // Handshake both ways.
        for _ in 0..3 {
            let mut ab = BytesMut::from(a.output());
            a.consume_output(ab.len());
            let mut ba = BytesMut::from(b.output());
            b.consume_output(ba.len());
            b.handle_input(&mut ab, base()).expect("b");
            a.handle_input(&mut ba, base()).expect("a");
        }
        assert!(a.is_ready());
        let big = Bytes::from(vec![9u8; 70_000]);
        let msg = Message::from_frames([Bytes::from_static(b"x"), big.clone(), Bytes::new()]);
        let mut copied = BytesMut::new();
        encode_message(&mut copied, &msg);
        let want = copied.to_vec();
        a.send_message_zero_copy(&msg, 1024);
        let got: Vec<u8> = a.output_chunks().flat_map(|c| c.to_vec()).collect();
        assert_eq!(got, want);
        assert_eq!(a.output_len(), want.len());
        // Consuming across chunk boundaries leaves the right tail.
        a.consume_output(10);
        a.consume_output(70_000);
        let rest: Vec<u8> = a.output_chunks().flat_map(|c| c.to_vec()).collect();
        assert_eq!(rest, want[70_010..]);
    }

    /// A message counts as written only once its last byte is consumed,
    /// whichever path encoded it, and messages sent before the handshake
    /// count from the start.
    #[test]
    fn unsent_counts_messages_not_wholly_written() {
        let mut a = Session::new(config(SocketType::Dealer, b""), base());
        let mut b = Session::new(config(SocketType::Router, b""), base());
        a.send_message(&Message::from("early"));
        assert_eq!(a.unsent_messages(), 1);
        for _ in 0..3 {
            let mut ab = BytesMut::from(a.output());
            let n = ab.len();
            // Hold back the early message's bytes at first.
            let keep = if a.is_ready() { n } else { n.min(GREETING_LEN) };
            a.consume_output(keep);
            ab.truncate(keep);
            let mut ba = BytesMut::from(b.output());
            b.consume_output(ba.len());
            b.handle_input(&mut ab, base()).expect("b");
            a.handle_input(&mut ba, base()).expect("a");
        }
        assert!(a.is_ready());
        let out: usize = a.output_chunks().map(<[u8]>::len).sum();
        a.consume_output(out);
        assert_eq!((a.unsent_messages(), a.messages_written()), (0, 1));
        let big = Message::from(vec![1u8; 20_000]);
        a.send_message_zero_copy(&big, 1024);
        a.send_message(&Message::from("small"));
        assert_eq!(a.unsent_messages(), 2);
        a.consume_output(19_000);
        assert_eq!(a.unsent_messages(), 2, "a partly written message is unsent");
        a.consume_output(1_009); // 20,000 bytes and a 9-byte header
        assert_eq!((a.unsent_messages(), a.messages_written()), (1, 2));
        a.consume_output(usize::MAX);
        assert_eq!((a.unsent_messages(), a.messages_written()), (0, 3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::greeting::Greeting;
    use crate::zmtp::harness::base;

    fn config(socket_type: SocketType) -> SessionConfig {
        SessionConfig::new(socket_type)
    }

    fn ready_frame(props: &[(&'static str, &'static [u8])]) -> Vec<u8> {
        let mut md = Metadata::new();
        for &(n, v) in props {
            md.push(n, v);
        }
        Command::Ready(md).to_frame_bytes().to_vec()
    }

    /// A session past its handshake with a peer of `peer` type, its own
    /// greeting and READY already consumed from the output.
    fn ready_session(ours: SocketType, peer: &'static str, cfg: Option<SessionConfig>) -> Session {
        let now = base();
        let mut s = Session::new(cfg.unwrap_or_else(|| config(ours)), now);
        let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
        input.extend_from_slice(&ready_frame(&[(PROP_SOCKET_TYPE, peer.as_bytes())]));
        s.handle_input(&mut input, now).unwrap();
        assert!(input.is_empty());
        assert!(s.is_ready());
        assert!(matches!(s.poll_event(), Some(SessionEvent::Ready(_))));
        let n = s.output().len();
        s.consume_output(n);
        s
    }

    fn feed(s: &mut Session, bytes: &[u8]) -> Result<(), ProtocolError> {
        let mut input = BytesMut::from(bytes);
        s.handle_input(&mut input, base())
    }

    /// A SUB's subscription messages go to a ZMTP 3.1 peer as SUBSCRIBE
    /// and CANCEL commands (golden bytes: RFC 37), other messages as
    /// messages; and a PUB takes either form in as the 3.0 message.
    #[test]
    fn subscriptions_as_commands_to_31_peers_and_messages_in() {
        let mut sub = ready_session(SocketType::Sub, "PUB", None);
        sub.send_message(&Message::from(&b"\x01weather"[..]));
        sub.send_message_zero_copy(&Message::from(&b"\x00"[..]), 1);
        sub.send_message(&Message::from(&b"\x02data"[..]));
        let mut want = b"\x04\x11\x09SUBSCRIBEweather".to_vec();
        want.extend_from_slice(b"\x04\x07\x06CANCEL");
        want.extend_from_slice(b"\x00\x05\x02data");
        assert_eq!(sub.output(), &want[..]);
        assert_eq!(sub.unsent_messages(), 3, "each counts as one message");

        let mut publisher = ready_session(SocketType::XPub, "SUB", None);
        feed(&mut publisher, b"\x04\x0c\x09SUBSCRIBEab").expect("SUBSCRIBE");
        feed(&mut publisher, b"\x04\x09\x06CANCELab").expect("CANCEL");
        feed(&mut publisher, b"\x00\x03\x01cd").expect("3.0 form");
        let got: Vec<Message> = std::iter::from_fn(|| publisher.poll_event())
            .filter_map(|e| match e {
                SessionEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        let want: Vec<Message> = [&b"\x01ab"[..], b"\x00ab", b"\x01cd"]
            .into_iter()
            .map(Message::from)
            .collect();
        assert_eq!(got, want);

        // Not a publisher: ignored, as RFC 37 allows.
        let mut pull = ready_session(SocketType::Pull, "PUSH", None);
        feed(&mut pull, b"\x04\x0c\x09SUBSCRIBEab").expect("ignored");
        assert!(pull.poll_event().is_none());
    }

    #[test]
    fn greeting_is_queued_at_once() {
        let s = Session::new(config(SocketType::Req), base());
        assert_eq!(s.output(), &Greeting::ours().to_bytes()[..]);
        assert!(!s.is_ready());
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.bytes_wanted(), GREETING_LEN);
    }

    #[test]
    fn req_handshake_bytes() {
        let now = base();
        let mut s = Session::new(config(SocketType::Req), now);
        let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
        s.handle_input(&mut input, now).unwrap();
        let mut expected = Greeting::ours().to_bytes().to_vec();
        expected.extend_from_slice(b"\x04\x26\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ");
        expected.extend_from_slice(b"\x08Identity\x00\x00\x00\x00");
        assert_eq!(s.output(), &expected[..]);
        assert!(s.poll_event().is_none());
        let mut input = BytesMut::from(&ready_frame(&[(PROP_SOCKET_TYPE, b"REP")])[..]);
        s.handle_input(&mut input, now).unwrap();
        match s.poll_event() {
            Some(SessionEvent::Ready(p)) => {
                assert_eq!(p.socket_type, SocketType::Rep);
                assert!(p.routing_id.is_empty());
            }
            e => panic!("{e:?}"),
        }
        assert!(s.poll_event().is_none());
        assert_eq!(s.peer_version(), Some((3, 1)));
    }

    #[test]
    fn zmtp_3_0_peer_is_accepted() {
        let mut g = Greeting::ours().to_bytes();
        g[11] = 0;
        let mut s = Session::new(config(SocketType::Router), base());
        feed(&mut s, &g).unwrap();
        feed(
            &mut s,
            &ready_frame(&[(PROP_SOCKET_TYPE, b"DEALER"), (PROP_IDENTITY, b"id-1")]),
        )
        .unwrap();
        assert_eq!(s.peer_version(), Some((3, 0)));
        assert_eq!(
            s.peer_info(),
            Some(&PeerInfo {
                socket_type: SocketType::Dealer,
                routing_id: Bytes::from_static(b"id-1"),
            })
        );
    }

    #[test]
    fn bad_signature_is_detected_early_and_sticks() {
        let mut s = Session::new(config(SocketType::Rep), base());
        assert_eq!(
            feed(&mut s, b"\x00\x00\x00"),
            Err(ProtocolError::BadSignature)
        );
        assert_eq!(feed(&mut s, b""), Err(ProtocolError::BadSignature));
        assert_eq!(s.handle_timeout(base()), Err(ProtocolError::BadSignature));
        assert_eq!(s.error(), Some(&ProtocolError::BadSignature));
        let mut s = Session::new(config(SocketType::Rep), base());
        assert_eq!(
            feed(&mut s, b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x00"),
            Err(ProtocolError::BadSignature)
        );
    }

    #[test]
    fn version_2_is_rejected() {
        let mut g = Greeting::ours().to_bytes();
        g[10] = 2;
        let mut s = Session::new(config(SocketType::Rep), base());
        assert_eq!(
            feed(&mut s, &g[..12]),
            Err(ProtocolError::UnsupportedVersion { major: 2, minor: 1 })
        );
    }

    #[test]
    fn other_mechanism_is_rejected() {
        let mut g = Greeting::ours().to_bytes();
        g[12..17].copy_from_slice(b"PLAIN");
        let mut s = Session::new(config(SocketType::Rep), base());
        assert_eq!(
            feed(&mut s, &g),
            Err(ProtocolError::MechanismMismatch {
                peer: "PLAIN".into()
            })
        );
    }

    #[test]
    fn missing_socket_type() {
        let mut s = Session::new(config(SocketType::Rep), base());
        feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
        assert_eq!(
            feed(&mut s, &ready_frame(&[(PROP_IDENTITY, b"")])),
            Err(ProtocolError::MissingSocketType)
        );
    }

    #[test]
    fn incompatible_or_unknown_type_queues_error() {
        for peer in [&b"REQ"[..], b"PUB", b"rep", b""] {
            let mut s = Session::new(config(SocketType::Req), base());
            feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
            let before = s.output().len();
            let mut md = Metadata::new();
            md.push("socket-type", Bytes::copy_from_slice(peer));
            let r = feed(&mut s, &Command::Ready(md).to_frame_bytes());
            assert_eq!(
                r,
                Err(ProtocolError::IncompatibleSocketType {
                    ours: "REQ",
                    peer: String::from_utf8_lossy(peer).into_owned()
                })
            );
            assert_eq!(
                &s.output()[before..],
                b"\x04\x1a\x05ERROR\x13Invalid socket type"
            );
            assert!(!s.is_ready());
            assert!(s.poll_event().is_none());
        }
    }

    #[test]
    fn peer_error_during_handshake() {
        let mut s = Session::new(config(SocketType::Req), base());
        feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
        assert_eq!(
            feed(&mut s, b"\x04\x0a\x05ERROR\x03bad"),
            Err(ProtocolError::PeerError("bad".into()))
        );
    }

    #[test]
    fn message_or_ping_before_ready_is_unexpected() {
        for bytes in [&b"\x00\x01x"[..], b"\x04\x07\x04PING\x00\x00"] {
            let mut s = Session::new(config(SocketType::Req), base());
            feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
            assert!(matches!(
                feed(&mut s, bytes),
                Err(ProtocolError::UnexpectedCommand(_))
            ));
        }
    }

    #[test]
    fn truncated_ready_is_malformed() {
        let mut s = Session::new(config(SocketType::Req), base());
        feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
        assert!(matches!(
            feed(&mut s, b"\x04\x13\x05READY\x0bSocket-Type\x00"),
            Err(ProtocolError::MalformedCommand(_))
        ));
    }

    #[test]
    fn ping_gets_pong_with_context() {
        let mut s = ready_session(SocketType::Dealer, "ROUTER", None);
        feed(&mut s, b"\x04\x0a\x04PING\x00\x0aabc").unwrap();
        assert_eq!(s.output(), b"\x04\x08\x04PONGabc");
        s.consume_output(100);
        // Over-long contexts are cut to 16 bytes.
        let mut ping = b"\x04\x1b\x04PING\x00\x00".to_vec();
        ping.extend_from_slice(b"0123456789abcdefXXXX");
        feed(&mut s, &ping).unwrap();
        assert_eq!(s.output(), b"\x04\x15\x04PONG0123456789abcdef");
        // PONG and unknown commands are absorbed.
        s.consume_output(100);
        feed(&mut s, b"\x04\x05\x04PONG\x04\x06\x05HELLO").unwrap();
        assert!(s.output().is_empty());
        assert!(s.poll_event().is_none());
        assert!(s.is_ready());
    }

    #[test]
    fn error_and_ready_after_handshake() {
        let mut s = ready_session(SocketType::Push, "PULL", None);
        assert_eq!(
            feed(&mut s, b"\x04\x08\x05ERROR\x01x"),
            Err(ProtocolError::PeerError("x".into()))
        );
        assert!(!s.is_ready());
        let mut s = ready_session(SocketType::Push, "PULL", None);
        assert_eq!(
            feed(&mut s, &ready_frame(&[(PROP_SOCKET_TYPE, b"PULL")])),
            Err(ProtocolError::UnexpectedCommand("READY".into()))
        );
    }

    #[test]
    fn multipart_messages_and_partial_input() {
        let mut s = ready_session(SocketType::Pull, "PUSH", None);
        let mut wire = BytesMut::new();
        let msg = Message::from(vec![
            Bytes::new(),
            Bytes::from(vec![1u8; 300]),
            Bytes::from("x"),
        ]);
        encode_message(&mut wire, &msg);
        let all = wire.clone();
        let mut input = BytesMut::new();
        for (i, &b) in all.iter().enumerate() {
            input.extend_from_slice(&[b]);
            s.handle_input(&mut input, base()).unwrap();
            if i + 1 < all.len() {
                assert!(s.poll_event().is_none(), "message split at {i}");
            }
        }
        assert!(input.is_empty());
        match s.poll_event() {
            Some(SessionEvent::Message(m)) => assert_eq!(m, msg),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn maxmsgsize_refuses_before_buffering() {
        let cfg = SessionConfig {
            maxmsgsize: Some(10),
            ..config(SocketType::Pull)
        };
        let mut s = ready_session(SocketType::Pull, "PUSH", Some(cfg));
        feed(&mut s, b"\x00\x0a0123456789").unwrap();
        assert!(matches!(s.poll_event(), Some(SessionEvent::Message(_))));
        let mut input = BytesMut::from(&b"\x02\x00\x00\x00\x00\x00\x00\x00\x0b"[..]);
        assert_eq!(
            s.handle_input(&mut input, base()),
            Err(ProtocolError::MessageTooLarge {
                size: 11,
                limit: 10
            })
        );
        assert!(!s.is_ready());
    }

    #[test]
    fn huge_header_waits_without_allocating() {
        let mut s = ready_session(SocketType::Pull, "PUSH", None);
        let mut input = BytesMut::with_capacity(9);
        input.extend_from_slice(&[0x02]);
        input.extend_from_slice(&(1u64 << 62).to_be_bytes());
        let cap = input.capacity();
        s.handle_input(&mut input, base()).unwrap();
        // The header is taken; the body will be gathered as it arrives.
        assert_eq!(input.len(), 0);
        assert!(input.capacity() <= cap);
        assert_eq!(s.bytes_wanted(), MAX_READ_HINT);
        assert_eq!(s.partial_message_bytes(), 0);
        assert!(s.poll_event().is_none());
    }

    #[test]
    fn reserved_flags_and_command_with_more_fail_the_session() {
        for bytes in [&b"\x10\x00"[..], b"\x05\x06\x05HELLO"] {
            let mut s = ready_session(SocketType::Pull, "PUSH", None);
            assert!(matches!(
                feed(&mut s, bytes),
                Err(ProtocolError::MalformedFrame(_))
            ));
        }
    }

    #[test]
    fn messages_before_ready_are_held_back() {
        let now = base();
        let mut s = Session::new(config(SocketType::Push), now);
        s.send_message(&Message::from("early"));
        assert_eq!(s.output().len(), GREETING_LEN);
        feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
        assert!(!s.output().ends_with(b"early"));
        feed(&mut s, &ready_frame(&[(PROP_SOCKET_TYPE, b"PULL")])).unwrap();
        assert!(s.output().ends_with(b"\x00\x05early"));
    }

    #[test]
    fn send_encodes_like_libzmq() {
        let mut s = ready_session(SocketType::Dealer, "ROUTER", None);
        s.send_message(&Message::from(vec![
            Bytes::new(),
            Bytes::from("hi"),
            Bytes::from(vec![9u8; 256]),
        ]));
        let out = s.output();
        assert_eq!(&out[..6], b"\x01\x00\x01\x02hi");
        assert_eq!(&out[6..15], b"\x02\x00\x00\x00\x00\x00\x00\x01\x00");
        assert_eq!(out.len(), 15 + 256);
        s.send_message(&Message::new());
        assert_eq!(s.output().len(), 15 + 256);
        s.consume_output(usize::MAX);
        assert!(!s.has_output());
    }

    #[test]
    fn handshake_timeout() {
        let base = base();
        let cfg = SessionConfig {
            handshake_ivl: Some(Duration::from_secs(1)),
            ..config(SocketType::Req)
        };
        let mut s = Session::new(cfg.clone(), base);
        assert_eq!(s.poll_timeout(), Some(base + Duration::from_secs(1)));
        s.handle_timeout(base + Duration::from_millis(999)).unwrap();
        assert_eq!(
            s.handle_timeout(base + Duration::from_secs(1)),
            Err(ProtocolError::HandshakeTimeout)
        );
        assert_eq!(s.poll_timeout(), None);

        // Completing the handshake disarms it.
        let mut s = Session::new(cfg, base);
        let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
        input.extend_from_slice(&ready_frame(&[(PROP_SOCKET_TYPE, b"REP")]));
        s.handle_input(&mut input, base).unwrap();
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(base + Duration::from_secs(5)).unwrap();
        assert!(s.is_ready());
    }

    #[test]
    fn zero_handshake_ivl_means_no_limit() {
        let cfg = SessionConfig {
            handshake_ivl: Some(Duration::ZERO),
            ..config(SocketType::Req)
        };
        assert_eq!(Session::new(cfg, base()).poll_timeout(), None);
    }

    fn heartbeat_cfg(ours: SocketType, ivl_ms: u64, timeout_ms: Option<u64>) -> SessionConfig {
        SessionConfig {
            heartbeat_ivl: Some(Duration::from_millis(ivl_ms)),
            heartbeat_timeout: timeout_ms.map(Duration::from_millis),
            ..config(ours)
        }
    }

    /// Steps simulated time by `step` up to `total` from `start`, firing
    /// due timers and calling `each` after every step; returns the time of
    /// the first failure.
    fn run_timers(
        s: &mut Session,
        start: Instant,
        total: Duration,
        step: Duration,
        mut each: impl FnMut(&mut Session, Instant),
    ) -> Option<(Instant, ProtocolError)> {
        let mut now = start;
        while now - start < total {
            now += step;
            if s.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = s.handle_timeout(now) {
                    return Some((now, e));
                }
                assert!(s.poll_timeout().is_none_or(|t| t > now));
            }
            each(s, now);
        }
        None
    }

    #[test]
    fn chatty_peer_that_never_pongs_stays_alive() {
        // Any bytes count as liveness, not just PONG: a peer that only
        // sends messages (every 80 ms, against a 100 ms ivl and timeout)
        // is never dropped.
        let cfg = heartbeat_cfg(SocketType::Dealer, 100, Some(100));
        let mut s = ready_session(SocketType::Dealer, "ROUTER", Some(cfg));
        let mut pings = 0;
        let mut since_msg = Duration::ZERO;
        let r = run_timers(
            &mut s,
            base(),
            Duration::from_secs(20),
            Duration::from_millis(10),
            |s, now| {
                if s.output() == b"\x04\x07\x04PING\x00\x00" {
                    pings += 1;
                }
                s.consume_output(usize::MAX);
                since_msg += Duration::from_millis(10);
                if since_msg >= Duration::from_millis(80) {
                    since_msg = Duration::ZERO;
                    let mut input = BytesMut::from(&b"\x00\x02hi"[..]);
                    s.handle_input(&mut input, now).unwrap();
                    assert!(matches!(s.poll_event(), Some(SessionEvent::Message(_))));
                }
            },
        );
        assert_eq!(r, None);
        assert_eq!(pings, 200);
        // The same peer going quiet is dropped after ivl + timeout at most.
        let r = run_timers(
            &mut s,
            base() + Duration::from_secs(20),
            Duration::from_secs(5),
            Duration::from_millis(10),
            |s, _| s.consume_output(usize::MAX),
        );
        let (at, e) = r.unwrap();
        assert_eq!(e, ProtocolError::HeartbeatTimeout);
        assert!(at - (base() + Duration::from_secs(20)) <= Duration::from_millis(200));
        assert_eq!(s.error(), Some(&ProtocolError::HeartbeatTimeout));
    }

    #[test]
    fn zmtp_3_0_peer_gets_no_ping() {
        let mut g = Greeting::ours().to_bytes();
        g[11] = 0;
        let mut s = Session::new(heartbeat_cfg(SocketType::Router, 100, None), base());
        feed(&mut s, &g).unwrap();
        feed(&mut s, &ready_frame(&[(PROP_SOCKET_TYPE, b"DEALER")])).unwrap();
        assert!(s.is_ready());
        s.consume_output(usize::MAX);
        assert_eq!(s.poll_timeout(), None);
        let r = run_timers(
            &mut s,
            base(),
            Duration::from_secs(10),
            Duration::from_millis(50),
            |s, _| assert!(s.output().is_empty()),
        );
        assert_eq!(r, None);
        // A 3.1 (or later) peer does get them.
        for minor in [1, 2] {
            g[11] = minor;
            let mut s = Session::new(heartbeat_cfg(SocketType::Router, 100, None), base());
            feed(&mut s, &g).unwrap();
            feed(&mut s, &ready_frame(&[(PROP_SOCKET_TYPE, b"DEALER")])).unwrap();
            assert_eq!(s.poll_timeout(), Some(base() + Duration::from_millis(100)));
        }
    }

    #[test]
    fn no_heartbeats_before_the_handshake_or_when_disabled() {
        let mut s = Session::new(heartbeat_cfg(SocketType::Req, 100, None), base());
        feed(&mut s, &Greeting::ours().to_bytes()).unwrap();
        assert_eq!(s.poll_timeout(), None);
        let mut s = ready_session(
            SocketType::Req,
            "REP",
            Some(heartbeat_cfg(SocketType::Req, 0, None)),
        );
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(base() + Duration::from_secs(100)).unwrap();
        assert!(s.output().is_empty());
    }

    #[test]
    fn peer_ttl_arms_refreshes_and_withdraws() {
        let t0 = base();
        let mut s = ready_session(SocketType::Dealer, "ROUTER", None);
        // TTL 1.5 s (15 deciseconds).
        feed(&mut s, b"\x04\x07\x04PING\x00\x0f").unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
        // Any bytes push it back.
        let t1 = t0 + Duration::from_secs(1);
        s.handle_input(&mut BytesMut::from(&b"\x00\x01x"[..]), t1)
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_millis(1500)));
        s.handle_timeout(t1 + Duration::from_millis(1499)).unwrap();
        // A PING with TTL 0 withdraws it.
        s.handle_input(&mut BytesMut::from(&b"\x04\x07\x04PING\x00\x00"[..]), t1)
            .unwrap();
        assert_eq!(s.poll_timeout(), None);
        // A new TTL, then silence: HeartbeatTimeout.
        s.handle_input(&mut BytesMut::from(&b"\x04\x07\x04PING\x00\x01"[..]), t1)
            .unwrap();
        assert_eq!(
            s.handle_timeout(t1 + Duration::from_millis(100)),
            Err(ProtocolError::HeartbeatTimeout)
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn ttl_is_sent_in_whole_deciseconds() {
        for (ttl, wire) in [
            (None, 0u16),
            (Some(Duration::from_millis(99)), 0),
            (Some(Duration::from_millis(100)), 1),
            (Some(Duration::from_millis(1999)), 19),
            (Some(Duration::from_secs(6553)), 65530),
            (Some(Duration::from_secs(100_000)), u16::MAX),
        ] {
            let cfg = SessionConfig {
                heartbeat_ttl: ttl,
                ..heartbeat_cfg(SocketType::Dealer, 10, None)
            };
            let mut s = ready_session(SocketType::Dealer, "ROUTER", Some(cfg));
            s.handle_timeout(base() + Duration::from_millis(10))
                .unwrap();
            let mut expected = b"\x04\x07\x04PING".to_vec();
            expected.extend_from_slice(&wire.to_be_bytes());
            assert_eq!(s.output(), &expected[..], "{ttl:?}");
        }
    }

    #[test]
    fn late_timer_call_leaves_no_deadline_in_the_past() {
        let cfg = heartbeat_cfg(SocketType::Dealer, 100, Some(10_000));
        let mut s = ready_session(SocketType::Dealer, "ROUTER", Some(cfg));
        // Called a whole second late (a busy I/O thread): one PING, and
        // the next one an ivl from now, not a burst of catch-up PINGs.
        let late = base() + Duration::from_secs(1);
        s.handle_timeout(late).unwrap();
        assert_eq!(s.output(), b"\x04\x07\x04PING\x00\x00");
        assert_eq!(s.poll_timeout(), Some(late + Duration::from_millis(100)));
    }

    #[test]
    fn paused_input_suspends_liveness_checks() {
        let cfg = heartbeat_cfg(SocketType::Dealer, 100, Some(100));
        let mut s = ready_session(SocketType::Dealer, "ROUTER", Some(cfg));
        feed(&mut s, b"\x04\x07\x04PING\x00\x01").unwrap();
        s.set_input_paused(true, base());
        // PINGs still go out; neither the timeout nor the TTL fires.
        let r = run_timers(
            &mut s,
            base(),
            Duration::from_secs(5),
            Duration::from_millis(10),
            |s, _| s.consume_output(usize::MAX),
        );
        assert_eq!(r, None);
        // Resuming restarts both.
        let t = base() + Duration::from_secs(5);
        s.set_input_paused(false, t);
        assert_eq!(s.poll_timeout(), Some(t + Duration::from_millis(100)));
        assert_eq!(
            s.handle_timeout(t + Duration::from_millis(100)),
            Err(ProtocolError::HeartbeatTimeout)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Small fuzz over random inputs after a valid greeting and READY.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..2000 {
            let mut s = if round % 2 == 0 {
                ready_session(SocketType::Dealer, "ROUTER", None)
            } else {
                Session::new(config(SocketType::Dealer), base())
            };
            let mut input = BytesMut::new();
            if round % 4 == 1 {
                input.extend_from_slice(&Greeting::ours().to_bytes());
            }
            for _ in 0..(round % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias towards small sizes and valid flags.
                let b = (x >> 24) as u8;
                input.extend_from_slice(&[if x & 3 == 0 { b & 0x07 } else { b }]);
            }
            let _ = s.handle_input(&mut input, base());
            let _ = s.handle_timeout(base());
            while s.poll_event().is_some() {}
        }
    }
}
