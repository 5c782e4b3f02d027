//! Micro-benchmarks of the sans-IO ZMTP core ([`ferrozmq::zmtp::Session`]):
//! no sockets, no threads, so these measure the codec alone.
//!
//! - `encode`: `send_message` + `output` + `consume_output` of one message
//!   on a session past its handshake;
//! - `decode`: `handle_input` + `poll_event` over a buffer of back-to-back
//!   messages (about 256 KiB of payload per iteration);
//! - `handshake`: two fresh sessions exchanging greetings and READYs until
//!   both are ready.
//!
//! Each of `encode` and `decode` is reported twice, once in bytes of payload
//! per second (`…/bytes`, decimal GB/s) and once in messages per second
//! (`…/msgs`): criterion shows one throughput unit per benchmark.
//!
//! ```text
//! cargo bench --bench codec
//! cargo bench --bench codec -- decode/1KiB    # a filter
//! ```

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrozmq::zmtp::{Session, SessionConfig, SessionEvent};
use ferrozmq::{Message, SocketType};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

/// Payload decoded per `decode` iteration, so that small messages are
/// measured in bulk, as they arrive from a socket read.
const DECODE_BATCH_BYTES: usize = 256 * 1024;

fn config(socket_type: SocketType) -> SessionConfig {
    SessionConfig::new(socket_type)
}

/// Moves all of `from`'s output into `to` and lets `to` process it.
/// Returns whether anything moved.
fn transfer(from: &mut Session, to: &mut Session, inbox: &mut BytesMut, now: Instant) -> bool {
    let n = from.output().len();
    if n == 0 {
        return false;
    }
    inbox.extend_from_slice(from.output());
    from.consume_output(n);
    to.handle_input(inbox, now).expect("handshake input");
    true
}

/// Two sessions of types `a` and `b`, wired back to back until both have
/// completed the handshake. Their `Ready` events are consumed.
fn handshake(a: SocketType, b: SocketType, now: Instant) -> (Session, Session) {
    let mut sa = Session::new(config(a), now);
    let mut sb = Session::new(config(b), now);
    let (mut ina, mut inb) = (BytesMut::new(), BytesMut::new());
    loop {
        let moved_ab = transfer(&mut sa, &mut sb, &mut inb, now);
        let moved_ba = transfer(&mut sb, &mut sa, &mut ina, now);
        if !moved_ab && !moved_ba {
            break;
        }
    }
    assert!(sa.is_ready() && sb.is_ready(), "handshake did not complete");
    for s in [&mut sa, &mut sb] {
        assert!(matches!(s.poll_event(), Some(SessionEvent::Ready(_))));
    }
    (sa, sb)
}

fn encode(c: &mut Criterion) {
    let now = Instant::now();
    for unit in ["bytes", "msgs"] {
        let mut group = c.benchmark_group("encode");
        for (size, label) in SIZES {
            group.throughput(if unit == "bytes" {
                Throughput::BytesDecimal(size as u64)
            } else {
                Throughput::Elements(1)
            });
            let (mut tx, _rx) = handshake(SocketType::Push, SocketType::Pull, now);
            let msg = Message::from(Bytes::from(vec![0xa5u8; size]));
            group.bench_function(format!("{label}/{unit}"), |b| {
                b.iter(|| {
                    tx.send_message(black_box(&msg));
                    let out = tx.output();
                    let n = black_box(out).len();
                    tx.consume_output(n);
                })
            });
        }
        group.finish();
    }
}

fn decode(c: &mut Criterion) {
    let now = Instant::now();
    for unit in ["bytes", "msgs"] {
        let mut group = c.benchmark_group("decode");
        for (size, label) in SIZES {
            let count = (DECODE_BATCH_BYTES / size).max(1);
            group.throughput(if unit == "bytes" {
                Throughput::BytesDecimal((size * count) as u64)
            } else {
                Throughput::Elements(count as u64)
            });
            let (mut tx, mut rx) = handshake(SocketType::Push, SocketType::Pull, now);
            let msg = Message::from(Bytes::from(vec![0x5au8; size]));
            for _ in 0..count {
                tx.send_message(&msg);
            }
            let wire = Bytes::copy_from_slice(tx.output());
            group.bench_function(format!("{label}/{unit}"), |b| {
                b.iter_batched(
                    || BytesMut::from(&wire[..]),
                    |mut input| {
                        rx.handle_input(&mut input, now).expect("decode");
                        let mut got = 0;
                        while let Some(ev) = rx.poll_event() {
                            black_box(&ev);
                            got += 1;
                        }
                        assert_eq!(got, count, "decoded message count");
                        assert!(input.is_empty(), "input left over");
                        got
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        group.finish();
    }
}

fn handshakes(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("req-rep", |b| {
        b.iter(|| black_box(handshake(SocketType::Req, SocketType::Rep, now)))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = quick();
    targets = encode, decode, handshakes
}
criterion_main!(benches);
