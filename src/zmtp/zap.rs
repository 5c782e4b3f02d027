//! ZAP's wire form (RFC 27): the request the I/O thread sends to a
//! handler bound on `inproc://zeromq.zap.01`, and the reply it reads
//! back. Both travel through a DEALER, so each starts with the empty
//! delimiter a REP (or a ROUTER handler that keeps envelopes) expects.
//!
//! ```text
//! request: "" "1.0" request-id domain address identity mechanism credentials...
//! reply:   "" "1.0" request-id status-code status-text user-id metadata
//! ```
//!
//! Credentials are none for NULL, the username and the password for
//! PLAIN, and the client's 32-byte public key for CURVE. The request id
//! is ours to choose: a decimal counter, which matches the reply to the
//! waiting connection.

use super::command::Metadata;
use super::mechanism::{Credentials, ZapAnswer, ZapReply, ZapRequest};
use crate::error::ProtocolError;
use crate::message::Message;
use bytes::Bytes;

/// The inproc name ZAP handlers bind (`inproc://zeromq.zap.01`).
pub const ZAP_INPROC_NAME: &str = "zeromq.zap.01";

/// The only version of RFC 27.
const VERSION: &[u8] = b"1.0";

/// The request `id` as RFC 27's frames.
pub fn encode_request(id: u64, request: &ZapRequest) -> Message {
    let mut frames = vec![
        Bytes::new(),
        Bytes::from_static(VERSION),
        Bytes::from(id.to_string()),
        Bytes::from(request.domain.clone()),
        Bytes::from(wire_address(&request.address)),
        request.routing_id.clone(),
        Bytes::from_static(request.mechanism.as_bytes()),
    ];
    match &request.credentials {
        Credentials::Null => {}
        Credentials::Plain { username, password } => {
            frames.push(username.clone());
            frames.push(Bytes::copy_from_slice(password.expose()));
        }
        Credentials::Curve { public_key } => {
            frames.push(Bytes::copy_from_slice(public_key.as_bytes()));
        }
    }
    Message::from(frames)
}

/// The address as libzmq puts it in a request: the peer's IP alone for
/// TCP (handlers compare it with allow and deny lists), the endpoint
/// otherwise.
fn wire_address(address: &str) -> String {
    let Some(rest) = address.strip_prefix("tcp://") else {
        return address.to_owned();
    };
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    match rest.rsplit_once(':') {
        Some((host, _port)) => host.to_owned(),
        None => rest.to_owned(),
    }
}

/// The request id of a reply: exactly the decimal we wrote, so "07" or
/// "+7" names no request (libzmq compares the bytes, where `u64`'s parser
/// would accept both).
fn request_id(frame: &[u8]) -> Option<u64> {
    let canonical = match frame {
        [b'0'] => true,
        [first, ..] => *first != b'0' && frame.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(frame).ok()?.parse().ok()
}

/// Why a reply could not be matched to a request at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedReply;

/// A handler's reply: the request id it answers and what it means for
/// that connection. A reply that names a request but breaks RFC 27
/// otherwise fails that connection ([`ZapAnswer::Failed`]); one whose
/// request id cannot be read matches none.
pub fn parse_reply(msg: &Message) -> Result<(u64, ZapAnswer), UnmatchedReply> {
    let frames = msg.frames();
    let id = frames
        .get(2)
        .and_then(|f| request_id(f))
        .ok_or(UnmatchedReply)?;
    let failed = |why| Ok((id, ZapAnswer::Failed(ProtocolError::ZapFailed(why))));
    let [delimiter, version, _, status, text, user_id, metadata] = frames else {
        return failed("ZAP reply has not 7 frames");
    };
    if !delimiter.is_empty() {
        return failed("ZAP reply without the empty delimiter");
    }
    if version != VERSION {
        return failed("ZAP reply version is not 1.0");
    }
    let Ok(metadata) = Metadata::parse(metadata.clone()) else {
        return failed("ZAP reply metadata is malformed");
    };
    let reply = match &status[..] {
        b"200" => ZapReply::Allow {
            user_id: user_id.clone(),
        },
        b"300" | b"400" | b"500" => ZapReply::Deny {
            status: status.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')),
            text: String::from_utf8_lossy(text).into_owned(),
        },
        _ => return failed("ZAP reply status code is not 200, 300, 400 or 500"),
    };
    Ok((id, ZapAnswer::Reply { reply, metadata }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_the_decimal_we_wrote() {
        assert_eq!(request_id(b"0"), Some(0));
        assert_eq!(request_id(b"7"), Some(7));
        assert_eq!(request_id(b"18446744073709551615"), Some(u64::MAX));
        for other in [
            &b""[..],
            b"07",
            b"+7",
            b"-7",
            b" 7",
            b"7 ",
            b"0x7",
            b"18446744073709551616",
        ] {
            assert_eq!(request_id(other), None, "{other:?}");
        }
    }
    use crate::zmtp::mechanism::{CurvePublicKey, SecretBytes};

    fn request(credentials: Credentials, mechanism: &'static str) -> ZapRequest {
        ZapRequest {
            domain: "global".into(),
            address: "tcp://127.0.0.1:5555".into(),
            routing_id: Bytes::from_static(b"srv"),
            mechanism,
            credentials,
        }
    }

    fn strs(m: &Message) -> Vec<Vec<u8>> {
        m.frames().iter().map(|f| f.to_vec()).collect()
    }

    #[test]
    fn requests_carry_rfc_27_frames() {
        let plain = Credentials::Plain {
            username: Bytes::from_static(b"admin"),
            password: SecretBytes::new(b"secret".to_vec()),
        };
        let m = encode_request(7, &request(plain, "PLAIN"));
        let want: Vec<&[u8]> = vec![
            b"",
            b"1.0",
            b"7",
            b"global",
            b"127.0.0.1",
            b"srv",
            b"PLAIN",
            b"admin",
            b"secret",
        ];
        assert_eq!(strs(&m), want);
        let key = CurvePublicKey([9; 32]);
        let m = encode_request(8, &request(Credentials::Curve { public_key: key }, "CURVE"));
        assert_eq!(m.frames().len(), 8);
        assert_eq!(&m.frames()[7][..], &[9; 32]);
        let m = encode_request(9, &request(Credentials::Null, "NULL"));
        assert_eq!(m.frames().len(), 7);
    }

    #[test]
    fn addresses_as_libzmq_sends_them() {
        assert_eq!(wire_address("tcp://10.0.0.1:80"), "10.0.0.1");
        assert_eq!(wire_address("tcp://[::1]:80"), "::1");
        assert_eq!(wire_address("ipc:///tmp/x"), "ipc:///tmp/x");
    }

    fn reply(frames: &[&[u8]]) -> Message {
        Message::from(
            frames
                .iter()
                .map(|f| Bytes::copy_from_slice(f))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn replies_allow_deny_or_fail_the_connection() {
        let mut md = bytes::BytesMut::new();
        let mut props = Metadata::new();
        props.push("Hello", "World");
        props.encode(&mut md);
        let (id, answer) =
            parse_reply(&reply(&[b"", b"1.0", b"3", b"200", b"OK", b"bob", &md])).unwrap();
        assert_eq!(id, 3);
        match answer {
            ZapAnswer::Reply {
                reply: ZapReply::Allow { user_id },
                metadata,
            } => {
                assert_eq!(user_id, "bob");
                assert_eq!(metadata.get("Hello").map(|v| &v[..]), Some(&b"World"[..]));
            }
            other => panic!("{other:?}"),
        }
        for code in [300u16, 400, 500] {
            let c = code.to_string();
            let (_, answer) =
                parse_reply(&reply(&[b"", b"1.0", b"4", c.as_bytes(), b"no", b"", b""])).unwrap();
            assert!(
                matches!(answer, ZapAnswer::Reply { reply: ZapReply::Deny { status, ref text }, .. }
                    if status == code && text == "no"),
                "{answer:?}"
            );
        }
        for bad in [
            reply(&[b"", b"1.0", b"5", b"200", b"OK", b""]),
            reply(&[b"", b"2.0", b"5", b"200", b"OK", b"", b""]),
            reply(&[b"x", b"1.0", b"5", b"200", b"OK", b"", b""]),
            reply(&[b"", b"1.0", b"5", b"201", b"OK", b"", b""]),
            reply(&[b"", b"1.0", b"5", b"200", b"OK", b"", b"\x05"]),
        ] {
            let (id, answer) = parse_reply(&bad).unwrap();
            assert_eq!(id, 5);
            assert!(
                matches!(answer, ZapAnswer::Failed(ProtocolError::ZapFailed(_))),
                "{answer:?}"
            );
        }
        assert!(parse_reply(&reply(&[b"", b"1.0"])).is_err());
        assert!(parse_reply(&reply(&[b"", b"1.0", b"x1", b"200", b"", b"", b""])).is_err());
    }
}
