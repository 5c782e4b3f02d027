//! REQ <-> REP against libzmq 4.3.4: round trips of every frame shape and
//! size, in all four combinations of who is REQ and who binds; several
//! libzmq clients on one of our REPs; our REQ round-robining over several
//! libzmq REPs.

mod util;

use ferrozmq::{Context, SocketType};
use std::collections::BTreeSet;
use util::interop::*;
use util::*;

/// Requests that cover the framing and envelope edge cases.
fn requests() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("single frame", frames(&["hello"])),
        ("multipart", frames(&["a", "bb", "ccc"])),
        // REP strips the envelope up to the first empty frame, which is the
        // REQ's delimiter: empty frames in the body must come through.
        ("empty frames", frames(&["", "middle", ""])),
        ("body of 0 bytes", vec![body(0, 1)]),
        ("body of 1 byte", vec![body(1, 2)]),
        (
            "body of 255 bytes (largest short frame)",
            vec![body(255, 3)],
        ),
        ("body of 256 bytes (first long frame)", vec![body(256, 4)]),
        ("body of 70000 bytes", vec![body(70_000, 5)]),
        (
            "multipart of short and long frames",
            vec![body(255, 6), body(256, 7), Vec::new(), body(70_000, 8)],
        ),
        ("body of 16 MiB", vec![body(16 << 20, 9)]),
    ]
}

/// The REP side's answer: a marker frame, then the request's frames in
/// reverse order, so that the reply differs from the request.
fn reply_to(request: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut r = vec![b"re".to_vec()];
    r.extend(request.iter().rev().cloned());
    r
}

fn our_req_lz_rep(binder: Binder, any: &str) {
    check_libzmq_version();
    let l = link_at(any, SocketType::Req, zmq::REP, binder);
    for (what, req) in requests() {
        our_send(&l.ours, &req);
        let got = lz_recv(&l.lz);
        assert_frames_eq(&got, &req, &format!("libzmq REP received ({what})"));
        lz_send(&l.lz, &reply_to(&got));
        let rep = our_recv(&l.ours);
        assert_frames_eq(&rep, &reply_to(&req), &format!("our REQ received ({what})"));
    }
}

fn lz_req_our_rep(binder: Binder, any: &str) {
    check_libzmq_version();
    let l = link_at(any, SocketType::Rep, zmq::REQ, binder);
    for (what, req) in requests() {
        lz_send(&l.lz, &req);
        let got = our_recv(&l.ours);
        assert_frames_eq(&got, &req, &format!("our REP received ({what})"));
        our_send(&l.ours, &reply_to(&got));
        let rep = lz_recv(&l.lz);
        assert_frames_eq(
            &rep,
            &reply_to(&req),
            &format!("libzmq REQ received ({what})"),
        );
    }
}

#[test]
fn req_rep_over_ipc_both_ways() {
    for binder in BOTH {
        our_req_lz_rep(binder, IPC_ANY);
        lz_req_our_rep(binder, IPC_ANY);
    }
}

#[test]
fn our_req_connects_to_libzmq_rep() {
    our_req_lz_rep(Binder::Libzmq, ANY);
}

#[test]
fn libzmq_rep_connects_to_our_req() {
    our_req_lz_rep(Binder::Ours, ANY);
}

#[test]
fn libzmq_req_connects_to_our_rep() {
    lz_req_our_rep(Binder::Ours, ANY);
}

#[test]
fn our_rep_connects_to_libzmq_req() {
    lz_req_our_rep(Binder::Libzmq, ANY);
}

const CLIENTS: usize = 5;
const ROUNDS: usize = 10;

/// Several libzmq REQ clients with a request each in flight at once; our
/// REP must fair-queue them and route every reply to its own client.
fn several_lz_clients(binder: Binder) {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let rep = our_socket(&ctx, SocketType::Rep);
    let clients: Vec<zmq::Socket> = (0..CLIENTS).map(|_| lz_socket(&zctx, zmq::REQ)).collect();
    match binder {
        Binder::Ours => {
            let ep = bind_local(&rep);
            for c in &clients {
                c.connect(&ep).unwrap();
            }
        }
        Binder::Libzmq => {
            for c in &clients {
                rep.connect(&lz_bind(c)).unwrap();
            }
        }
    }
    for round in 0..ROUNDS {
        let request = |i: usize| frames(&[&format!("client {i}"), &format!("round {round}")]);
        for (i, c) in clients.iter().enumerate() {
            lz_send(c, &request(i));
        }
        let mut served = BTreeSet::new();
        for _ in 0..CLIENTS {
            let req = our_recv(&rep);
            served.insert(req.clone());
            our_send(&rep, &reply_to(&req));
        }
        let want: BTreeSet<_> = (0..CLIENTS).map(request).collect();
        assert_eq!(served, want, "round {round}: requests seen by our REP");
        for (i, c) in clients.iter().enumerate() {
            let got = lz_recv(c);
            assert_frames_eq(
                &got,
                &reply_to(&request(i)),
                &format!("round {round}: reply for client {i}"),
            );
        }
    }
}

#[test]
fn several_libzmq_req_clients_connect_to_our_rep() {
    several_lz_clients(Binder::Ours);
}

#[test]
fn our_rep_connects_to_several_libzmq_req_clients() {
    several_lz_clients(Binder::Libzmq);
}

const SERVERS: usize = 4;
const REQUESTS: usize = 40;

/// Our REQ over several libzmq REPs, all connected before the first
/// request: requests must go round-robin, spread evenly.
fn round_robin_over_lz_reps(binder: Binder) {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let req = our_socket(&ctx, SocketType::Req);
    let mon = req.monitor();
    let servers: Vec<zmq::Socket> = (0..SERVERS).map(|_| lz_socket(&zctx, zmq::REP)).collect();
    match binder {
        Binder::Libzmq => {
            for s in &servers {
                req.connect(&lz_bind(s)).unwrap();
            }
        }
        Binder::Ours => {
            let ep = bind_local(&req);
            for s in &servers {
                s.connect(&ep).unwrap();
            }
        }
    }
    wait_handshakes(&mon, SERVERS);

    let mut served_by = Vec::with_capacity(REQUESTS);
    for n in 0..REQUESTS {
        let request = frames(&[&format!("request {n}")]);
        our_send(&req, &request);
        let mut items: Vec<zmq::PollItem> = servers
            .iter()
            .map(|s| s.as_poll_item(zmq::POLLIN))
            .collect();
        let ready = zmq::poll(&mut items, ms(TIMEOUT) as i64).unwrap();
        assert_eq!(ready, 1, "request {n}: exactly one REP must have it");
        let idx = items.iter().position(|i| i.is_readable()).unwrap();
        drop(items);
        let got = lz_recv(&servers[idx]);
        assert_frames_eq(&got, &request, "libzmq REP received");
        lz_send(&servers[idx], &frames(&[&format!("server {idx}")]));
        let reply = our_recv(&req);
        assert_frames_eq(&reply, &frames(&[&format!("server {idx}")]), "reply");
        served_by.push(idx);
    }
    let mut counts = [0usize; SERVERS];
    for &i in &served_by {
        counts[i] += 1;
    }
    assert_eq!(
        counts,
        [REQUESTS / SERVERS; SERVERS],
        "spread over the REPs; order served: {served_by:?}"
    );
    // Strict round robin, as libzmq's load balancer does it: every window
    // of SERVERS consecutive requests visits every REP once.
    for w in served_by.windows(SERVERS) {
        let distinct: BTreeSet<_> = w.iter().collect();
        assert_eq!(
            distinct.len(),
            SERVERS,
            "not round-robin; order: {served_by:?}"
        );
    }
}

#[test]
fn our_req_round_robins_over_libzmq_reps_it_connects_to() {
    round_robin_over_lz_reps(Binder::Libzmq);
}

#[test]
fn our_req_round_robins_over_libzmq_reps_connected_to_it() {
    round_robin_over_lz_reps(Binder::Ours);
}
