//! PUSH -> PULL against libzmq 4.3.4, both ways and with either side
//! binding; load-balancing to and fair-queuing from several libzmq peers.

mod util;

use ferrozmq::{Context, SocketType};
use util::interop::*;
use util::*;

const COUNT: usize = 100;

/// A varied stream: short, empty, multipart, long frames.
fn message(n: usize) -> Vec<Vec<u8>> {
    let tag = format!("msg {n}").into_bytes();
    match n % 5 {
        0 => vec![tag],
        1 => vec![tag, Vec::new()],
        2 => vec![tag, body(255, n as u8), body(256, n as u8)],
        3 => vec![Vec::new(), tag],
        _ => vec![tag, body(70_000, n as u8)],
    }
}

fn our_push_lz_pull(binder: Binder, any: &str) {
    check_libzmq_version();
    let l = link_at(any, SocketType::Push, zmq::PULL, binder);
    for n in 0..COUNT {
        our_send(&l.ours, &message(n));
    }
    for n in 0..COUNT {
        assert_frames_eq(&lz_recv(&l.lz), &message(n), "libzmq PULL, in order");
    }
}

fn lz_push_our_pull(binder: Binder, any: &str) {
    check_libzmq_version();
    let l = link_at(any, SocketType::Pull, zmq::PUSH, binder);
    for n in 0..COUNT {
        lz_send(&l.lz, &message(n));
    }
    for n in 0..COUNT {
        assert_frames_eq(&our_recv(&l.ours), &message(n), "our PULL, in order");
    }
}

#[test]
fn push_pull_over_ipc_both_ways() {
    for binder in BOTH {
        our_push_lz_pull(binder, IPC_ANY);
        lz_push_our_pull(binder, IPC_ANY);
    }
}

#[test]
fn our_push_connects_to_libzmq_pull() {
    our_push_lz_pull(Binder::Libzmq, ANY);
}

#[test]
fn libzmq_pull_connects_to_our_push() {
    our_push_lz_pull(Binder::Ours, ANY);
}

#[test]
fn libzmq_push_connects_to_our_pull() {
    lz_push_our_pull(Binder::Ours, ANY);
}

#[test]
fn our_pull_connects_to_libzmq_push() {
    lz_push_our_pull(Binder::Libzmq, ANY);
}

#[test]
fn our_push_load_balances_over_libzmq_pulls() {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let push = our_socket(&ctx, SocketType::Push);
    let mon = push.monitor();
    let ep = bind_local(&push);
    let pulls: Vec<_> = (0..2).map(|_| lz_socket(&zctx, zmq::PULL)).collect();
    for p in &pulls {
        p.connect(&ep).unwrap();
    }
    wait_handshakes(&mon, pulls.len());
    for n in 0..20 {
        our_send(&push, &frames(&[&n.to_string()]));
    }
    let mut all = Vec::new();
    for p in &pulls {
        let mine: Vec<usize> = (0..10)
            .map(|_| {
                String::from_utf8(lz_recv(p).remove(0))
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order: {mine:?}");
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>(), "each message once");
}

#[test]
fn our_pull_fair_queues_from_libzmq_pushes() {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let pull = our_socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let pushes: Vec<_> = (0..3).map(|_| lz_socket(&zctx, zmq::PUSH)).collect();
    for (i, p) in pushes.iter().enumerate() {
        p.connect(&ep).unwrap();
        for n in 0..10 {
            lz_send(p, &frames(&[&i.to_string(), &n.to_string()]));
        }
    }
    let mut next = [0usize; 3];
    for _ in 0..30 {
        let m = our_recv(&pull);
        let i: usize = String::from_utf8(m[0].clone()).unwrap().parse().unwrap();
        let n: usize = String::from_utf8(m[1].clone()).unwrap().parse().unwrap();
        assert_eq!(n, next[i], "per-peer order from PUSH {i}");
        next[i] += 1;
    }
    assert_eq!(next, [10; 3]);
}
