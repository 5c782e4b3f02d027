//! DEALER, ROUTER and their envelopes against libzmq 4.3.4 (RFC 28):
//! generated and explicit routing ids on both sides, REQ -> ROUTER and
//! DEALER -> REP, each with either side binding.

mod util;

use ferrozmq::{Context, Error, SocketType};
use util::body;
use util::interop::*;

/// True for the routing ids libzmq generates (and ours imitates): five
/// bytes, the first zero.
fn is_generated_id(id: &[u8]) -> bool {
    id.len() == 5 && id[0] == 0
}

// ----- our DEALERs, libzmq ROUTER -----

/// Two of our DEALERs and one libzmq ROUTER. `ids` are the DEALERs'
/// routing ids, `None` to let the ROUTER generate them.
fn our_dealers_lz_router(binder: Binder, ids: [Option<&'static str>; 2], any: &str) {
    check_libzmq_version();
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let router = lz_socket(&zctx, zmq::ROUTER);
    router.set_router_mandatory(true).unwrap();
    // A ROUTER sends its own id in READY too; a DEALER must accept it.
    router.set_identity(b"lz-router").unwrap();
    let dealers: Vec<_> = ids
        .iter()
        .map(|id| {
            let d = our_socket(&ctx, SocketType::Dealer);
            if let Some(id) = id {
                d.set_routing_id(id.as_bytes().to_vec()).unwrap();
            }
            d
        })
        .collect();
    match binder {
        Binder::Libzmq => {
            let ep = lz_bind_at(&router, any);
            for d in &dealers {
                d.connect(&ep).unwrap();
            }
        }
        Binder::Ours => {
            for d in &dealers {
                router.connect(&d.bind(any).unwrap()).unwrap();
            }
        }
    }

    // Each DEALER speaks first, so the ROUTER learns its id.
    let mut learned = Vec::new();
    for (i, d) in dealers.iter().enumerate() {
        our_send(d, &frames(&[&format!("hello from {i}"), "second frame"]));
        let got = lz_recv(&router);
        assert_eq!(got.len(), 3, "ROUTER sees [id, body...]: {got:?}");
        assert_eq!(
            &got[1..],
            &frames(&[&format!("hello from {i}"), "second frame"])[..]
        );
        match ids[i] {
            Some(id) => assert_eq!(got[0], id.as_bytes(), "explicit id of dealer {i}"),
            None => assert!(is_generated_id(&got[0]), "libzmq-generated id {:?}", got[0]),
        }
        learned.push(got[0].clone());
    }
    assert_ne!(learned[0], learned[1], "distinct peers, distinct ids");

    // The ROUTER routes by those ids, in the opposite order.
    for i in [1, 0] {
        let mut m = vec![learned[i].clone()];
        m.extend(frames(&[&format!("for dealer {i}"), ""]));
        lz_send(&router, &m);
    }
    for (i, d) in dealers.iter().enumerate() {
        assert_frames_eq(
            &our_recv(d),
            &frames(&[&format!("for dealer {i}"), ""]),
            "DEALER got its own message",
        );
    }
    // An unknown id is unroutable (ROUTER_MANDATORY makes that visible).
    assert_eq!(
        router.send_multipart(["nobody", "x"], 0),
        Err(zmq::Error::EHOSTUNREACH)
    );
}

#[test]
fn dealer_router_over_ipc_both_ways() {
    for binder in BOTH {
        our_dealers_lz_router(binder, [Some("alpha"), None], IPC_ANY);
        lz_dealers_our_router(binder, [None, Some("beta")], IPC_ANY);
    }
}

#[test]
fn generated_ids_our_dealers_connect_to_libzmq_router() {
    our_dealers_lz_router(Binder::Libzmq, [None, None], ANY);
}

#[test]
fn generated_ids_libzmq_router_connects_to_our_dealers() {
    our_dealers_lz_router(Binder::Ours, [None, None], ANY);
}

#[test]
fn explicit_ids_our_dealers_connect_to_libzmq_router() {
    our_dealers_lz_router(Binder::Libzmq, [Some("alpha"), Some("beta")], ANY);
}

#[test]
fn explicit_ids_libzmq_router_connects_to_our_dealers() {
    our_dealers_lz_router(Binder::Ours, [Some("alpha"), Some("beta")], ANY);
}

// ----- libzmq DEALERs, our ROUTER -----

fn lz_dealers_our_router(binder: Binder, ids: [Option<&'static str>; 2], any: &str) {
    check_libzmq_version();
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let router = our_socket(&ctx, SocketType::Router);
    router.set_router_mandatory(true).unwrap();
    router.set_routing_id(&b"our-router"[..]).unwrap();
    let dealers: Vec<_> = ids
        .iter()
        .map(|id| {
            let d = lz_socket(&zctx, zmq::DEALER);
            if let Some(id) = id {
                d.set_identity(id.as_bytes()).unwrap();
            }
            d
        })
        .collect();
    match binder {
        Binder::Ours => {
            let ep = router.bind(any).unwrap();
            for d in &dealers {
                d.connect(&ep).unwrap();
            }
        }
        Binder::Libzmq => {
            for d in &dealers {
                router.connect(&lz_bind_at(d, any)).unwrap();
            }
        }
    }

    let mut learned = Vec::new();
    for (i, d) in dealers.iter().enumerate() {
        lz_send(d, &frames(&[&format!("hello from {i}"), "second frame"]));
        let got = our_recv(&router);
        assert_eq!(got.len(), 3, "ROUTER sees [id, body...]: {got:?}");
        assert_eq!(
            &got[1..],
            &frames(&[&format!("hello from {i}"), "second frame"])[..]
        );
        match ids[i] {
            Some(id) => assert_eq!(got[0], id.as_bytes(), "explicit id of dealer {i}"),
            None => assert!(is_generated_id(&got[0]), "our generated id {:?}", got[0]),
        }
        learned.push(got[0].clone());
    }
    assert_ne!(learned[0], learned[1], "distinct peers, distinct ids");

    for i in [1, 0] {
        let mut m = vec![learned[i].clone()];
        m.extend(frames(&[&format!("for dealer {i}"), ""]));
        our_send(&router, &m);
    }
    for (i, d) in dealers.iter().enumerate() {
        assert_frames_eq(
            &lz_recv(d),
            &frames(&[&format!("for dealer {i}"), ""]),
            "DEALER got its own message",
        );
    }
    let err = router
        .send_multipart([&b"nobody"[..], b"x"])
        .expect_err("unknown id with router_mandatory");
    assert!(matches!(err.error, Error::HostUnreachable), "{err}");
}

#[test]
fn generated_ids_libzmq_dealers_connect_to_our_router() {
    lz_dealers_our_router(Binder::Ours, [None, None], ANY);
}

#[test]
fn generated_ids_our_router_connects_to_libzmq_dealers() {
    lz_dealers_our_router(Binder::Libzmq, [None, None], ANY);
}

#[test]
fn explicit_ids_libzmq_dealers_connect_to_our_router() {
    lz_dealers_our_router(Binder::Ours, [Some("alpha"), Some("beta")], ANY);
}

#[test]
fn explicit_ids_our_router_connects_to_libzmq_dealers() {
    lz_dealers_our_router(Binder::Libzmq, [Some("alpha"), Some("beta")], ANY);
}

// ----- REQ -> ROUTER -----

/// The ROUTER sees `[id, "", body...]`; it answers `[id, "", reply...]`
/// and the REQ gets `[reply...]`.
fn check_req_router_envelope(
    req_send: &dyn Fn(&[Vec<u8>]),
    req_recv: &dyn Fn() -> Vec<Vec<u8>>,
    router_send: &dyn Fn(&[Vec<u8>]),
    router_recv: &dyn Fn() -> Vec<Vec<u8>>,
    req_id: Option<&[u8]>,
) {
    for (n, body) in [
        frames(&["hello"]),
        frames(&["a", "", "c"]),
        vec![body(300, 1), Vec::new()],
    ]
    .into_iter()
    .enumerate()
    {
        req_send(&body);
        let got = router_recv();
        assert!(got.len() == body.len() + 2, "request {n}: {}", shape(&got));
        match req_id {
            Some(id) => assert_eq!(got[0], id, "REQ's explicit id"),
            None => assert!(is_generated_id(&got[0]), "generated id {:?}", got[0]),
        }
        assert!(got[1].is_empty(), "request {n}: delimiter after the id");
        assert_frames_eq(&got[2..], &body, "request body");

        let mut reply = vec![got[0].clone(), Vec::new()];
        reply.extend(frames(&["reply", &n.to_string()]));
        router_send(&reply);
        assert_frames_eq(&req_recv(), &frames(&["reply", &n.to_string()]), "reply");
    }
}

#[test]
fn libzmq_req_to_our_router() {
    for binder in BOTH {
        for id in [None, Some(&b"req-1"[..])] {
            let l = link_with(
                SocketType::Router,
                zmq::REQ,
                binder,
                |_| {},
                |s| {
                    if let Some(id) = id {
                        s.set_identity(id).unwrap();
                    }
                },
            );
            check_req_router_envelope(
                &|m| lz_send(&l.lz, m),
                &|| lz_recv(&l.lz),
                &|m| our_send(&l.ours, m),
                &|| our_recv(&l.ours),
                id,
            );
        }
    }
}

#[test]
fn our_req_to_libzmq_router() {
    for binder in BOTH {
        for id in [None, Some(&b"req-1"[..])] {
            let l = link_with(
                SocketType::Req,
                zmq::ROUTER,
                binder,
                |s| {
                    if let Some(id) = id {
                        s.set_routing_id(id.to_vec()).unwrap();
                    }
                },
                |_| {},
            );
            check_req_router_envelope(
                &|m| our_send(&l.ours, m),
                &|| our_recv(&l.ours),
                &|m| lz_send(&l.lz, m),
                &|| lz_recv(&l.lz),
                id,
            );
        }
    }
}

// ----- DEALER -> REP -----

/// A DEALER talking to a REP sends `["", body...]` and gets
/// `["", reply...]`; any frames before the delimiter are an envelope the
/// REP hands back unchanged.
fn check_dealer_rep_envelope(
    dealer_send: &dyn Fn(&[Vec<u8>]),
    dealer_recv: &dyn Fn() -> Vec<Vec<u8>>,
    rep_send: &dyn Fn(&[Vec<u8>]),
    rep_recv: &dyn Fn() -> Vec<Vec<u8>>,
) {
    let cases: Vec<(Frames, Frames)> = vec![
        (Vec::new(), frames(&["hello"])),
        (Vec::new(), frames(&["a", "", "c"])),
        (Vec::new(), vec![body(256, 2)]),
        (frames(&["hop-2", "hop-1"]), frames(&["routed"])),
    ];
    for (envelope, body) in cases {
        let mut request = envelope.clone();
        request.push(Vec::new());
        request.extend(body.iter().cloned());
        dealer_send(&request);
        assert_frames_eq(&rep_recv(), &body, "REP sees the body only");
        rep_send(&frames(&["reply"]));
        let mut want = envelope.clone();
        want.push(Vec::new());
        want.extend(frames(&["reply"]));
        assert_frames_eq(&dealer_recv(), &want, "DEALER gets [envelope, \"\", reply]");
    }
}

#[test]
fn libzmq_dealer_to_our_rep() {
    for binder in BOTH {
        let l = link(SocketType::Rep, zmq::DEALER, binder);
        check_dealer_rep_envelope(
            &|m| lz_send(&l.lz, m),
            &|| lz_recv(&l.lz),
            &|m| our_send(&l.ours, m),
            &|| our_recv(&l.ours),
        );
    }
}

#[test]
fn our_dealer_to_libzmq_rep() {
    for binder in BOTH {
        let l = link(SocketType::Dealer, zmq::REP, binder);
        check_dealer_rep_envelope(
            &|m| our_send(&l.ours, m),
            &|| our_recv(&l.ours),
            &|m| lz_send(&l.lz, m),
            &|| lz_recv(&l.lz),
        );
    }
}
