//! ZMTP commands (RFC 23 and 37) and READY metadata.
//!
//! A command body is a one-byte name length, the name, and command data.
//! Parsing works on the frame body as [`Bytes`], so property values and
//! ping contexts are zero-copy slices of the received buffer.

use super::frame;
use crate::error::ProtocolError;
use bytes::{BufMut, Bytes, BytesMut};

const READY: &[u8] = b"READY";
const ERROR: &[u8] = b"ERROR";
const PING: &[u8] = b"PING";
const PONG: &[u8] = b"PONG";

/// The longest ping context a peer may send (RFC 37); longer ones are
/// truncated when echoed, as libzmq does.
pub const MAX_PING_CONTEXT: usize = 16;

/// Name of the socket-type property.
pub const PROP_SOCKET_TYPE: &str = "Socket-Type";
/// Name of the identity (routing id) property.
pub const PROP_IDENTITY: &str = "Identity";

/// A command frame's meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// End of the NULL handshake, with the sender's metadata.
    Ready(Metadata),
    /// The sender refuses the connection, with a reason.
    Error(String),
    /// Heartbeat request (ZMTP 3.1).
    Ping {
        /// How long the receiver may wait for traffic, in deciseconds.
        ttl: u16,
        /// Opaque bytes to echo back in PONG.
        context: Bytes,
    },
    /// Heartbeat reply (ZMTP 3.1).
    Pong {
        /// The context of the PING it answers.
        context: Bytes,
    },
    /// A command we do not implement; RFC 37 says to ignore these.
    Unknown {
        /// The command name.
        name: Bytes,
        /// Everything after the name.
        data: Bytes,
    },
}

impl Command {
    /// Parses a command frame body.
    pub fn parse(body: Bytes) -> Result<Command, ProtocolError> {
        let Some(&name_len) = body.first() else {
            return Err(ProtocolError::MalformedCommand("empty command frame"));
        };
        let name_end = 1 + usize::from(name_len);
        if body.len() < name_end {
            return Err(ProtocolError::MalformedCommand(
                "command name longer than frame",
            ));
        }
        let name = &body[1..name_end];
        let data = &body[name_end..];
        Ok(match name {
            READY => Command::Ready(Metadata::parse(body.slice(name_end..))?),
            ERROR => {
                let Some((&len, rest)) = data.split_first() else {
                    return Err(ProtocolError::MalformedCommand("ERROR without reason"));
                };
                let Some(reason) = rest.get(..usize::from(len)) else {
                    return Err(ProtocolError::MalformedCommand(
                        "ERROR reason longer than frame",
                    ));
                };
                Command::Error(String::from_utf8_lossy(reason).into_owned())
            }
            PING => {
                let Some(&[hi, lo]) = data.get(..2) else {
                    return Err(ProtocolError::MalformedCommand("PING without TTL"));
                };
                Command::Ping {
                    ttl: u16::from_be_bytes([hi, lo]),
                    context: body.slice(name_end + 2..),
                }
            }
            PONG => Command::Pong {
                context: body.slice(name_end..),
            },
            _ => Command::Unknown {
                name: body.slice(1..name_end),
                data: body.slice(name_end..),
            },
        })
    }

    /// The command name, as on the wire.
    pub fn name(&self) -> &[u8] {
        match self {
            Command::Ready(_) => READY,
            Command::Error(_) => ERROR,
            Command::Ping { .. } => PING,
            Command::Pong { .. } => PONG,
            Command::Unknown { name, .. } => name,
        }
    }

    /// Appends the whole command frame (header and body) to `out`.
    ///
    /// Fields longer than the wire format allows (a name or ERROR reason
    /// over 255 bytes, a PING context over 16) are truncated.
    pub fn encode(&self, out: &mut BytesMut) {
        let name = &self.name()[..self.name().len().min(255)];
        let reason = match self {
            Command::Error(reason) => truncate_utf8(reason, 255),
            _ => "",
        };
        let data_len = match self {
            Command::Ready(md) => md.encoded_len(),
            Command::Error(_) => 1 + reason.len(),
            Command::Ping { context, .. } => 2 + context.len().min(MAX_PING_CONTEXT),
            Command::Pong { context } => context.len(),
            Command::Unknown { data, .. } => data.len(),
        };
        let body_len = 1 + name.len() + data_len;
        out.reserve(frame::header_len(body_len) + body_len);
        frame::encode_header(out, body_len, false, true);
        out.put_u8(name.len() as u8);
        out.put_slice(name);
        match self {
            Command::Ready(md) => md.encode(out),
            Command::Error(_) => {
                out.put_u8(reason.len() as u8);
                out.put_slice(reason.as_bytes());
            }
            Command::Ping { ttl, context } => {
                out.put_u16(*ttl);
                out.put_slice(&context[..context.len().min(MAX_PING_CONTEXT)]);
            }
            Command::Pong { context } => out.put_slice(context),
            Command::Unknown { data, .. } => out.put_slice(data),
        }
    }

    /// The command as a standalone frame.
    pub fn to_frame_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Properties of a READY command: name/value pairs in wire order.
///
/// Names compare case-insensitively (RFC 23); values are opaque bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    props: Vec<(Bytes, Bytes)>,
}

impl Metadata {
    /// No properties.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Appends a property. Names longer than 255 bytes are truncated when
    /// encoded.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.props.push((name.into(), value.into()));
    }

    /// The value of the first property called `name`, ignoring case.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// All properties, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.props.iter().map(|(n, v)| (n, v))
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        self.props.len()
    }

    /// True when there are no properties.
    pub fn is_empty(&self) -> bool {
        self.props.is_empty()
    }

    /// Parses the property list that follows a READY name. Every byte must
    /// belong to a property: truncated names, lengths or values are errors.
    pub fn parse(data: Bytes) -> Result<Metadata, ProtocolError> {
        let mut props = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let name_len = usize::from(data[pos]);
            let name_start = pos + 1;
            let name_end = name_start + name_len;
            let Some(len_bytes) = data.get(name_end..name_end + 4) else {
                return Err(ProtocolError::MalformedCommand(
                    "property truncated before its value length",
                ));
            };
            let mut len4 = [0u8; 4];
            len4.copy_from_slice(len_bytes);
            let value_len = u32::from_be_bytes(len4);
            let value_start = name_end + 4;
            let value_end = usize::try_from(value_len)
                .ok()
                .and_then(|l| value_start.checked_add(l))
                .filter(|&end| end <= data.len())
                .ok_or(ProtocolError::MalformedCommand(
                    "property value longer than command",
                ))?;
            props.push((
                data.slice(name_start..name_end),
                data.slice(value_start..value_end),
            ));
            pos = value_end;
        }
        Ok(Metadata { props })
    }

    /// Bytes taken by [`encode`](Self::encode).
    pub fn encoded_len(&self) -> usize {
        self.props
            .iter()
            .map(|(n, v)| 1 + n.len().min(255) + 4 + v.len())
            .sum()
    }

    /// Appends the property list in wire form.
    pub fn encode(&self, out: &mut BytesMut) {
        for (name, value) in &self.props {
            let name = &name[..name.len().min(255)];
            out.put_u8(name.len() as u8);
            out.put_slice(name);
            // Values above 4 GiB cannot be expressed; nothing we send comes
            // close (routing ids are at most 255 bytes).
            out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
            out.put_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(props: &[(&'static str, &'static [u8])]) -> Command {
        let mut md = Metadata::new();
        for &(n, v) in props {
            md.push(n, v);
        }
        Command::Ready(md)
    }

    /// Strips the two-byte header of a short command frame.
    fn body(frame: &Bytes) -> Bytes {
        frame.slice(2..)
    }

    #[test]
    fn ready_for_req_with_empty_identity() {
        let cmd = ready(&[(PROP_SOCKET_TYPE, b"REQ"), (PROP_IDENTITY, b"")]);
        let mut expected = vec![0x04, 0x26, 5];
        expected.extend_from_slice(b"READY");
        expected.push(11);
        expected.extend_from_slice(b"Socket-Type");
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice(b"REQ");
        expected.push(8);
        expected.extend_from_slice(b"Identity");
        expected.extend_from_slice(&[0, 0, 0, 0]);
        let frame = cmd.to_frame_bytes();
        assert_eq!(&frame[..], &expected[..]);
        assert_eq!(Command::parse(body(&frame)).unwrap(), cmd);
    }

    #[test]
    fn ready_for_rep_has_no_identity() {
        let frame = ready(&[(PROP_SOCKET_TYPE, b"REP")]).to_frame_bytes();
        assert_eq!(
            &frame[..],
            b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03REP"
        );
    }

    #[test]
    fn property_names_ignore_case() {
        let frame = ready(&[("socket-TYPE", b"DEALER"), ("X-Other", b"1")]).to_frame_bytes();
        let Command::Ready(md) = Command::parse(body(&frame)).unwrap() else {
            panic!("not READY");
        };
        assert_eq!(
            md.get(PROP_SOCKET_TYPE).map(|v| &v[..]),
            Some(&b"DEALER"[..])
        );
        assert_eq!(md.get(PROP_IDENTITY), None);
        assert_eq!(md.len(), 2);
    }

    #[test]
    fn error_encoding() {
        let frame = Command::Error("Invalid socket type".into()).to_frame_bytes();
        assert_eq!(&frame[..], b"\x04\x1a\x05ERROR\x13Invalid socket type");
        assert_eq!(
            Command::parse(body(&frame)).unwrap(),
            Command::Error("Invalid socket type".into())
        );
        // An over-long reason is cut to 255 bytes, at a char boundary.
        let long = "é".repeat(200);
        let frame = Command::Error(long).to_frame_bytes();
        let Command::Error(r) = Command::parse(frame.slice(9..)).unwrap() else {
            panic!("not ERROR");
        };
        assert_eq!(r.len(), 254);
    }

    #[test]
    fn ping_and_pong_encoding() {
        let ping = Command::Ping {
            ttl: 0x0102,
            context: Bytes::from_static(b"ctx"),
        };
        let frame = ping.to_frame_bytes();
        assert_eq!(&frame[..], b"\x04\x0a\x04PING\x01\x02ctx");
        assert_eq!(Command::parse(body(&frame)).unwrap(), ping);
        let pong = Command::Pong {
            context: Bytes::from_static(b"ctx"),
        };
        let frame = pong.to_frame_bytes();
        assert_eq!(&frame[..], b"\x04\x08\x04PONGctx");
        assert_eq!(Command::parse(body(&frame)).unwrap(), pong);
        // ZMTP 3.1 allows an empty context.
        assert_eq!(
            Command::parse(Bytes::from_static(b"\x04PING\x00\x00")).unwrap(),
            Command::Ping {
                ttl: 0,
                context: Bytes::new()
            }
        );
    }

    #[test]
    fn unknown_commands_parse() {
        let c = Command::parse(Bytes::from_static(b"\x09SUBSCRIBEtopic")).unwrap();
        assert_eq!(
            c,
            Command::Unknown {
                name: Bytes::from_static(b"SUBSCRIBE"),
                data: Bytes::from_static(b"topic")
            }
        );
        assert_eq!(c.name(), b"SUBSCRIBE");
    }

    #[test]
    fn truncated_commands_are_malformed() {
        let bad: &[&[u8]] = &[
            b"",
            b"\x05REA",
            b"\x05ERROR",
            b"\x05ERROR\x05abc",
            b"\x04PING",
            b"\x04PING\x01",
            // Property name length beyond the body.
            b"\x05READY\x0bSocket",
            // Name present, value length truncated.
            b"\x05READY\x0bSocket-Type\x00\x00",
            // Value length beyond the body.
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x09REQ",
            // Value length near 4 GiB.
            b"\x05READY\x0bSocket-Type\xff\xff\xff\xffREQ",
            // A stray byte after the last property.
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x01",
        ];
        for b in bad {
            assert!(
                matches!(
                    Command::parse(Bytes::from_static(b)),
                    Err(ProtocolError::MalformedCommand(_))
                ),
                "{b:?}"
            );
        }
    }

    #[test]
    fn every_prefix_of_a_ready_parses_or_errors() {
        let frame =
            ready(&[(PROP_SOCKET_TYPE, b"ROUTER"), (PROP_IDENTITY, b"abc")]).to_frame_bytes();
        let b = body(&frame);
        for n in 0..=b.len() {
            let _ = Command::parse(b.slice(..n));
        }
    }
}
