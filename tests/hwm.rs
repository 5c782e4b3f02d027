//! High-water marks: with nobody reading, sends eventually fail with
//! `WouldBlock` (non-blocking) or `TimedOut` (bounded), handing the
//! message back.

mod util;

use bytes::Bytes;
use ferrozmq::{Error, Message, SocketType};
use std::time::{Duration, Instant};
use util::*;

#[test]
fn unconnected_pipe_fills_to_exactly_sndhwm() {
    let ctx = ctx();
    let push = socket(&ctx, SocketType::Push);
    push.set_linger(Some(Duration::ZERO)).unwrap();
    push.set_sndhwm(3).unwrap();
    push.connect(&free_endpoint()).expect("connect");

    for i in 0..3 {
        push.try_send(format!("m{i}")).expect("below the HWM");
    }
    let err = push.try_send("overflow").expect_err("at the HWM");
    assert!(matches!(err.error, Error::WouldBlock), "{:?}", err.error);
    assert_eq!(err.message, Message::from("overflow"));

    let err = push
        .send_timeout(Message::from(["multi", "part"]), Duration::from_millis(100))
        .expect_err("at the HWM");
    assert!(matches!(err.error, Error::TimedOut), "{:?}", err.error);
    assert_eq!(err.message, Message::from(["multi", "part"]));

    // sndtimeo applies to plain send.
    push.set_sndtimeo(Some(Duration::from_millis(50))).unwrap();
    let err = push.send("x").expect_err("at the HWM");
    assert!(matches!(err.error, Error::TimedOut), "{:?}", err.error);
}

#[test]
fn no_pipes_at_all_would_block() {
    let ctx = ctx();
    for ty in [SocketType::Push, SocketType::Dealer, SocketType::Req] {
        let s = socket(&ctx, ty);
        let err = s.try_send("nobody").expect_err("no peers");
        assert!(
            matches!(err.error, Error::WouldBlock),
            "{ty}: {:?}",
            err.error
        );
        assert_eq!(err.message, Message::from("nobody"));
        let err = s
            .send_timeout("nobody", Duration::from_millis(50))
            .expect_err("no peers");
        assert!(
            matches!(err.error, Error::TimedOut),
            "{ty}: {:?}",
            err.error
        );
    }
}

#[test]
fn connected_peer_that_never_reads_pushes_back() {
    const FRAME: usize = 64 * 1024;
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(4).unwrap();
    pull.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(4).unwrap();
    push.set_linger(Some(Duration::ZERO)).unwrap();
    let mon = push.monitor();
    push.connect(&ep).expect("connect");
    wait_handshakes(&mon, 1);

    // One shared payload: the kernel copies it, we don't.
    let payload = Bytes::from(vec![0x5a; FRAME]);
    // Fill everything: the PUSH pipe, the kernel buffers both ways, the
    // PULL engine and pipe. Each success is progress; a timeout means the
    // whole chain is full. Bounded so a missing HWM fails instead of
    // eating memory forever.
    let deadline = Instant::now() + TIMEOUT * 2;
    let mut accepted = 0usize;
    loop {
        assert!(
            Instant::now() < deadline,
            "still accepting after {accepted} messages"
        );
        assert!(
            accepted < 10_000,
            "accepted {accepted} x {FRAME} bytes without pushing back"
        );
        match push.send_timeout(payload.clone(), Duration::from_millis(250)) {
            Ok(()) => {
                accepted += 1;
                continue;
            }
            Err(e) => {
                assert!(matches!(e.error, Error::TimedOut), "{:?}", e.error);
                assert_eq!(e.message.first(), Some(&payload), "handed back");
            }
        }
        // Full, unless the I/O thread was merely slow: then keep filling.
        match push.try_send(payload.clone()) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(matches!(e.error, Error::WouldBlock), "{:?}", e.error);
                assert_eq!(e.message.first(), Some(&payload), "handed back");
                break;
            }
        }
    }
    assert!(accepted >= 4, "only {accepted} accepted");

    // Once the reader drains, everything flows again and nothing was lost.
    for i in 0..accepted {
        let m = pull
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} of {accepted}: {e:?}"));
        assert_eq!(m.byte_len(), FRAME);
    }
    push.send_timeout(payload.clone(), TIMEOUT)
        .expect("room again");
    assert_eq!(recv(&pull, "pull").byte_len(), FRAME);
}

#[test]
fn router_mandatory_at_hwm_would_block() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    router.set_router_mandatory(true).unwrap();
    router.set_sndhwm(2).unwrap();
    router.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("slow").expect("routing id");
    dealer.set_rcvhwm(2).unwrap();
    dealer.set_linger(Some(Duration::ZERO)).unwrap();
    dealer.connect(&ep).expect("connect");
    send(&dealer, "hello", "dealer");
    recv(&router, "router");

    let big = Bytes::from(vec![1u8; 64 * 1024]);
    let msg = || Message::from_frames([Bytes::from("slow"), big.clone()]);
    let deadline = Instant::now() + TIMEOUT * 2;
    loop {
        assert!(Instant::now() < deadline, "ROUTER never pushed back");
        let Err(e) = router.send_timeout(msg(), Duration::from_millis(250)) else {
            continue;
        };
        assert!(matches!(e.error, Error::TimedOut), "{:?}", e.error);
        assert_eq!(&e.message.frames()[0][..], b"slow", "handed back");
        // Full, unless the I/O thread was merely slow: then keep filling.
        if let Err(e) = router.try_send(msg()) {
            assert!(matches!(e.error, Error::WouldBlock), "{:?}", e.error);
            break;
        }
    }
    assert_eq!(router.stats().dropped_hwm, 0);
}

#[test]
fn router_without_mandatory_drops_at_hwm_and_counts() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    router.set_sndhwm(1).unwrap();
    router.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("slow").expect("routing id");
    dealer.set_rcvhwm(1).unwrap();
    dealer.set_linger(Some(Duration::ZERO)).unwrap();
    dealer.connect(&ep).expect("connect");
    send(&dealer, "hello", "dealer");
    recv(&router, "router");

    // Never blocks, never fails: excess is dropped and counted.
    let big = Bytes::from(vec![1u8; 64 * 1024]);
    let deadline = Instant::now() + TIMEOUT * 2;
    while router.stats().dropped_hwm == 0 {
        assert!(Instant::now() < deadline, "nothing was ever dropped");
        router
            .try_send(Message::from_frames([Bytes::from("slow"), big.clone()]))
            .expect("non-mandatory ROUTER never fails at the HWM");
    }
}
