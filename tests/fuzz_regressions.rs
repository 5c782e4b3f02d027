//! Inputs for the fuzz targets (`fuzz/`, see `ferrozmq::fuzz`) that once
//! crashed a target or that probe edges the fuzzers are slow to reach.
//! Each runs through the same entry point as `cargo fuzz run <target>`,
//! so a regression panics here under plain `cargo test`.
//!
//! To add a crash: copy the bytes of `fuzz/artifacts/<target>/crash-*`
//! into a new case below (`xxd -i` prints them as a C array).

use ferrozmq::fuzz;

/// The 64-byte ZMTP 3.1 NULL greeting.
fn greeting(minor: u8) -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[8] = 0x01;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = minor;
    g[12..16].copy_from_slice(b"NULL");
    g
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ----- frame_decoder: [limit, chunk_seed, stream...] -----

#[test]
fn frame_decoder_edges() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x00",
        // A LONG frame announcing u64::MAX bytes, and one announcing
        // isize::MAX + 1.
        b"\x00\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x00\x07\x02\x80\x00\x00\x00\x00\x00\x00\x00",
        // Limit 0 (selector 1, limit_sel >> 2 == 0): an empty message is
        // fine, one byte is not; commands still pass.
        b"\x01\x00\x00\x00\x04\x05\x04PONG\x00\x01x",
        // Largest limit (u64::MAX) with a multipart message.
        b"\x03\x02\x01\x01a\x01\x00\x00\x01b",
        // Reserved flags right after a complete frame.
        b"\x00\x01\x00\x00\x08",
    ];
    for c in cases {
        fuzz::frame_decoder(c);
    }
}

// ----- command: a command body -----

#[test]
fn command_edges() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\xff",
        b"\x05READY",
        b"\x05READY\x00\x00\x00\x00\x00",
        b"\x05READY\xff",
        b"\x05READY\x0bSocket-Type\xff\xff\xff\xff",
        // ERROR with invalid UTF-8 that grows when made lossless.
        b"\x05ERROR\xff\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff\xfe",
        b"\x04PING\xff\xff0123456789abcdefghij",
        b"\x04PONG",
    ];
    for c in cases {
        fuzz::command(c);
    }
    // A 255-byte ERROR reason made of invalid bytes (lossy decoding
    // triples it, past what ERROR can carry).
    let mut long = b"\x05ERROR\xff".to_vec();
    long.extend_from_slice(&[0xC3; 255]);
    fuzz::command(&long);
}

// ----- session: [config, chunk_seed, time_seed, stream...] -----

#[test]
fn session_edges() {
    let ready_router = b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER";
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        // Heartbeats on, greeting + READY prefixed, a PING asking for the
        // largest TTL (109 minutes), then silence.
        cat(&[&[0x58, 0x00, 0xf3], b"\x04\x07\x04PING\xff\xff"]),
        // Heartbeats with the longest ivl and a zero timeout, 3.0 peer.
        cat(&[&[0x78, 0x00, 0xff], b"\x00\x01x"]),
        // Raw greeting and READY in one-byte chunks, then a PING.
        cat(&[
            &[0x40, 0x00, 0x01],
            &greeting(1),
            ready_router,
            b"\x04\x07\x04PING\x00\x01",
        ]),
        // Limits on, READY over maxmsgsize but under the command floor.
        cat(&[&[0x80, 0x01, 0x01], &greeting(1), ready_router]),
        // A second READY after the handshake.
        cat(&[&[0x18, 0x07, 0x02], ready_router]),
    ];
    for c in &cases {
        fuzz::session(c);
    }
}

// ----- zap_reply: [config, request_id, frame_count, (len, frame)...] -----

#[test]
fn zap_reply_edges() {
    let cases: &[&[u8]] = &[
        b"",
        // An allow whose metadata frame also names a User-Id (in either
        // case): the user id frame's must win, as in libzmq. The peer was
        // known as "mallory" before the fix.
        b"\x00\x09\x07\x00\x031.0\x019\x03200\x02OK\x05alice\x13\x07User-Id\x00\x00\x00\x07mallory",
        b"\x01\x09\x07\x00\x031.0\x019\x03200\x02OK\x05alice\x13\x07user-id\x00\x00\x00\x07mallory",
        // The id with a leading zero names no request (libzmq compares
        // the bytes): the server keeps waiting.
        b"\x02\x07\x07\x00\x031.0\x0207\x03400\x00\x00\x00",
    ];
    for c in cases {
        fuzz::zap_reply(c);
    }
}
