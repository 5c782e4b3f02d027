//! Several threads blocked on one socket: "wake everyone" (context
//! termination, close) reaches every one of them, whichever way it waits:
//! `recv`, `send` at the HWM, or a `Poller`.
//!
//! The regression: one wake-up `eventfd` per socket, drained by whichever
//! thread woke first, left most other waiters asleep until their own
//! timeout (or forever). Each test waits with a timeout far longer than
//! the test allows, so a waiter that misses the wake-up is seen as
//! `TimedOut` (or as a thread that does not finish within `TIMEOUT`).

mod util;

use ferrozmq::{Context, Error, Events, Poller, Socket, SocketType};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use util::*;

/// Threads blocked on one socket in each test.
const WAITERS: usize = 6;
/// Rounds per test: the lost wake-up depended on timing.
const ROUNDS: usize = 10;
/// How long each waiter is willing to wait: past `TIMEOUT`, so that only
/// the wake-up under test can end the wait in time.
const LONG: Duration = Duration::from_secs(60);

/// How a thread blocks.
#[derive(Clone, Copy, Debug)]
enum Block {
    Recv,
    Send,
    Poll,
}

/// Blocks the calling thread on `s` and returns the error that ended it.
fn block(s: &Socket, how: Block) -> Error {
    match how {
        Block::Recv => s.recv_timeout(LONG).expect_err("nothing to receive"),
        Block::Send => s.send_timeout("x", LONG).expect_err("no room").error,
        Block::Poll => {
            let mut poller = Poller::new();
            poller.add(s, Events::IN);
            match poller.poll(Some(LONG)) {
                Ok(n) => panic!("poll returned {n} ready, expected an error"),
                Err(e) => e,
            }
        }
    }
}

/// A socket that `how` blocks on: a PULL with a live but silent peer (so
/// that blocked threads also arm its connection), or for `Send` a PUSH
/// whose only peer never reads and whose pipe is full.
fn blocking_socket(ctx: &Context, how: Block, peer_ctx: &Context) -> (Socket, Socket) {
    match how {
        Block::Recv | Block::Poll => {
            let pull = socket(ctx, SocketType::Pull);
            let ep = bind_local(&pull);
            let push = socket(peer_ctx, SocketType::Push);
            let events = pull.monitor();
            push.connect(&ep).expect("connect");
            wait_handshakes(&events, 1);
            (pull, push)
        }
        Block::Send => {
            let push = socket(ctx, SocketType::Push);
            push.set_sndhwm(1).unwrap();
            // Termination need not linger over a message nobody takes.
            push.set_linger(Some(Duration::ZERO)).unwrap();
            // Not connected anywhere that answers: the pipe takes one
            // message, then `send` blocks.
            push.connect(&free_endpoint()).expect("connect");
            push.try_send("fills the pipe")
                .expect("first message queued");
            assert!(push
                .try_send("over the HWM")
                .expect_err("pipe full")
                .error
                .is_would_block());
            let dummy = socket(peer_ctx, SocketType::Pull);
            (push, dummy)
        }
    }
}

/// Blocks `WAITERS` threads on one socket, runs `end` on it, and checks
/// that every waiter returned `expected` within `TIMEOUT`.
fn every_waiter_returns(how: Block, end: fn(&Context, &Socket), expected: fn(&Error) -> bool) {
    for round in 0..ROUNDS {
        let ctx = ctx();
        let peer_ctx = util::ctx();
        let (s, _peer) = blocking_socket(&ctx, how, &peer_ctx);
        let s = Arc::new(s);
        let (tx, rx) = crossbeam_channel::unbounded();
        let threads: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (s, tx) = (s.clone(), tx.clone());
                thread::spawn(move || {
                    let _ = tx.send(block(&s, how));
                })
            })
            .collect();
        await_blocked(&s, WAITERS);
        let started = Instant::now();
        end(&ctx, &s);
        for i in 0..WAITERS {
            let left = TIMEOUT.saturating_sub(started.elapsed());
            let err = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("{how:?}, round {round}: only {i} of {WAITERS} waiters returned")
            });
            assert!(
                expected(&err),
                "{how:?}, round {round}: a waiter returned {err:?}"
            );
        }
        for t in threads {
            t.join().expect("waiter thread");
        }
    }
}

fn terminate(ctx: &Context, _s: &Socket) {
    ctx.term();
}

fn close(_ctx: &Context, s: &Socket) {
    s.close();
}

fn is_terminated(e: &Error) -> bool {
    matches!(e, Error::ContextTerminated)
}

fn is_closed(e: &Error) -> bool {
    matches!(e, Error::SocketClosed)
}

#[test]
fn termination_wakes_every_thread_blocked_in_recv() {
    every_waiter_returns(Block::Recv, terminate, is_terminated);
}

#[test]
fn termination_wakes_every_thread_blocked_in_send_at_the_hwm() {
    every_waiter_returns(Block::Send, terminate, is_terminated);
}

#[test]
fn termination_wakes_every_thread_blocked_in_a_poller() {
    every_waiter_returns(Block::Poll, terminate, is_terminated);
}

#[test]
fn close_wakes_every_thread_blocked_in_recv() {
    every_waiter_returns(Block::Recv, close, is_closed);
}

#[test]
fn close_wakes_every_thread_blocked_in_send_at_the_hwm() {
    every_waiter_returns(Block::Send, close, is_closed);
}

#[test]
fn close_wakes_every_thread_blocked_in_a_poller() {
    every_waiter_returns(Block::Poll, close, is_closed);
}

#[test]
fn a_closed_socket_fails_every_later_call_and_hands_messages_back() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Push);
    s.close();
    s.close(); // idempotent
    assert!(matches!(s.try_recv(), Err(Error::SocketClosed)));
    let err = s.try_send("late").expect_err("closed");
    assert!(matches!(err.error, Error::SocketClosed), "{:?}", err.error);
    assert_eq!(err.message, ferrozmq::Message::from("late"));
    assert!(matches!(
        s.connect("tcp://127.0.0.1:1"),
        Err(Error::SocketClosed)
    ));
    assert!(matches!(
        s.poll(Events::OUT, None),
        Err(Error::SocketClosed)
    ));
}

/// One message, many threads blocked in `recv`: exactly one gets it, and
/// the others keep waiting (they are not woken into a false error) until
/// the rest of the messages arrive.
#[test]
fn each_message_reaches_exactly_one_of_several_blocked_receivers() {
    let ctx = ctx();
    let pull = Arc::new(socket(&ctx, SocketType::Pull));
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    let events = pull.monitor();
    push.connect(&ep).expect("connect");
    wait_handshakes(&events, 1);
    let (tx, rx) = crossbeam_channel::unbounded();
    let threads: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (pull, tx) = (pull.clone(), tx.clone());
            thread::spawn(move || {
                let _ = tx.send(pull.recv_timeout(TIMEOUT).map(|m| strs(&m)));
            })
        })
        .collect();
    await_blocked(&pull, WAITERS);
    for i in 0..WAITERS {
        send(&push, format!("m{i}"), "push");
    }
    let mut got: Vec<String> = (0..WAITERS)
        .map(|_| {
            let r = rx.recv_timeout(TIMEOUT).expect("a receiver returned");
            r.expect("a message, not an error").concat()
        })
        .collect();
    got.sort();
    let want: Vec<String> = (0..WAITERS).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    for t in threads {
        t.join().expect("receiver thread");
    }
}
