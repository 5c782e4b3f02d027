//! Helpers for the libzmq interop suite (`tests/interop_*.rs`,
//! `tests/heartbeat.rs`): libzmq sockets from the `zmq` dev-dependency, and
//! ours configured the same way.
//!
//! Rules every helper follows, so that tests never hang and never clash
//! when run in parallel:
//! - every libzmq socket has `LINGER=0` and finite `RCVTIMEO`/`SNDTIMEO`,
//!   so a failed assertion cannot block in `zmq_ctx_term`;
//! - every one of our sockets has `linger = 0` and finite timeouts;
//! - every bind uses an ephemeral port on 127.0.0.1.

use super::{socket, TIMEOUT};
use ferrozmq::{Context, Message, Socket, SocketType};
use std::time::Duration;

/// The libzmq version the `zmq` dev-dependency vendors.
pub const LIBZMQ_VERSION: (i32, i32, i32) = (4, 3, 4);

/// Our wildcard bind endpoint.
pub const ANY: &str = "tcp://127.0.0.1:*";

/// Where links over `ipc://` bind (libzmq resolves the wildcard too).
pub const IPC_ANY: &str = "ipc://*";

/// A duration as libzmq's `int` milliseconds.
pub fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).expect("duration fits libzmq's int milliseconds")
}

// ----- libzmq side -----

/// A libzmq socket with LINGER=0 and RCVTIMEO/SNDTIMEO = [`TIMEOUT`].
pub fn lz_socket(ctx: &zmq::Context, ty: zmq::SocketType) -> zmq::Socket {
    let s = ctx.socket(ty).expect("libzmq socket");
    s.set_linger(0).expect("libzmq LINGER");
    s.set_rcvtimeo(ms(TIMEOUT)).expect("libzmq RCVTIMEO");
    s.set_sndtimeo(ms(TIMEOUT)).expect("libzmq SNDTIMEO");
    s
}

/// Binds a libzmq socket to an ephemeral loopback port and returns the
/// resolved endpoint (`ZMQ_LAST_ENDPOINT`).
pub fn lz_bind(s: &zmq::Socket) -> String {
    lz_bind_at(s, ANY)
}

/// Binds a libzmq socket to `endpoint` and returns `ZMQ_LAST_ENDPOINT`.
pub fn lz_bind_at(s: &zmq::Socket, endpoint: &str) -> String {
    s.bind(endpoint).expect("libzmq bind");
    s.get_last_endpoint()
        .expect("ZMQ_LAST_ENDPOINT")
        .expect("utf-8 endpoint")
}

pub fn lz_send(s: &zmq::Socket, frames: &[Vec<u8>]) {
    s.send_multipart(frames.iter().map(|f| f.as_slice()), 0)
        .expect("libzmq send");
}

pub fn lz_recv(s: &zmq::Socket) -> Vec<Vec<u8>> {
    s.recv_multipart(0).expect("libzmq recv")
}

/// Receives with a one-off timeout, restoring [`TIMEOUT`] afterwards.
pub fn lz_recv_within(s: &zmq::Socket, t: Duration) -> Result<Vec<Vec<u8>>, zmq::Error> {
    s.set_rcvtimeo(ms(t)).expect("libzmq RCVTIMEO");
    let r = s.recv_multipart(0);
    s.set_rcvtimeo(ms(TIMEOUT)).expect("libzmq RCVTIMEO");
    r
}

// ----- our side -----

/// One of our sockets with send/recv timeouts of [`TIMEOUT`] and linger 0,
/// so that closing it mirrors the libzmq side.
pub fn our_socket(ctx: &Context, ty: SocketType) -> Socket {
    let s = socket(ctx, ty);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    s
}

pub fn our_send(s: &Socket, frames: &[Vec<u8>]) {
    s.send(Message::from_frames(frames.iter().cloned()))
        .expect("ferrozmq send");
}

/// Receives one message, bounded by the socket's `rcvtimeo`.
pub fn our_recv(s: &Socket) -> Vec<Vec<u8>> {
    to_vecs(s.recv().expect("ferrozmq recv"))
}

pub fn to_vecs(m: Message) -> Vec<Vec<u8>> {
    m.into_iter().map(|b| b.to_vec()).collect()
}

// ----- data -----

/// A message as a list of frames.
pub type Frames = Vec<Vec<u8>>;

/// `Vec<Vec<u8>>` from string literals.
pub fn frames(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// A short human-readable description of a message, for assertion
/// messages (large bodies are not printed).
pub fn shape(m: &[Vec<u8>]) -> String {
    let sizes: Vec<String> = m.iter().map(|f| f.len().to_string()).collect();
    format!("{} frame(s) of [{}] bytes", m.len(), sizes.join(", "))
}

/// Asserts equality without dumping megabytes on failure.
#[track_caller]
pub fn assert_frames_eq(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    if got != want {
        let first_diff = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .map_or("-".to_string(), |i| i.to_string());
        let small = |m: &[Vec<u8>]| m.iter().all(|f| f.len() <= 64);
        if small(got) && small(want) {
            panic!("{what}: got {got:?}, want {want:?}");
        }
        panic!(
            "{what}: got {}, want {} (first differing frame: {first_diff})",
            shape(got),
            shape(want)
        );
    }
}

/// Checks that the vendored libzmq is the version this suite documents.
pub fn check_libzmq_version() {
    assert_eq!(zmq::version(), LIBZMQ_VERSION, "vendored libzmq version");
}

// ----- one of ours and one libzmq socket, connected -----

/// Which side binds; the other connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binder {
    /// Our socket binds `tcp://127.0.0.1:*`, libzmq connects.
    Ours,
    /// libzmq binds `tcp://127.0.0.1:*`, our socket connects.
    Libzmq,
}

pub const BOTH: [Binder; 2] = [Binder::Ours, Binder::Libzmq];

/// Our socket and a libzmq socket, one bound and the other connected to
/// it, with their contexts. Fields drop in order: sockets, then contexts.
pub struct Link {
    pub ours: Socket,
    pub lz: zmq::Socket,
    pub endpoint: String,
    pub ctx: Context,
    pub zctx: zmq::Context,
}

pub fn link(ours_ty: SocketType, lz_ty: zmq::SocketType, binder: Binder) -> Link {
    link_at(ANY, ours_ty, lz_ty, binder)
}

/// As [`link`], binding `any` (a wildcard endpoint: [`ANY`], [`IPC_ANY`]).
pub fn link_at(any: &str, ours_ty: SocketType, lz_ty: zmq::SocketType, binder: Binder) -> Link {
    link_any(any, ours_ty, lz_ty, binder, |_| {}, |_| {})
}

/// As [`link`], with hooks to configure each socket before bind/connect
/// (routing ids, for example).
pub fn link_with(
    ours_ty: SocketType,
    lz_ty: zmq::SocketType,
    binder: Binder,
    setup_ours: impl FnOnce(&Socket),
    setup_lz: impl FnOnce(&zmq::Socket),
) -> Link {
    link_any(ANY, ours_ty, lz_ty, binder, setup_ours, setup_lz)
}

fn link_any(
    any: &str,
    ours_ty: SocketType,
    lz_ty: zmq::SocketType,
    binder: Binder,
    setup_ours: impl FnOnce(&Socket),
    setup_lz: impl FnOnce(&zmq::Socket),
) -> Link {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let ours = our_socket(&ctx, ours_ty);
    let lz = lz_socket(&zctx, lz_ty);
    setup_ours(&ours);
    setup_lz(&lz);
    let endpoint = match binder {
        Binder::Ours => {
            let ep = ours.bind(any).expect("ferrozmq bind");
            lz.connect(&ep).expect("libzmq connect");
            ep
        }
        Binder::Libzmq => {
            let ep = lz_bind_at(&lz, any);
            ours.connect(&ep).expect("ferrozmq connect");
            ep
        }
    };
    Link {
        ours,
        lz,
        endpoint,
        ctx,
        zctx,
    }
}

// ----- libzmq's monitor -----

/// Starts libzmq's socket monitor on `s` and returns the PAIR socket that
/// receives its events (RCVTIMEO = [`TIMEOUT`], LINGER = 0).
pub fn lz_monitor(zctx: &zmq::Context, s: &zmq::Socket) -> zmq::Socket {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let ep = format!(
        "inproc://lz-monitor-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    s.monitor(&ep, zmq::SocketEvent::ALL as i32)
        .expect("libzmq monitor");
    let pair = lz_socket(zctx, zmq::PAIR);
    pair.connect(&ep).expect("connect to libzmq monitor");
    pair
}

/// The next event from libzmq's monitor as (event, value), or `None`
/// after [`TIMEOUT`].
pub fn lz_next_event(pair: &zmq::Socket) -> Option<(zmq::SocketEvent, u32)> {
    let m = pair.recv_multipart(0).ok()?;
    let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([m[0][0], m[0][1]]));
    let value = u32::from_le_bytes([m[0][2], m[0][3], m[0][4], m[0][5]]);
    Some((event, value))
}
