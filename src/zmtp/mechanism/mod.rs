//! Security mechanisms (RFC 23's framework): NULL, PLAIN (RFC 24) and
//! CURVE (RFC 25/26), with ZAP (RFC 27).
//!
//! A mechanism is a sans-IO state machine. The session hands it each
//! command frame of the handshake (`Mechanism::on_command`); it appends
//! the commands to send to the session's output and answers with a
//! `Step`: go on, wait for ZAP's answer to a request, or done with the
//! peer's metadata. ZAP is always asynchronous here: a server mechanism
//! that needs a verdict returns `Step::Zap` and goes on only when the
//! session hands it the answer (`Mechanism::on_zap_reply`). Who answers
//! (a Rust handler at once, a handler bound on `inproc://zeromq.zap.01`
//! later, or nobody) is the session's and the I/O thread's business. After the
//! handshake, an encrypting mechanism (CURVE) turns every outgoing frame,
//! commands included, into a MESSAGE box (`Mechanism::encode_frame`)
//! and every incoming one back (`Mechanism::decode_frame`). The session
//! does not know which mechanism it runs; it only asks for the name and
//! role that go into the greeting.
//!
//! Mechanisms read no clock and do no I/O; CURVE draws its ephemeral keys
//! and nonces from the operating system's generator (`getrandom`), which
//! is the one outside input they take besides the bytes. Golden-bytes
//! tests replace it with a seeded one (`Mechanism::seed_randomness`).

mod curve;
pub mod keys;
mod null;
mod plain;
pub mod z85;

use crate::error::ProtocolError;
use bytes::{Bytes, BytesMut};
pub use keys::{CurveKeyPair, CurvePublicKey, CurveSecretKey, KeyError, SecretBytes};
use std::fmt;
use std::sync::Arc;

use super::command::{Command, Metadata};

/// Name of the property that carries the user id a ZAP handler gave.
pub const PROP_USER_ID: &str = "User-Id";

/// Which mechanism a connection uses, in which role, with which secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MechanismConfig {
    /// No security (the default).
    #[default]
    Null,
    /// PLAIN client: sends a username and password, in clear.
    PlainClient {
        /// The username.
        username: Bytes,
        /// The password.
        password: SecretBytes,
    },
    /// PLAIN server: asks the ZAP handler about each client.
    PlainServer,
    /// CURVE client: knows the server's public key.
    CurveClient {
        /// Our long-term key pair.
        keys: CurveKeyPair,
        /// The server's long-term public key.
        server_key: CurvePublicKey,
    },
    /// CURVE server.
    CurveServer {
        /// Our long-term key pair.
        keys: CurveKeyPair,
    },
}

impl MechanismConfig {
    /// The mechanism's name as in the greeting.
    pub fn name(&self) -> &'static str {
        match self {
            MechanismConfig::Null => "NULL",
            MechanismConfig::PlainClient { .. } | MechanismConfig::PlainServer => "PLAIN",
            MechanismConfig::CurveClient { .. } | MechanismConfig::CurveServer { .. } => "CURVE",
        }
    }
}

/// What a client proved about itself, as the ZAP handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// NULL: nothing.
    Null,
    /// PLAIN: the username and password the client sent.
    Plain {
        /// The username.
        username: Bytes,
        /// The password (redacted by `Debug`).
        password: SecretBytes,
    },
    /// CURVE: the client's long-term public key, which the handshake
    /// proved it holds the secret of.
    Curve {
        /// The client's public key.
        public_key: CurvePublicKey,
    },
}

/// One authentication request (RFC 27's fields, typed).
#[derive(Clone, Debug)]
pub struct ZapRequest {
    /// The server socket's `zap_domain`.
    pub domain: String,
    /// The client's address (for TCP, `ip:port`).
    pub address: String,
    /// The server socket's routing id (RFC 27's "identity").
    pub routing_id: Bytes,
    /// "NULL", "PLAIN" or "CURVE".
    pub mechanism: &'static str,
    /// What the client presented.
    pub credentials: Credentials,
}

/// A ZAP handler's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZapReply {
    /// Status 200: let the client in; `user_id` is attached to the
    /// connection as the `User-Id` property (it may be empty).
    Allow {
        /// The authenticated user.
        user_id: Bytes,
    },
    /// Refuse the client: status 300 (temporary error), 400
    /// (authentication failure) or 500 (internal error), sent to the
    /// client in an ERROR command, with a text for our logs.
    Deny {
        /// The ZAP status code.
        status: u16,
        /// Why, for logs (not sent).
        text: String,
    },
}

impl ZapReply {
    /// Allow, with this user id.
    pub fn allow(user_id: impl Into<Bytes>) -> ZapReply {
        ZapReply::Allow {
            user_id: user_id.into(),
        }
    }

    /// Deny with status 400.
    pub fn deny(text: impl Into<String>) -> ZapReply {
        ZapReply::Deny {
            status: 400,
            text: text.into(),
        }
    }
}

/// Decides who may connect (RFC 27, as a Rust callback). Called on the
/// I/O thread once per handshake of a PLAIN or CURVE server socket (and
/// of a NULL socket with a `zap_domain`), so it must answer quickly: it
/// holds up the context's other connections while it runs. A handler
/// that needs time (a database, another service) is better served as a
/// socket bound on `inproc://zeromq.zap.01`, which the handshake waits
/// for without holding anyone up.
pub trait ZapHandler: Send + Sync + 'static {
    /// Answers one request.
    fn authenticate(&self, request: &ZapRequest) -> ZapReply;
}

impl<F> ZapHandler for F
where
    F: Fn(&ZapRequest) -> ZapReply + Send + Sync + 'static,
{
    fn authenticate(&self, request: &ZapRequest) -> ZapReply {
        self(request)
    }
}

/// What a server-side mechanism needs to ask ZAP, and who answers: the
/// context's Rust handler if it has one, else (when `external`) whoever
/// drives the session, through [`Session::poll_zap_request`] and
/// [`Session::zap_reply`]; with neither, every client is accepted, as by
/// libzmq without a ZAP handler.
///
/// [`Session::poll_zap_request`]: crate::zmtp::Session::poll_zap_request
/// [`Session::zap_reply`]: crate::zmtp::Session::zap_reply
#[derive(Clone, Default)]
pub struct ZapContext {
    /// The context's handler, answered by the session at once.
    pub handler: Option<Arc<dyn ZapHandler>>,
    /// Without a handler: leave each request to the session's driver
    /// (the I/O thread serves `inproc://zeromq.zap.01` with it) instead
    /// of accepting at once.
    pub external: bool,
    /// The socket's `zap_domain`.
    pub domain: String,
    /// The peer's address.
    pub address: String,
    /// The socket's routing id.
    pub routing_id: Bytes,
}

impl fmt::Debug for ZapContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZapContext")
            .field("handler", &self.handler.as_ref().map(|_| "<fn>"))
            .field("external", &self.external)
            .field("domain", &self.domain)
            .field("address", &self.address)
            .finish()
    }
}

impl ZapContext {
    /// The request a mechanism hands the session.
    fn request(&self, mechanism: &'static str, credentials: Credentials) -> ZapRequest {
        ZapRequest {
            domain: self.domain.clone(),
            address: self.address.clone(),
            routing_id: self.routing_id.clone(),
            mechanism,
            credentials,
        }
    }
}

/// What became of a ZAP request, as the session hands it to the
/// mechanism that asked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ZapAnswer {
    /// Nobody serves ZAP: the client is accepted, with no `User-Id`, as
    /// by libzmq without a handler.
    NoHandler,
    /// A handler's verdict, with the properties (RFC 27's metadata frame)
    /// it attaches to the peer's messages besides `User-Id`.
    Reply {
        /// Allow or deny.
        reply: ZapReply,
        /// Extra properties for the peer.
        metadata: Metadata,
    },
    /// The handler could not be asked, or answered nonsense: the
    /// handshake fails with this reason (no ERROR is sent).
    Failed(ProtocolError),
}

impl From<ZapReply> for ZapAnswer {
    fn from(reply: ZapReply) -> ZapAnswer {
        ZapAnswer::Reply {
            reply,
            metadata: Metadata::new(),
        }
    }
}

/// What a ZAP answer means for the handshake: the properties it adds to
/// the peer's metadata (`User-Id` last), or the failure. The caller
/// queues the ERROR its mechanism sends for a refusal.
///
/// The user id is the reply's own: a `User-Id` in the reply's metadata
/// frame is dropped, as libzmq keeps the user id frame's over it.
fn zap_outcome(answer: ZapAnswer) -> Result<Metadata, ProtocolError> {
    match answer {
        ZapAnswer::NoHandler => Ok(Metadata::new()),
        ZapAnswer::Reply {
            reply: ZapReply::Allow { user_id },
            mut metadata,
        } => {
            metadata.remove(PROP_USER_ID);
            metadata.push(PROP_USER_ID, user_id);
            Ok(metadata)
        }
        ZapAnswer::Reply {
            reply: ZapReply::Deny { status, text },
            ..
        } => Err(ProtocolError::AuthFailed { status, text }),
        ZapAnswer::Failed(e) => Err(e),
    }
}

/// Adds ZAP's properties to the peer's. When ZAP names the user, a
/// `User-Id` the peer put in its own handshake properties is dropped:
/// the client must not choose the name it is known by.
fn merge(md: &mut Metadata, zap: Metadata) {
    if zap.get(PROP_USER_ID).is_some() {
        md.remove(PROP_USER_ID);
    }
    for (name, value) in zap.iter() {
        md.push(name.clone(), value.clone());
    }
}

/// What a handshake command led to.
#[derive(Debug)]
pub(crate) enum Step {
    /// Waiting for the peer's next command.
    Continue,
    /// Waiting for ZAP's answer to this request, which the session hands
    /// back through [`Mechanism::on_zap_reply`]. Commands the peer sends
    /// meanwhile are fed as usual: the mechanism refuses those its RFC
    /// does not allow there.
    Zap(ZapRequest),
    /// The handshake is over: the peer's metadata (with `User-Id` when
    /// ZAP gave one).
    Done(Metadata),
}

/// One connection's mechanism.
#[derive(Debug)]
pub(crate) enum Mechanism {
    Null(null::Null),
    Plain(plain::Plain),
    Curve(Box<curve::Curve>),
}

impl Mechanism {
    /// A mechanism for `config`; `ours` is the metadata we send (socket
    /// type, identity).
    pub(crate) fn new(config: &MechanismConfig, ours: Metadata, zap: ZapContext) -> Mechanism {
        match config {
            MechanismConfig::Null => Mechanism::Null(null::Null::new(ours, zap)),
            MechanismConfig::PlainClient { username, password } => Mechanism::Plain(
                plain::Plain::client(ours, username.clone(), password.clone()),
            ),
            MechanismConfig::PlainServer => Mechanism::Plain(plain::Plain::server(ours, zap)),
            MechanismConfig::CurveClient { keys, server_key } => {
                Mechanism::Curve(Box::new(curve::Curve::client(ours, keys, *server_key)))
            }
            MechanismConfig::CurveServer { keys } => {
                Mechanism::Curve(Box::new(curve::Curve::server(ours, keys, zap)))
            }
        }
    }

    /// The name in our greeting.
    pub(crate) fn name(&self) -> &'static [u8] {
        match self {
            Mechanism::Null(_) => b"NULL",
            Mechanism::Plain(_) => b"PLAIN",
            Mechanism::Curve(_) => b"CURVE",
        }
    }

    /// The as-server flag of our greeting.
    pub(crate) fn as_server(&self) -> bool {
        match self {
            Mechanism::Null(_) => false,
            Mechanism::Plain(p) => p.is_server(),
            Mechanism::Curve(c) => c.is_server(),
        }
    }

    /// The greetings are exchanged: queue our first command, if we speak
    /// first.
    pub(crate) fn start(&mut self, out: &mut BytesMut) -> Step {
        match self {
            Mechanism::Null(m) => return m.start(out),
            Mechanism::Plain(m) => m.start(out),
            Mechanism::Curve(m) => m.start(out),
        }
        Step::Continue
    }

    /// One handshake command from the peer.
    pub(crate) fn on_command(
        &mut self,
        body: Bytes,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match self {
            Mechanism::Null(m) => m.on_command(body),
            Mechanism::Plain(m) => m.on_command(body, out),
            Mechanism::Curve(m) => m.on_command(body, out),
        }
    }

    /// Golden-bytes tests only: ephemeral keys and random nonces from
    /// `seed` (see `Session::new_seeded`). Mechanisms without randomness
    /// ignore it.
    pub(crate) fn seed_randomness(&mut self, seed: [u8; 32]) {
        if let Mechanism::Curve(m) = self {
            m.seed_randomness(seed);
        }
    }

    /// ZAP's answer to the request of the last [`Step::Zap`]. The session
    /// calls it once per such step, never otherwise.
    pub(crate) fn on_zap_reply(
        &mut self,
        answer: ZapAnswer,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match self {
            Mechanism::Null(m) => m.on_zap_reply(answer, out),
            Mechanism::Plain(m) => m.on_zap_reply(answer, out),
            Mechanism::Curve(m) => m.on_zap_reply(answer, out),
        }
    }

    /// True when frames after the handshake travel in MESSAGE boxes.
    #[inline]
    pub(crate) fn encrypts(&self) -> bool {
        matches!(self, Mechanism::Curve(_))
    }

    /// Appends one frame (a message frame, or a command when `command`),
    /// boxed when the mechanism encrypts.
    pub(crate) fn encode_frame(
        &mut self,
        out: &mut BytesMut,
        body: &[u8],
        more: bool,
        command: bool,
    ) {
        match self {
            Mechanism::Curve(m) => m.encode_frame(out, body, more, command),
            Mechanism::Null(_) | Mechanism::Plain(_) => {
                super::frame::encode_header(out, body.len(), more, command);
                out.extend_from_slice(body);
            }
        }
    }

    /// Opens one received frame: its body, MORE and COMMAND flags.
    pub(crate) fn decode_frame(
        &mut self,
        frame: super::frame::Frame,
    ) -> Result<super::frame::Frame, ProtocolError> {
        match self {
            Mechanism::Curve(m) => m.decode_frame(frame),
            Mechanism::Null(_) | Mechanism::Plain(_) => Ok(frame),
        }
    }
}

/// The failure an ERROR command during a handshake means. libzmq puts a
/// ZAP status code ("400") there when authentication failed, which we
/// tell apart from any other reason.
pub(crate) fn peer_error(reason: String) -> ProtocolError {
    let b = reason.as_bytes();
    if b.len() == 3 && (b'3'..=b'5').contains(&b[0]) && b.iter().all(u8::is_ascii_digit) {
        let status = b.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        return ProtocolError::AuthFailed {
            status,
            text: String::new(),
        };
    }
    ProtocolError::PeerError(reason)
}

/// libzmq's PLAIN (4.3.x) writes its ERROR command name as the C string
/// `"\x05ERROR"`, in which the hex escape swallows the `E`: on the wire
/// the body is `^RROR`, 3 and the status code, and its PLAIN client
/// recognises only that form. Taken as the refusal it means, and nothing
/// looser.
pub(crate) const LIBZMQ_PLAIN_ERROR: &[u8] = b"^RROR";

fn mangled_zap_error(body: &[u8]) -> Option<ProtocolError> {
    match body.strip_prefix(LIBZMQ_PLAIN_ERROR)? {
        [3, code @ ..] if code.len() == 3 => {
            Some(peer_error(String::from_utf8_lossy(code).into_owned()))
        }
        _ => None,
    }
}

/// Queues the ERROR a refused client gets: the ZAP status code as text,
/// as libzmq sends it.
pub(crate) fn send_refusal(out: &mut BytesMut, e: &ProtocolError) {
    if let ProtocolError::AuthFailed { status, .. } = e {
        Command::Error(status.to_string()).encode(out);
    }
}

/// PLAIN's refusal in libzmq's form (see [`LIBZMQ_PLAIN_ERROR`]), so that
/// libzmq clients report it as an authentication failure; we read both.
pub(crate) fn send_plain_refusal(out: &mut BytesMut, e: &ProtocolError) {
    if let ProtocolError::AuthFailed { status, .. } = e {
        let code = status.to_string();
        let code = &code.as_bytes()[..code.len().min(3)];
        let len = LIBZMQ_PLAIN_ERROR.len() + 1 + code.len();
        super::frame::encode_header(out, len, false, true);
        out.extend_from_slice(LIBZMQ_PLAIN_ERROR);
        out.extend_from_slice(&[code.len() as u8]);
        out.extend_from_slice(code);
    }
}

/// A handshake command's name and the data after it; `None` when the
/// body is too short for its name.
pub(crate) fn split_command(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = body.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// An ERROR command during a handshake, as a failure; any other command
/// that is not `expected` is a protocol error.
pub(crate) fn unexpected_command(body: &Bytes) -> ProtocolError {
    if let Some(e) = mangled_zap_error(body) {
        return e;
    }
    match Command::parse(body.clone()) {
        Ok(Command::Error(reason)) => peer_error(reason),
        Ok(cmd) => {
            ProtocolError::UnexpectedCommand(String::from_utf8_lossy(cmd.name()).into_owned())
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests;
