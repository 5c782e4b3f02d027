//! The readiness descriptor (`Socket::readiness`, libzmq's `ZMQ_FD`) and
//! `Socket::events` (`ZMQ_EVENTS`): one test per rule of the contract in
//! `Socket::readiness`'s docs.

mod util;

use ferrozmq::{Error, Events, SocketType};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use util::*;

/// Whether `fd` is readable within `timeout`.
fn readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The tests run one at a time: the last counts this process's
/// descriptors.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_readable(fd: RawFd) -> bool {
    !readable(fd, Duration::ZERO)
}

/// Rule 1: readable when first made (nothing is known yet); `events`
/// tells, and lowers it when the socket is ready for nothing.
#[test]
fn first_readable_then_lowered_by_events() {
    let _serial = serial();
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    bind_local(&pull);
    let fd = pull.readiness().expect("descriptor").as_raw_fd();
    assert_eq!(
        pull.readiness().expect("again").as_raw_fd(),
        fd,
        "one descriptor per socket"
    );
    assert_eq!(pull.as_raw_fd(), fd);
    assert!(readable(fd, Duration::ZERO));
    assert_eq!(pull.events().expect("events"), Events::NONE);
    assert!(not_readable(fd));
}

/// Rule 2: a message raises it; it stays readable while a message is
/// waiting (level-triggered: reading one of two is not "draining"), and
/// is lowered once `events` finds none.
#[test]
fn level_triggered_while_messages_wait() {
    let _serial = serial();
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let fd = pull.readiness().expect("descriptor").as_raw_fd();
    assert_eq!(pull.events().expect("events"), Events::NONE);
    let push = socket(&ctx, SocketType::Push);
    push.connect(&ep).expect("connect");
    send(&push, "one", "one");
    send(&push, "two", "two");
    assert!(readable(fd, TIMEOUT), "a message raises the descriptor");
    // Both may not be there yet: read until the second has come.
    let mut got = Vec::new();
    while got.len() < 2 {
        assert!(readable(fd, TIMEOUT), "raised while messages wait");
        if pull.events().expect("events").is_readable() {
            assert!(readable(fd, Duration::ZERO), "still readable: level");
            got.push(pull.try_recv().expect("events said IN"));
        }
    }
    assert_eq!(strs(&got[0]), ["one"]);
    assert_eq!(pull.events().expect("events"), Events::NONE);
    assert!(not_readable(fd), "lowered once nothing waits");
}

/// Rule 3: after `WouldBlock`, `events` lowers it, and the next change
/// raises it again; OUT follows `try_send`.
#[test]
fn would_block_then_the_next_change_raises_it() {
    let _serial = serial();
    let ctx = ctx();
    let push = socket(&ctx, SocketType::Push);
    let fd = push.readiness().expect("descriptor").as_raw_fd();
    assert!(matches!(push.try_send("early"), Err(e) if matches!(e.kind(), Error::WouldBlock)));
    assert_eq!(
        push.events().expect("events"),
        Events::NONE,
        "no peer: not writable"
    );
    assert!(not_readable(fd));
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    push.connect(&ep).expect("connect");
    assert!(readable(fd, TIMEOUT), "a peer arriving raises it");
    assert_eq!(push.events().expect("events"), Events::OUT);
    push.try_send("now").expect("events said OUT");
    assert_eq!(strs(&recv(&pull, "now")), ["now"]);
}

/// Close and termination raise it too, and `events` then reports why.
#[test]
fn close_from_another_thread_raises_it() {
    let _serial = serial();
    let ctx = ctx();
    let pull = std::sync::Arc::new(socket(&ctx, SocketType::Pull));
    bind_local(&pull);
    let fd = pull.readiness().expect("descriptor").as_raw_fd();
    assert_eq!(pull.events().expect("events"), Events::NONE);
    let closer = {
        let pull = pull.clone();
        std::thread::spawn(move || pull.close())
    };
    assert!(readable(fd, TIMEOUT), "close raises it");
    closer.join().expect("closer");
    assert!(matches!(pull.events(), Err(Error::SocketClosed)));
}

/// The descriptor is closed with the rest once the socket and its
/// context are gone.
#[test]
fn the_descriptor_is_closed_with_the_context() {
    let _serial = serial();
    let before = fd_count();
    {
        let ctx = ctx();
        let sockets: Vec<_> = (0..4).map(|_| socket(&ctx, SocketType::Pull)).collect();
        for s in &sockets {
            s.readiness().expect("descriptor");
        }
        assert!(fd_count() >= before + 4);
        drop(sockets);
        ctx.term();
    }
    assert_eq!(fd_count(), before, "every descriptor closed");
}
