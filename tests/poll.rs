//! `Poller` and `Socket::poll`: ZeroMQ's `zmq_poll`, level-triggered.

mod util;

use ferrozmq::{Error, Events, Message, Poller, SocketType};
use std::time::Duration;
use util::*;

/// Polls until at least one socket is ready, failing after `TIMEOUT`.
fn poll_some(poller: &mut Poller) -> usize {
    let n = poller.poll(Some(TIMEOUT)).expect("poll");
    assert!(n > 0, "nothing became ready within {TIMEOUT:?}");
    n
}

#[test]
fn one_thread_drives_many_req_clients() {
    let ctx = ctx();
    let server = RepServer::start(&ctx, "srv");
    let clients: Vec<_> = (0..8).map(|_| socket(&ctx, SocketType::Req)).collect();
    let mut poller = Poller::new();
    for (i, c) in clients.iter().enumerate() {
        c.connect(&server.endpoint).expect("connect");
        assert_eq!(poller.add(c, Events::IN), i);
    }
    let mut left = vec![5u32; clients.len()];
    for (i, c) in clients.iter().enumerate() {
        send(c, format!("{i}"), "first request");
    }
    while left.iter().any(|&n| n > 0) {
        poll_some(&mut poller);
        for (i, c) in clients.iter().enumerate() {
            if !poller.events(i).is_readable() {
                continue;
            }
            let reply = c.try_recv().expect("a readable REQ has its reply");
            assert_eq!(strs(&reply), vec!["srv".to_string(), format!("{i}")]);
            left[i] -= 1;
            if left[i] > 0 {
                send(c, format!("{i}"), "next request");
            } else {
                poller.modify(i, Events::NONE);
            }
        }
    }
    assert_eq!(server.stop(), 40);
}

#[test]
fn readiness_is_level_triggered() {
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    push.connect(&ep).expect("connect");
    send(&push, "a", "push");
    assert_eq!(
        pull.poll(Events::IN, Some(TIMEOUT)).expect("poll"),
        Events::IN
    );
    // Not consumed: still ready, even with a zero timeout.
    assert_eq!(
        pull.poll(Events::IN, Some(Duration::ZERO)).expect("poll"),
        Events::IN
    );
    assert_eq!(recv(&pull, "message"), Message::from("a"));
    assert_eq!(
        pull.poll(Events::IN, Some(Duration::ZERO)).expect("poll"),
        Events::NONE
    );
}

#[test]
fn timeout_returns_zero() {
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    bind_local(&pull);
    let n = bounded(TIMEOUT, "poll with a 50 ms timeout", move || {
        let mut poller = Poller::new();
        poller.add(&pull, Events::IN);
        poller.poll(Some(Duration::from_millis(50)))
    });
    assert_eq!(n.expect("poll"), 0);
}

#[test]
fn out_follows_the_req_rep_state_machines() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    let mon = req.monitor();
    req.connect(&ep).expect("connect");
    wait_handshakes(&mon, 1);
    let both = Events::IN | Events::OUT;
    // An idle REQ can send, and has nothing to receive.
    assert_eq!(req.poll(both, Some(TIMEOUT)).expect("poll"), Events::OUT);
    // A REP owes nothing yet: neither.
    assert_eq!(
        rep.poll(Events::OUT, Some(Duration::ZERO)).expect("poll"),
        Events::NONE
    );
    send(&req, "q", "request");
    // Waiting for its reply, a REQ may not send.
    assert_eq!(
        req.poll(both, Some(Duration::ZERO)).expect("poll"),
        Events::NONE
    );
    assert_eq!(rep.poll(both, Some(TIMEOUT)).expect("poll"), Events::IN);
    let q = recv(&rep, "request");
    // Owing a reply, a REP can send and may not receive.
    assert_eq!(rep.poll(both, Some(TIMEOUT)).expect("poll"), Events::OUT);
    send(&rep, q, "reply");
    assert_eq!(req.poll(both, Some(TIMEOUT)).expect("poll"), Events::IN);
    assert_eq!(recv(&req, "reply"), Message::from("q"));
    assert_eq!(req.poll(both, Some(TIMEOUT)).expect("poll"), Events::OUT);
}

#[test]
fn push_at_its_hwm_is_not_writable_until_room_frees() {
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(1).unwrap();
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(1).unwrap();
    push.connect(&ep).expect("connect");
    // Fill every queue on the way (pipes and kernel buffers) until a send
    // would block and the I/O thread has nothing left to move.
    let mut sent = 0;
    loop {
        match push.try_send(Message::from(vec![0u8; 64 * 1024])) {
            Ok(()) => sent += 1,
            Err(e) if matches!(e.error, Error::WouldBlock) => {
                if push.poll(Events::OUT, Some(Duration::ZERO)).expect("poll") == Events::NONE {
                    break;
                }
            }
            Err(e) => panic!("send: {}", e.error),
        }
        assert!(sent < 100_000, "a PUSH at HWM 1 never blocked");
    }
    // Draining the receiver makes room all the way back.
    let drained = bounded(TIMEOUT, "drain", move || {
        let mut n = 0;
        while pull.recv_timeout(Duration::from_millis(500)).is_ok() {
            n += 1;
        }
        n
    });
    assert!(drained >= 1);
    assert_eq!(
        push.poll(Events::OUT, Some(TIMEOUT)).expect("poll"),
        Events::OUT
    );
}

#[test]
fn a_lost_request_is_readable_and_recv_reports_it() {
    let ctx = util::ctx();
    let server_ctx = util::ctx();
    let rep = socket(&server_ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    let mon = req.monitor();
    req.connect(&ep).expect("connect");
    wait_handshakes(&mon, 1);
    send(&req, "q", "request");
    recv(&rep, "request");
    // The server goes away without replying.
    drop(rep);
    server_ctx.term();
    assert_eq!(
        req.poll(Events::IN, Some(TIMEOUT)).expect("poll"),
        Events::IN
    );
    assert!(matches!(req.try_recv(), Err(Error::PeerLost { .. })));
}

#[test]
fn router_with_more_connections_than_a_thread_polls_itself() {
    // Above 64 connections the poller waits for the I/O thread's wake-up
    // instead of polling every connection; messages must still arrive.
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let mon = router.monitor();
    let dealers: Vec<_> = (0..70).map(|_| socket(&ctx, SocketType::Dealer)).collect();
    for d in &dealers {
        d.connect(&ep).expect("connect");
    }
    wait_handshakes(&mon, dealers.len());
    let mut poller = Poller::new();
    poller.add(&router, Events::IN);
    for (i, d) in dealers.iter().enumerate() {
        send(d, format!("{i}"), "dealer");
    }
    let mut got = 0;
    while got < dealers.len() {
        poll_some(&mut poller);
        while let Ok(m) = router.try_recv() {
            assert_eq!(m.len(), 2, "routing id and body");
            got += 1;
        }
    }
}

#[test]
fn terminating_the_context_ends_a_blocked_poll() {
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    bind_local(&pull);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let waiter = std::thread::spawn(move || {
        let mut poller = Poller::new();
        poller.add(&pull, Events::IN);
        tx.send(()).expect("signal");
        poller.poll(None).map(|_| ())
    });
    rx.recv_timeout(TIMEOUT).expect("poller started");
    ctx.term();
    let result = bounded(TIMEOUT, "the blocked poll", move || {
        waiter.join().expect("poller thread")
    });
    assert!(matches!(result, Err(Error::ContextTerminated)));
}

#[test]
fn sockets_of_different_contexts_in_one_poller() {
    let (a, b) = (ctx(), ctx());
    let pull_a = socket(&a, SocketType::Pull);
    let pull_b = socket(&b, SocketType::Pull);
    let push_b = socket(&b, SocketType::Push);
    bind_local(&pull_a);
    push_b.connect(&bind_local(&pull_b)).expect("connect");
    let mut poller = Poller::new();
    poller.add(&pull_a, Events::IN);
    poller.add(&pull_b, Events::IN);
    // Adding again changes events and keeps the index.
    assert_eq!(poller.add(&pull_b, Events::IN), 1);
    assert_eq!(poller.len(), 2);
    send(&push_b, "x", "push");
    assert_eq!(poll_some(&mut poller), 1);
    assert!(poller.events(1).is_readable());
    assert!(poller.events(0).is_empty());
    assert!(poller.events(7).is_empty());
}

/// The guide's recovery move with a poller that lives on: remove a socket,
/// close it, add a fresh one, and poll on. A socket dropped while still
/// added is reported, not polled forever.
#[test]
fn sockets_are_removed_and_replaced_while_the_poller_lives() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let mut poller = Poller::new();
    let mut req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    let token = poller.add(&req, Events::IN);
    let other = socket(&ctx, SocketType::Pull);
    let other_token = poller.add(&other, Events::IN);
    assert_eq!((token, other_token), (0, 1));
    for round in 0..3 {
        send(&req, format!("ping {round}"), "request");
        let request = recv(&rep, "request");
        send(&rep, request, "reply");
        assert_eq!(poll_some(&mut poller), 1);
        assert_eq!(
            poller.ready().collect::<Vec<_>>(),
            [(token, Events::IN)],
            "round {round}"
        );
        recv(&req, "reply");
        // Recovery: out with the old socket, in with a fresh one.
        assert!(poller.remove(token));
        assert!(!poller.remove(token), "removed once");
        drop(req);
        req = socket(&ctx, SocketType::Req);
        req.connect(&ep).expect("connect");
        assert_eq!(
            poller.add(&req, Events::IN),
            token,
            "the free token is reused"
        );
    }
    assert_eq!(poller.events(other_token), Events::NONE);
    // Dropped while added: poll says so instead of waiting on it.
    drop(other);
    assert!(matches!(
        poller.poll(Some(Duration::from_millis(10))),
        Err(ferrozmq::Error::SocketClosed)
    ));
    poller.remove(other_token);
    assert_eq!(poller.len(), 1);
}
