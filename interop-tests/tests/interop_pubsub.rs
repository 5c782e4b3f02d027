//! PUB/SUB, XPUB/SUB, PUB/XSUB and PAIR against libzmq 4.3.4, with either
//! side binding.
//!
//! A subscription reaches a publisher some time after `subscribe` returns,
//! and a publisher drops what nobody has subscribed to yet (the slow
//! joiner). The tests never sleep for it: they publish a probe on the
//! subscribed topic until the subscriber receives one, then the real
//! sequence, ended by a marker, so that "not received" is checked against
//! a message that was.

mod util;

use ferrozmq::{Socket, SocketType};
use std::time::Duration;
use util::interop::*;
use util::*;

fn our_recv_within(s: &Socket, t: Duration) -> Option<Vec<Vec<u8>>> {
    s.recv_timeout(t).ok().map(to_vecs)
}

fn lz_recv_opt(s: &zmq::Socket, t: Duration) -> Option<Vec<Vec<u8>>> {
    lz_recv_within(s, t).ok()
}

/// A message as its frames.
type Frames = Vec<Vec<u8>>;

/// What a subscriber to "A" and "B" must see of a mixed sequence.
fn sequence() -> (Vec<Frames>, Vec<Frames>) {
    let all: Vec<Frames> = [
        vec!["A1"],
        vec!["C1"],
        vec!["B1", "body"],
        vec!["", "empty topic"],
        vec!["AB", "two", "frames"],
        vec!["c"],
        vec!["A-end"],
    ]
    .iter()
    .map(|m| frames(m))
    .collect();
    let want = all
        .iter()
        .filter(|m| m[0].starts_with(b"A") || m[0].starts_with(b"B"))
        .cloned()
        .collect();
    (all, want)
}

#[test]
fn our_pub_to_libzmq_sub() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link_with(
            SocketType::Pub,
            zmq::SUB,
            binder,
            |_| {},
            |s| {
                s.set_subscribe(b"A").expect("subscribe A");
                s.set_subscribe(b"B").expect("subscribe B");
            },
        );
        sync_subscription(
            &format!("{binder:?}"),
            |p| our_send(&l.ours, &[p.to_vec()]),
            |t| lz_recv_opt(&l.lz, t),
            "A",
        );
        let (all, want) = sequence();
        for m in &all {
            our_send(&l.ours, m);
        }
        for w in &want {
            assert_frames_eq(&lz_recv(&l.lz), w, "libzmq SUB");
        }
    }
}

#[test]
fn libzmq_pub_to_our_sub() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link_with(
            SocketType::Sub,
            zmq::PUB,
            binder,
            |s| {
                s.subscribe("A").expect("subscribe A");
                s.subscribe(b"B").expect("subscribe B");
            },
            |_| {},
        );
        sync_subscription(
            &format!("{binder:?}"),
            |p| lz_send(&l.lz, &[p.to_vec()]),
            |t| our_recv_within(&l.ours, t),
            "A",
        );
        let (all, want) = sequence();
        for m in &all {
            lz_send(&l.lz, m);
        }
        for w in &want {
            assert_frames_eq(&our_recv(&l.ours), w, "our SUB");
        }
        assert!(l.ours.try_recv().is_err(), "nothing else arrived");
    }
}

/// Our XPUB sees libzmq's subscriptions and unsubscriptions, in the
/// message form, whichever form libzmq sent them in. Only with our XPUB
/// bound: a bound libzmq 4.3.4 SUB sends a connecting XPUB nothing, and
/// libzmq's own XPUB sees nothing there either (checked while writing
/// this test: no subscription within 2 s, before or after the handshake).
#[test]
fn our_xpub_sees_libzmq_subscriptions() {
    check_libzmq_version();
    let binder = Binder::Ours;
    let l = link(SocketType::XPub, zmq::SUB, binder);
    l.lz.set_subscribe(b"topic").expect("subscribe");
    assert_frames_eq(&our_recv(&l.ours), &[b"\x01topic".to_vec()], "subscribe");
    l.lz.set_subscribe(b"").expect("subscribe to all");
    assert_frames_eq(&our_recv(&l.ours), &[b"\x01".to_vec()], "subscribe all");
    l.lz.set_unsubscribe(b"topic").expect("unsubscribe");
    assert_frames_eq(&our_recv(&l.ours), &[b"\x00topic".to_vec()], "unsubscribe");
    our_send(&l.ours, &frames(&["anything"]));
    assert_frames_eq(
        &lz_recv(&l.lz),
        &frames(&["anything"]),
        "still subscribed to all",
    );
}

/// libzmq's XPUB sees our subscriptions (we send SUBSCRIBE/CANCEL
/// commands to it, a ZMTP 3.1 peer), counted as libzmq counts them.
#[test]
fn libzmq_xpub_sees_our_subscriptions() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link(SocketType::Sub, zmq::XPUB, binder);
        l.lz.set_xpub_verbose(true).expect("verbose");
        l.ours.subscribe("news").expect("subscribe");
        assert_frames_eq(&lz_recv(&l.lz), &[b"\x01news".to_vec()], "subscribe");
        // A second count of the same prefix is ours to keep: nothing is
        // sent, and one unsubscribe leaves the subscription in place.
        l.ours.subscribe("news").expect("subscribe again");
        l.ours.unsubscribe("news").expect("unsubscribe once");
        l.ours.subscribe("weather").expect("subscribe weather");
        assert_frames_eq(
            &lz_recv(&l.lz),
            &[b"\x01weather".to_vec()],
            "only the new one",
        );
        l.ours.unsubscribe("news").expect("unsubscribe again");
        assert_frames_eq(&lz_recv(&l.lz), &[b"\x00news".to_vec()], "the last count");
    }
}

/// libzmq's PUB to our XSUB: the subscription is a message we send.
#[test]
fn libzmq_pub_to_our_xsub() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link(SocketType::XSub, zmq::PUB, binder);
        our_send(&l.ours, &[b"\x01x".to_vec()]);
        sync_subscription(
            &format!("{binder:?}"),
            |p| lz_send(&l.lz, &[p.to_vec()]),
            |t| our_recv_within(&l.ours, t),
            "x",
        );
        lz_send(&l.lz, &frames(&["y1"]));
        lz_send(&l.lz, &frames(&["x1", "two"]));
        assert_frames_eq(
            &our_recv(&l.ours),
            &frames(&["x1", "two"]),
            "filtered by libzmq",
        );
    }
}

/// Our PUB to libzmq's XSUB: libzmq's subscription message reaches our
/// publisher, which then filters for it.
#[test]
fn our_pub_to_libzmq_xsub() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link(SocketType::Pub, zmq::XSUB, binder);
        lz_send(&l.lz, &[b"\x01x".to_vec()]);
        sync_subscription(
            &format!("{binder:?}"),
            |p| our_send(&l.ours, &[p.to_vec()]),
            |t| lz_recv_opt(&l.lz, t),
            "x",
        );
        our_send(&l.ours, &frames(&["y1"]));
        our_send(&l.ours, &frames(&["x1", "two"]));
        assert_frames_eq(
            &lz_recv(&l.lz),
            &frames(&["x1", "two"]),
            "filtered by our publisher",
        );
        lz_send(&l.lz, &[b"\x00x".to_vec()]);
    }
}

/// Our SUB resubscribes after the publisher restarts on the same
/// endpoint (zmq.rs's SUB goes dead here: its issue #143).
#[test]
fn our_sub_resubscribes_after_libzmq_publisher_restarts() {
    check_libzmq_version();
    let ctx = ferrozmq::Context::new();
    let sub = our_socket(&ctx, SocketType::Sub);
    sub.set_reconnect_ivl(Some(Duration::from_millis(20)))
        .unwrap();
    sub.subscribe("t").expect("subscribe");
    // The first publisher has a context of its own: terminating it closes
    // its listener before we return, so the endpoint is free to rebind.
    let first_ctx = zmq::Context::new();
    let xpub = lz_socket(&first_ctx, zmq::XPUB);
    let ep = lz_bind(&xpub);
    sub.connect(&ep).expect("connect");
    assert_frames_eq(&lz_recv(&xpub), &[b"\x01t".to_vec()], "first subscription");
    drop(xpub);
    drop(first_ctx);
    let zctx = zmq::Context::new();
    let xpub = lz_socket(&zctx, zmq::XPUB);
    lz_bind_at(&xpub, &ep);
    assert_frames_eq(&lz_recv(&xpub), &[b"\x01t".to_vec()], "sent again");
    lz_send(&xpub, &frames(&["t", "after the restart"]));
    assert_frames_eq(
        &our_recv(&sub),
        &frames(&["t", "after the restart"]),
        "our SUB",
    );
}

#[test]
fn pair_both_ways() {
    check_libzmq_version();
    for binder in BOTH {
        let l = link(SocketType::Pair, zmq::PAIR, binder);
        for n in 0..20 {
            let m = frames(&[&format!("ping {n}"), "x"]);
            our_send(&l.ours, &m);
            assert_frames_eq(&lz_recv(&l.lz), &m, "libzmq PAIR");
            lz_send(&l.lz, &m);
            assert_frames_eq(&our_recv(&l.ours), &m, "our PAIR");
        }
    }
}
