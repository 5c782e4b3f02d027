//! ZMTP commands (RFC 23 and 37), READY metadata, and subscription changes
//! in both their ZMTP 3.1 command form and their ZMTP 3.0 message form.
//!
//! A command body is a one-byte name length, the name, and command data.
//! Parsing works on the frame body as [`Bytes`], so property values, ping
//! contexts and subscription topics are zero-copy slices of the received
//! buffer.

use super::frame;
use crate::error::ProtocolError;
use bytes::{BufMut, Bytes, BytesMut};

const READY: &[u8] = b"READY";
const ERROR: &[u8] = b"ERROR";
const PING: &[u8] = b"PING";
const PONG: &[u8] = b"PONG";
const SUBSCRIBE: &[u8] = b"SUBSCRIBE";
const CANCEL: &[u8] = b"CANCEL";

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
    /// Subscribe to messages starting with this prefix (ZMTP 3.1, sent by
    /// SUB and XSUB to publishers). An empty prefix matches everything.
    Subscribe(Bytes),
    /// Withdraw one earlier [`Command::Subscribe`] of this prefix (ZMTP 3.1).
    Cancel(Bytes),
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
            SUBSCRIBE => Command::Subscribe(body.slice(name_end..)),
            CANCEL => Command::Cancel(body.slice(name_end..)),
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
            Command::Subscribe(_) => SUBSCRIBE,
            Command::Cancel(_) => CANCEL,
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
            Command::Subscribe(topic) | Command::Cancel(topic) => topic.len(),
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
            Command::Subscribe(topic) | Command::Cancel(topic) => out.put_slice(topic),
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

/// One subscription change, whichever form it travelled in.
///
/// ZMTP 3.1 peers send [`Command::Subscribe`] and [`Command::Cancel`]; ZMTP
/// 3.0 peers (and XSUB applications, whatever the wire version) send a
/// one-frame message whose first byte is 1 (subscribe) or 0 (cancel),
/// followed by the topic prefix. Both are accepted from either kind of
/// peer, so publishers handle this one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// Add one subscription to this prefix.
    Subscribe(Bytes),
    /// Remove one subscription to this prefix.
    Cancel(Bytes),
}

/// First byte of a ZMTP 3.0 subscribe message.
pub const MSG_SUBSCRIBE: u8 = 1;
/// First byte of a ZMTP 3.0 cancel message.
pub const MSG_CANCEL: u8 = 0;

impl SubscriptionChange {
    /// Reads the ZMTP 3.0 message form from a message's only frame. `None`
    /// when the frame is empty or starts with another byte: then it is an
    /// ordinary message, which XPUB hands to the application as it is.
    /// The topic is a slice of `frame`, not a copy.
    pub fn from_message_frame(frame: &Bytes) -> Option<SubscriptionChange> {
        match *frame.first()? {
            MSG_SUBSCRIBE => Some(SubscriptionChange::Subscribe(frame.slice(1..))),
            MSG_CANCEL => Some(SubscriptionChange::Cancel(frame.slice(1..))),
            _ => None,
        }
    }

    /// The change carried by a ZMTP 3.1 command, if it is one.
    pub fn from_command(cmd: &Command) -> Option<SubscriptionChange> {
        match cmd {
            Command::Subscribe(topic) => Some(SubscriptionChange::Subscribe(topic.clone())),
            Command::Cancel(topic) => Some(SubscriptionChange::Cancel(topic.clone())),
            _ => None,
        }
    }

    /// The topic prefix.
    pub fn topic(&self) -> &Bytes {
        match self {
            SubscriptionChange::Subscribe(t) | SubscriptionChange::Cancel(t) => t,
        }
    }

    /// True for [`SubscriptionChange::Subscribe`].
    pub fn is_subscribe(&self) -> bool {
        matches!(self, SubscriptionChange::Subscribe(_))
    }

    /// The ZMTP 3.1 command form, for peers that announced 3.1 or later.
    pub fn to_command(&self) -> Command {
        match self {
            SubscriptionChange::Subscribe(t) => Command::Subscribe(t.clone()),
            SubscriptionChange::Cancel(t) => Command::Cancel(t.clone()),
        }
    }

    /// The ZMTP 3.0 message form: the flag byte, then the topic. This is a
    /// copy of the topic, as the flag byte must precede it in one frame.
    pub fn to_message_frame(&self) -> Bytes {
        let (flag, topic) = match self {
            SubscriptionChange::Subscribe(t) => (MSG_SUBSCRIBE, t),
            SubscriptionChange::Cancel(t) => (MSG_CANCEL, t),
        };
        let mut out = BytesMut::with_capacity(1 + topic.len());
        out.put_u8(flag);
        out.put_slice(topic);
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

    /// Drops every property called `name`, ignoring case.
    pub(crate) fn remove(&mut self, name: &str) {
        self.props
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
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
        let c = Command::parse(Bytes::from_static(b"\x05JOINXtopic")).unwrap();
        assert_eq!(
            c,
            Command::Unknown {
                name: Bytes::from_static(b"JOINX"),
                data: Bytes::from_static(b"topic")
            }
        );
        assert_eq!(c.name(), b"JOINX");
    }

    #[test]
    fn subscribe_and_cancel_commands() {
        // RFC 37: flags, size, name length, name, then the raw topic.
        let sub = Command::Subscribe(Bytes::from_static(b"weather"));
        let frame = sub.to_frame_bytes();
        assert_eq!(&frame[..], b"\x04\x11\x09SUBSCRIBEweather");
        assert_eq!(Command::parse(body(&frame)).unwrap(), sub);

        // The empty prefix (subscribe to everything) has no data at all.
        let all = Command::Subscribe(Bytes::new());
        assert_eq!(&all.to_frame_bytes()[..], b"\x04\x0a\x09SUBSCRIBE");
        let cancel = Command::Cancel(Bytes::new());
        let frame = cancel.to_frame_bytes();
        assert_eq!(&frame[..], b"\x04\x07\x06CANCEL");
        assert_eq!(Command::parse(body(&frame)).unwrap(), cancel);

        let cancel = Command::Cancel(Bytes::from_static(b"ab"));
        assert_eq!(&cancel.to_frame_bytes()[..], b"\x04\x09\x06CANCELab");
    }

    #[test]
    fn long_subscribe_uses_a_long_command_frame() {
        let topic = Bytes::from(vec![b'x'; 300]);
        let frame = Command::Subscribe(topic.clone()).to_frame_bytes();
        // 1 + 9 + 300 = 310 = 0x136 bytes of body, in an 8-byte size.
        let mut expected = vec![0x06, 0, 0, 0, 0, 0, 0, 0x01, 0x36, 9];
        expected.extend_from_slice(b"SUBSCRIBE");
        expected.extend_from_slice(&topic);
        assert_eq!(&frame[..], &expected[..]);
        assert_eq!(
            Command::parse(frame.slice(9..)).unwrap(),
            Command::Subscribe(topic)
        );
    }

    #[test]
    fn parsed_topic_is_a_slice_of_the_frame() {
        let b = Bytes::from(b"\x09SUBSCRIBEtopic".to_vec());
        let Command::Subscribe(topic) = Command::parse(b.clone()).unwrap() else {
            panic!("not SUBSCRIBE");
        };
        assert_eq!(&topic[..], b"topic");
        assert_eq!(topic.as_ptr(), b[10..].as_ptr());
    }

    #[test]
    fn subscription_message_form() {
        // ZMTP 3.0 / XSUB form: 1 = subscribe, 0 = cancel, then the topic.
        let sub = SubscriptionChange::Subscribe(Bytes::from_static(b"abc"));
        assert_eq!(&sub.to_message_frame()[..], b"\x01abc");
        let cancel = SubscriptionChange::Cancel(Bytes::new());
        assert_eq!(&cancel.to_message_frame()[..], b"\x00");

        let frame = Bytes::from(b"\x01abc".to_vec());
        let parsed = SubscriptionChange::from_message_frame(&frame).unwrap();
        assert_eq!(parsed, sub);
        assert!(parsed.is_subscribe());
        assert_eq!(parsed.topic().as_ptr(), frame[1..].as_ptr(), "zero-copy");
        assert_eq!(
            SubscriptionChange::from_message_frame(&Bytes::from_static(b"\x00")),
            Some(SubscriptionChange::Cancel(Bytes::new()))
        );
        // Anything else is an ordinary message.
        assert_eq!(SubscriptionChange::from_message_frame(&Bytes::new()), None);
        assert_eq!(
            SubscriptionChange::from_message_frame(&Bytes::from_static(b"\x02abc")),
            None
        );
    }

    #[test]
    fn subscription_command_form_round_trips() {
        for change in [
            SubscriptionChange::Subscribe(Bytes::from_static(b"a.b")),
            SubscriptionChange::Cancel(Bytes::from_static(b"a.b")),
            SubscriptionChange::Subscribe(Bytes::new()),
        ] {
            let cmd = change.to_command();
            let frame = cmd.to_frame_bytes();
            let back = Command::parse(body(&frame)).unwrap();
            assert_eq!(SubscriptionChange::from_command(&back), Some(change));
        }
        assert_eq!(
            SubscriptionChange::from_command(&Command::Pong {
                context: Bytes::new()
            }),
            None
        );
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
