//! STUB — being implemented. API contract only.
use crate::error::ProtocolError;
use crate::message::Message;
use crate::pattern::PeerInfo;
use crate::socket_type::SocketType;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// Configuration of one connection's protocol state machine.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our socket type, sent in READY and checked against the peer's.
    pub socket_type: SocketType,
    /// Our routing id, sent as the `Identity` property by REQ, DEALER, ROUTER.
    pub routing_id: Bytes,
    /// Drop the peer if the handshake has not completed within this time.
    pub handshake_ivl: Option<Duration>,
    /// Largest accepted frame or message, in bytes; `None` is unlimited.
    pub maxmsgsize: Option<u64>,
}

/// What a session reports to its engine.
#[derive(Debug)]
pub enum SessionEvent {
    /// The handshake completed.
    Ready(PeerInfo),
    /// A whole message arrived.
    Message(Message),
}

/// One connection's ZMTP state machine.
#[derive(Debug)]
pub struct Session {
    _p: (),
}

impl Session {
    /// A new session; its greeting is already queued as output.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let _ = (config, now);
        todo!()
    }
    /// Feeds received bytes.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), ProtocolError> {
        let _ = (input, now);
        todo!()
    }
    /// Next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        todo!()
    }
    /// Encodes a message.
    pub fn send_message(&mut self, msg: &Message) {
        let _ = msg;
        todo!()
    }
    /// Pending output.
    pub fn output(&self) -> &[u8] {
        todo!()
    }
    /// Marks output written.
    pub fn consume_output(&mut self, n: usize) {
        let _ = n;
        todo!()
    }
    /// Timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    /// Timer fired.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        let _ = now;
        todo!()
    }
    /// Handshake done.
    pub fn is_ready(&self) -> bool {
        todo!()
    }
}
