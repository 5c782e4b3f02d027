//! Socket options, with libzmq's names and defaults.
//!
//! Every `Socket::set_*` returns a `Result`, and no option is ever
//! silently ignored. Each belongs to one of three classes:
//!
//! 1. **Applies at once**, to everything, existing connections included:
//!    `sndhwm` and `rcvhwm` (existing pipes take the new HWM, as in libzmq
//!    4.2 and later), `sndtimeo`, `rcvtimeo`, `linger`, `router_mandatory`,
//!    `inbound_budget`, `conflate`, `immediate`, the `req_*` and `xpub_*`
//!    options, and subscriptions.
//! 2. **Set before the first bind or connect**: the options that shape a
//!    connection as it is made: `routing_id`, `reconnect_ivl`,
//!    `reconnect_ivl_max`, `reconnect_stop`, `connect_timeout`,
//!    `handshake_ivl`, the `heartbeat_*` and `tcp_keepalive*` options,
//!    `maxmsgsize`, `subscription_limit`, `backlog`, and the security
//!    options (`plain_*`, `curve_*`, `zap_domain`). libzmq reads them when
//!    a connection starts, so that a change after `connect` applies to
//!    some connections and not others, without a word. Here, once the
//!    socket has had a `bind` or `connect` (even one that failed after
//!    reading the options, such as a bind to an address in use), setting
//!    one fails with [`Error::OptionAfterConnect`] and leaves the value
//!    unchanged. A `bind` or `connect` refused before it reads the options
//!    (an endpoint that does not parse, a CURVE socket without its secret
//!    key) does not count.
//! 3. **Validation**: a value out of range, or an option that means
//!    nothing to the socket's type, fails with [`Error::InvalidOption`]
//!    and changes nothing, as libzmq's `EINVAL` does: `req_*` only on
//!    REQ, `router_mandatory` only on ROUTER, `xpub_*` only on XPUB,
//!    `subscription_limit` only on PUB and XPUB, `conflate` only on SUB,
//!    XSUB, PULL and DEALER. Where `None` says "none" (no heartbeat, no
//!    reconnecting, no limit), a zero that would mean the same or nothing
//!    useful is refused, and the error points to `None`. A closed socket
//!    refuses every setter with [`Error::SocketClosed`].
//!
//! Each setter's documentation names its class and its valid values.

use crate::error::{Error, Result};
use crate::zmtp::mechanism::{
    CurveKeyPair, CurvePublicKey, CurveSecretKey, MechanismConfig, SecretBytes,
};
use bytes::Bytes;
use std::time::Duration;

/// The default `linger`. libzmq's is infinite, which makes a context hang
/// on exit when a message has no one to go to; ours gives pending messages
/// this long and then drops them (see README, "Differences from libzmq").
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1000);

/// The default `subscription_limit`: room for about 10,000 subscriptions
/// of 40 bytes per subscriber, and a bound on what each stranger can make
/// a publisher keep (libzmq has none).
pub const DEFAULT_SUBSCRIPTION_LIMIT: u64 = 1024 * 1024;

/// The default `inbound_budget`: what one socket may hold of messages
/// still arriving, summed over its connections (and, separately, of
/// messages waiting to be read). A 256 MiB message passes with a quarter
/// to spare for other peers' messages in flight; any number of peers
/// announcing huge messages cost at most this, plus the copy of the
/// largest one's buffer as it grows (see ARCHITECTURE.md, "Invariants").
pub const DEFAULT_INBOUND_BUDGET: u64 = 320 * 1024 * 1024;

/// All options of one socket.
#[derive(Clone, Debug)]
pub struct Options {
    /// Outbound HWM per pipe, in messages; 0 is unlimited. libzmq: 1000.
    pub sndhwm: usize,
    /// Inbound HWM per pipe, in messages; 0 is unlimited. libzmq: 1000.
    pub rcvhwm: usize,
    /// How long pending messages may keep a closed socket's connections
    /// alive. `None` waits forever (libzmq's -1).
    pub linger: Option<Duration>,
    /// Timeout of a blocking send; `None` blocks forever (libzmq's -1).
    pub sndtimeo: Option<Duration>,
    /// Timeout of a blocking recv; `None` blocks forever.
    pub rcvtimeo: Option<Duration>,
    /// Our identity, sent to peers in READY (REQ, DEALER, ROUTER).
    pub routing_id: Bytes,
    /// First reconnect interval; `None` disables reconnection (libzmq -1).
    pub reconnect_ivl: Option<Duration>,
    /// Cap of the exponential backoff; zero keeps `reconnect_ivl` constant.
    pub reconnect_ivl_max: Duration,
    /// Limit of one TCP connect attempt; zero leaves it to the OS.
    pub connect_timeout: Duration,
    /// Limit of the ZMTP handshake; zero disables it. libzmq: 30 s.
    pub handshake_ivl: Duration,
    /// `SO_KEEPALIVE`: `None` leaves the OS default (libzmq -1).
    pub tcp_keepalive: Option<bool>,
    /// Largest accepted inbound message; `None` is unlimited (libzmq -1).
    pub maxmsgsize: Option<u64>,
    /// ROUTER: fail unroutable sends instead of dropping them.
    pub router_mandatory: bool,
    /// Listen backlog for `bind`.
    pub backlog: i32,
    /// When the connecter gives up instead of retrying (libzmq 4.3.5's
    /// `ZMQ_RECONNECT_STOP`).
    pub reconnect_stop: ReconnectStop,
    /// REQ: allow a new request without waiting for the reply.
    pub req_relaxed: bool,
    /// REQ: tag requests with an id and discard replies to old ones.
    pub req_correlate: bool,
    /// REQ: resend the outstanding request after its connection is lost,
    /// instead of failing `recv` with `Error::PeerLost`.
    pub req_resend: bool,
    /// REQ, DEALER, PUSH: queue messages only to peers whose handshake has
    /// completed (`ZMQ_IMMEDIATE`).
    pub immediate: bool,
    /// PUB, XPUB: what one subscriber's subscriptions may cost (their
    /// bytes plus a fixed overhead each) before it is disconnected;
    /// `None` is unlimited. Not in libzmq.
    pub subscription_limit: Option<u64>,
    /// Keep only the newest inbound message of each peer (`ZMQ_CONFLATE`).
    pub conflate: bool,
    /// XPUB: pass duplicate subscriptions up (`ZMQ_XPUB_VERBOSE`).
    pub xpub_verbose: bool,
    /// XPUB: pass every unsubscription up too (`ZMQ_XPUB_VERBOSER`).
    pub xpub_verboser: bool,
    /// XPUB: the application decides subscriptions (`ZMQ_XPUB_MANUAL`).
    pub xpub_manual: bool,
    /// XPUB: block at a subscriber's HWM instead of dropping
    /// (`ZMQ_XPUB_NODROP`).
    pub xpub_nodrop: bool,
    /// XPUB: sent to each new subscriber first (`ZMQ_XPUB_WELCOME_MSG`).
    pub xpub_welcome_msg: Option<Bytes>,
    /// Bytes the socket may hold of messages still arriving, summed over
    /// its connections, and of messages waiting to be read; `None` is
    /// unlimited. Not in libzmq.
    pub inbound_budget: Option<u64>,
    /// Send a ZMTP PING this often; `None` disables heartbeats.
    pub heartbeat_ivl: Option<Duration>,
    /// Drop the peer if nothing arrives this long after a PING; `None`
    /// uses `heartbeat_ivl`, as libzmq does.
    pub heartbeat_timeout: Option<Duration>,
    /// The TTL we ask the peer to apply to us (sent in our PINGs).
    pub heartbeat_ttl: Option<Duration>,
    /// `TCP_KEEPIDLE`: idle time before keepalive probes; `None` keeps the
    /// OS default.
    pub tcp_keepalive_idle: Option<Duration>,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped.
    pub tcp_keepalive_cnt: Option<u32>,
    /// `TCP_KEEPINTVL`: time between keepalive probes.
    pub tcp_keepalive_intvl: Option<Duration>,
    /// The security mechanism, as the last `plain_*`/`curve_*` option set
    /// chose it (libzmq's `ZMQ_MECHANISM`).
    pub mechanism: Mechanism,
    /// PLAIN: act as the server (`ZMQ_PLAIN_SERVER`).
    pub plain_server: bool,
    /// PLAIN client: the username (`ZMQ_PLAIN_USERNAME`).
    pub plain_username: Bytes,
    /// PLAIN client: the password (`ZMQ_PLAIN_PASSWORD`); sent in clear.
    pub plain_password: SecretBytes,
    /// CURVE: act as the server (`ZMQ_CURVE_SERVER`).
    pub curve_server: bool,
    /// CURVE: our long-term public key (`ZMQ_CURVE_PUBLICKEY`).
    pub curve_publickey: Option<CurvePublicKey>,
    /// CURVE: our long-term secret key (`ZMQ_CURVE_SECRETKEY`).
    pub curve_secretkey: Option<CurveSecretKey>,
    /// CURVE client: the server's public key (`ZMQ_CURVE_SERVERKEY`).
    pub curve_serverkey: Option<CurvePublicKey>,
    /// The ZAP domain this socket's server mechanisms pass to the
    /// context's ZAP handler (`ZMQ_ZAP_DOMAIN`).
    pub zap_domain: String,
}

/// Which security mechanism a socket uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mechanism {
    /// No security (the default).
    #[default]
    Null,
    /// PLAIN (RFC 24): username and password, in clear.
    Plain,
    /// CURVE (RFC 25/26): authenticated encryption.
    Curve,
}

impl Options {
    /// The mechanism a new connection runs, with its role and keys; an
    /// error when the options name a mechanism without what it needs
    /// (checked at `bind`/`connect`, as libzmq does at connection time).
    pub(crate) fn mechanism_config(&self) -> Result<MechanismConfig> {
        Ok(match self.mechanism {
            Mechanism::Null => MechanismConfig::Null,
            Mechanism::Plain if self.plain_server => MechanismConfig::PlainServer,
            Mechanism::Plain => MechanismConfig::PlainClient {
                username: self.plain_username.clone(),
                password: self.plain_password.clone(),
            },
            Mechanism::Curve => {
                let Some(secret) = self.curve_secretkey.clone() else {
                    return Err(Error::InvalidOption("CURVE needs curve_secretkey"));
                };
                let keys = CurveKeyPair::from_secret(secret);
                if self.curve_publickey.is_some_and(|p| p != keys.public) {
                    return Err(Error::InvalidOption(
                        "curve_publickey does not belong to curve_secretkey",
                    ));
                }
                if self.curve_server {
                    MechanismConfig::CurveServer { keys }
                } else {
                    let Some(server_key) = self.curve_serverkey else {
                        return Err(Error::InvalidOption("a CURVE client needs curve_serverkey"));
                    };
                    MechanismConfig::CurveClient { keys, server_key }
                }
            }
        })
    }
}

/// Conditions under which a connecter stops reconnecting, as libzmq 4.3.5's
/// `ZMQ_RECONNECT_STOP` flags. All off by default: reconnect forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconnectStop {
    /// Stop after a connect attempt is refused (RST: nothing listens).
    pub conn_refused: bool,
    /// Stop after a ZMTP handshake fails (wrong socket type, bad peer).
    pub handshake_failed: bool,
    /// Stop after an established connection is lost.
    pub after_disconnect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sndhwm: 1000,
            rcvhwm: 1000,
            linger: Some(DEFAULT_LINGER),
            sndtimeo: None,
            rcvtimeo: None,
            routing_id: Bytes::new(),
            reconnect_ivl: Some(Duration::from_millis(100)),
            reconnect_ivl_max: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            handshake_ivl: Duration::from_secs(30),
            tcp_keepalive: None,
            maxmsgsize: None,
            router_mandatory: false,
            // libzmq's 100 overflows when many clients connect at once; the
            // kernel caps this at net.core.somaxconn anyway.
            backlog: 4096,
            reconnect_stop: ReconnectStop::default(),
            req_relaxed: false,
            req_correlate: false,
            req_resend: false,
            immediate: false,
            inbound_budget: Some(DEFAULT_INBOUND_BUDGET),
            conflate: false,
            subscription_limit: Some(DEFAULT_SUBSCRIPTION_LIMIT),
            xpub_verbose: false,
            xpub_verboser: false,
            xpub_manual: false,
            xpub_nodrop: false,
            xpub_welcome_msg: None,
            heartbeat_ivl: None,
            heartbeat_timeout: None,
            heartbeat_ttl: None,
            tcp_keepalive_idle: None,
            tcp_keepalive_cnt: None,
            tcp_keepalive_intvl: None,
            mechanism: Mechanism::Null,
            plain_server: false,
            plain_username: Bytes::new(),
            plain_password: SecretBytes::default(),
            curve_server: false,
            curve_publickey: None,
            curve_secretkey: None,
            curve_serverkey: None,
            zap_domain: String::new(),
        }
    }
}
