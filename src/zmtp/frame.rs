//! Frame headers (RFC 23, "Framing") and the incremental frame decoder.
//!
//! A frame is a flags byte, a size (one byte, or eight big-endian bytes
//! when the LONG flag is set) and a body. The decoder looks at the front
//! of the caller's buffer and, once a whole frame is there, splits the
//! body off as a zero-copy [`Bytes`]. A body of [`LARGE_BODY`] or more is
//! the exception: it is copied out of the buffer as it arrives, in the
//! chunks it arrives in, and into one buffer once complete (see
//! [`FrameDecoder`]).

use crate::error::ProtocolError;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flags bit 0: more frames of the same message follow.
pub const FLAG_MORE: u8 = 0x01;
/// Flags bit 1: the size field is eight bytes.
pub const FLAG_LONG: u8 = 0x02;
/// Flags bit 2: the frame is a command, not a message frame.
pub const FLAG_COMMAND: u8 = 0x04;
const FLAGS_KNOWN: u8 = FLAG_MORE | FLAG_LONG | FLAG_COMMAND;

/// Largest body that fits a short (one-byte size) frame.
pub const MAX_SHORT_BODY: usize = 255;

/// Even with a tiny `maxmsgsize`, commands up to this size are accepted,
/// so that a limit meant for application messages cannot break the
/// handshake (libzmq applies `maxmsgsize` to READY too, which makes very
/// small limits unusable).
pub const MIN_COMMAND_LIMIT: u64 = 64 * 1024;

/// Bodies at least this large are gathered in chunks as they arrive
/// instead of waiting, whole, in the caller's read buffer. Growing that
/// buffer to the body's size reallocated it again and again, and every
/// copy stayed in the process's footprint: a hundred peers streaming
/// huge bodies cost more than twice what they had sent. In chunks, a
/// body costs what has arrived of it, plus one copy when it completes;
/// copying each read costs a memcpy, far below what the network took to
/// bring it.
pub const LARGE_BODY: usize = 1024 * 1024;
/// The size of the chunks a large body is gathered in.
const GATHER_CHUNK: usize = 64 * 1024;

/// Bytes/Vec cannot hold more than `isize::MAX` bytes, so a larger frame
/// can never be received whatever the configured limit.
const MAX_REPRESENTABLE: u64 = isize::MAX as u64;

/// The header length (flags and size) of a frame with this body length.
#[inline]
pub fn header_len(body_len: usize) -> usize {
    if body_len <= MAX_SHORT_BODY {
        2
    } else {
        9
    }
}

/// Appends a frame header. Short bodies get a one-byte size, as libzmq
/// does, so our bytes match its bytes.
#[inline]
pub fn encode_header(out: &mut BytesMut, body_len: usize, more: bool, command: bool) {
    let mut flags = 0;
    if more {
        flags |= FLAG_MORE;
    }
    if command {
        flags |= FLAG_COMMAND;
    }
    if body_len <= MAX_SHORT_BODY {
        out.put_u8(flags);
        out.put_u8(body_len as u8);
    } else {
        out.put_u8(flags | FLAG_LONG);
        out.put_u64(body_len as u64);
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// More frames of this message follow.
    pub more: bool,
    /// The frame is a command.
    pub command: bool,
    /// Bytes taken by the header itself (2 or 9).
    pub header_len: usize,
    /// The announced body length. Untrusted: never allocate from it.
    pub body_len: u64,
}

impl FrameHeader {
    /// Parses the header at the front of `buf`; `Ok(None)` when more bytes
    /// are needed. Reserved flag bits and multi-frame commands are errors
    /// as soon as the flags byte is there.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        if flags & !FLAGS_KNOWN != 0 {
            return Err(ProtocolError::MalformedFrame("reserved flag bits set"));
        }
        let more = flags & FLAG_MORE != 0;
        let command = flags & FLAG_COMMAND != 0;
        if more && command {
            return Err(ProtocolError::MalformedFrame(
                "command frame with MORE flag",
            ));
        }
        // A LONG frame with a small size is accepted, as libzmq does.
        let (header_len, body_len) = if flags & FLAG_LONG != 0 {
            match buf.get(1..9) {
                Some(mut size) => (9, size.get_u64()),
                None => return Ok(None),
            }
        } else {
            match buf.get(1) {
                Some(&size) => (2, u64::from(size)),
                None => return Ok(None),
            }
        };
        Ok(Some(FrameHeader {
            more,
            command,
            header_len,
            body_len,
        }))
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// More frames of this message follow.
    pub more: bool,
    /// The frame is a command.
    pub command: bool,
    /// The body, sliced out of the input buffer without copying.
    pub body: Bytes,
}

/// Incremental frame decoder that enforces `maxmsgsize`.
///
/// It keeps no partial frame of its own: unconsumed bytes stay in the
/// caller's buffer, so the caller controls all buffering and nothing is
/// ever reserved because of an announced (untrusted) length.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_msg_size: Option<u64>,
    /// Largest command body; see [`FrameDecoder::new`].
    command_limit: Option<u64>,
    /// Body bytes of the message being received (frames with MORE so far).
    msg_bytes: u64,
    /// Bytes missing for the next frame after the last `decode` call.
    wanted: usize,
    /// A large body being gathered (header already consumed).
    large: Option<LargeBody>,
}

/// A body of [`LARGE_BODY`] or more, gathered as it arrives.
#[derive(Clone, Debug)]
struct LargeBody {
    more: bool,
    command: bool,
    /// The full chunks so far, in order, each [`GATHER_CHUNK`] bytes.
    chunks: Vec<Bytes>,
    /// The chunk being filled.
    tail: BytesMut,
    /// Their total length.
    got: usize,
    /// The body's announced length (its header was checked).
    len: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frames and messages above `max_msg_size`,
    /// and commands above it too (but never below [`MIN_COMMAND_LIMIT`]).
    pub fn new(max_msg_size: Option<u64>) -> FrameDecoder {
        FrameDecoder {
            max_msg_size,
            command_limit: None,
            msg_bytes: 0,
            wanted: 2,
            large: None,
        }
    }

    /// Also rejects commands above `limit` (or `max_msg_size` if that is
    /// larger; never below [`MIN_COMMAND_LIMIT`]). A session buffers a
    /// command whole, so commands stay bounded when messages are not: a
    /// peer announcing a 2^62-byte SUBSCRIBE is refused at its header
    /// instead of being waited for. `None` bounds them by `max_msg_size`
    /// alone.
    pub fn with_command_limit(mut self, limit: Option<u64>) -> FrameDecoder {
        self.command_limit = limit;
        self
    }

    /// Bytes still missing to complete the frame at the front of the
    /// buffer last passed to [`decode`](Self::decode). May be huge: the
    /// caller must cap it before reserving anything.
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    /// Forgets the frame and message in progress, freeing what was
    /// gathered of them: the connection is gone.
    pub fn discard(&mut self) {
        self.large = None;
        self.msg_bytes = 0;
        self.wanted = 2;
    }

    /// Whether a large body is being gathered: its header and what has
    /// arrived of it have been taken from the input.
    pub fn is_gathering(&self) -> bool {
        self.large.is_some()
    }

    /// Body bytes received of a message not yet complete: its frames
    /// decoded so far (with MORE) and what has arrived of a large body
    /// being gathered; 0 between messages.
    pub fn message_bytes(&self) -> u64 {
        let gathering = self.large.as_ref().map_or(0, |l| l.got as u64);
        self.msg_bytes.saturating_add(gathering)
    }

    /// Takes the next whole frame from the front of `input`, or returns
    /// `Ok(None)` and leaves `input` untouched when it is incomplete.
    ///
    /// Size limits are checked as soon as the header is readable, before
    /// the body has arrived, so an oversized frame is refused without
    /// buffering it.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.large.is_some() {
            return Ok(self.gather(input));
        }
        let Some(h) = FrameHeader::parse(input)? else {
            self.wanted = if input.first().is_some_and(|f| f & FLAG_LONG != 0) {
                9usize.saturating_sub(input.len())
            } else {
                2usize.saturating_sub(input.len())
            };
            return Ok(None);
        };
        self.check_size(&h)?;
        // check_size bounded body_len by isize::MAX, so neither the
        // conversion nor the addition can fail on any platform where they
        // matter; fall back to an error rather than panicking regardless.
        let body_len = usize::try_from(h.body_len).map_err(|_| too_large(h.body_len))?;
        let total = h
            .header_len
            .checked_add(body_len)
            .ok_or_else(|| too_large(h.body_len))?;
        if input.len() < total {
            if body_len >= LARGE_BODY {
                input.advance(h.header_len);
                self.large = Some(LargeBody {
                    more: h.more,
                    command: h.command,
                    chunks: Vec::new(),
                    tail: BytesMut::new(),
                    got: 0,
                    len: body_len,
                });
                return Ok(self.gather(input));
            }
            self.wanted = total - input.len();
            return Ok(None);
        }
        input.advance(h.header_len);
        let body = input.split_to(body_len).freeze();
        Ok(Some(self.finish(h.more, h.command, body)))
    }

    /// Takes what `input` has of the large body being gathered; the frame
    /// once it is complete.
    fn gather(&mut self, input: &mut BytesMut) -> Option<Frame> {
        let large = self.large.as_mut()?;
        let mut take = input.len().min(large.len - large.got);
        large.got += take;
        // Copied, not split off: a split would pin the caller's whole read
        // buffer (up to twice the bytes it holds) and make it allocate a
        // new one for every read. Copied into chunks of one size, so that
        // what a dropped peer's body freed is what the next one reuses.
        while take > 0 {
            if large.tail.capacity() == large.tail.len() {
                if !large.tail.is_empty() {
                    let full = std::mem::take(&mut large.tail);
                    large.chunks.push(full.freeze());
                }
                large.tail = BytesMut::with_capacity(GATHER_CHUNK);
            }
            let n = take.min(large.tail.capacity() - large.tail.len());
            large.tail.extend_from_slice(&input[..n]);
            input.advance(n);
            take -= n;
        }
        if large.got < large.len {
            self.wanted = large.len - large.got;
            return None;
        }
        let large = self.large.take()?;
        // Every byte is here: the length is no longer a claim.
        let mut body = BytesMut::with_capacity(large.len);
        for c in &large.chunks {
            body.extend_from_slice(c);
        }
        body.extend_from_slice(&large.tail);
        let body = body.freeze();
        Some(self.finish(large.more, large.command, body))
    }

    /// A whole frame: keeps the message's running size and resets.
    fn finish(&mut self, more: bool, command: bool, body: Bytes) -> Frame {
        if !command {
            self.msg_bytes = if more {
                self.msg_bytes.saturating_add(body.len() as u64)
            } else {
                0
            };
        }
        self.wanted = 2;
        Frame {
            more,
            command,
            body,
        }
    }

    fn check_size(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        if h.body_len > MAX_REPRESENTABLE {
            return Err(too_large(h.body_len));
        }
        if h.command {
            let limit = match (self.command_limit, self.max_msg_size) {
                (None, None) => return Ok(()),
                (c, m) => c.max(m).unwrap_or(0).max(MIN_COMMAND_LIMIT),
            };
            if h.body_len > limit {
                return Err(ProtocolError::MessageTooLarge {
                    size: h.body_len,
                    limit,
                });
            }
            return Ok(());
        }
        let Some(limit) = self.max_msg_size else {
            return Ok(());
        };
        {
            let size = self.msg_bytes.saturating_add(h.body_len);
            if size > limit {
                return Err(ProtocolError::MessageTooLarge { size, limit });
            }
        }
        Ok(())
    }
}

fn too_large(size: u64) -> ProtocolError {
    ProtocolError::MessageTooLarge {
        size,
        limit: MAX_REPRESENTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body_len: usize, more: bool, command: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_header(&mut out, body_len, more, command);
        out.to_vec()
    }

    #[test]
    fn short_and_long_headers_match_libzmq() {
        assert_eq!(header(0, false, false), [0x00, 0x00]);
        assert_eq!(header(5, true, false), [0x01, 0x05]);
        assert_eq!(header(255, false, false), [0x00, 0xFF]);
        assert_eq!(header(255, true, false), [0x01, 0xFF]);
        assert_eq!(
            header(256, false, false),
            [0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x00]
        );
        assert_eq!(
            header(256, true, false),
            [0x03, 0, 0, 0, 0, 0, 0, 0x01, 0x00]
        );
        assert_eq!(
            header(70000, false, false),
            [0x02, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]
        );
        assert_eq!(header(38, false, true), [0x04, 0x26]);
        assert_eq!(
            header(300, false, true),
            [0x06, 0, 0, 0, 0, 0, 0, 0x01, 0x2C]
        );
        assert_eq!(header_len(255), 2);
        assert_eq!(header_len(256), 9);
    }

    #[test]
    fn decodes_round_trip_at_boundaries() {
        for len in [0usize, 1, 255, 256, 70000] {
            for more in [false, true] {
                let mut buf = BytesMut::new();
                encode_header(&mut buf, len, more, false);
                buf.extend_from_slice(&vec![0xAB; len]);
                buf.extend_from_slice(b"tail");
                let mut d = FrameDecoder::new(None);
                let f = d.decode(&mut buf).unwrap().unwrap();
                assert_eq!(f.more, more);
                assert!(!f.command);
                assert_eq!(f.body.len(), len);
                assert!(f.body.iter().all(|&b| b == 0xAB));
                assert_eq!(&buf[..], b"tail");
            }
        }
    }

    #[test]
    fn partial_frames_are_left_in_place() {
        let mut whole = BytesMut::new();
        encode_header(&mut whole, 300, false, false);
        whole.extend_from_slice(&[7; 300]);
        let mut d = FrameDecoder::new(None);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(d.decode(&mut part).unwrap(), None);
            assert_eq!(part.len(), cut);
            let expect = match cut {
                // Until the flags byte says LONG, a short header is assumed.
                0 => 2,
                1..=8 => 9 - cut,
                _ => whole.len() - cut,
            };
            assert_eq!(d.wanted(), expect, "cut {cut}");
        }
    }

    #[test]
    fn accepts_long_encoding_of_small_size() {
        let mut buf = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c'][..]);
        let f = FrameDecoder::new(None).decode(&mut buf).unwrap().unwrap();
        assert_eq!(&f.body[..], b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn reserved_flags_are_rejected_from_the_first_byte() {
        for flags in [0x08u8, 0x10, 0x80, 0xFF, 0x09] {
            let mut buf = BytesMut::from(&[flags][..]);
            assert!(matches!(
                FrameDecoder::new(None).decode(&mut buf),
                Err(ProtocolError::MalformedFrame(_))
            ));
        }
    }

    #[test]
    fn command_with_more_is_malformed() {
        for flags in [0x05u8, 0x07] {
            let mut buf = BytesMut::from(&[flags, 0][..]);
            assert!(matches!(
                FrameDecoder::new(None).decode(&mut buf),
                Err(ProtocolError::MalformedFrame(_))
            ));
        }
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let mut d = FrameDecoder::new(Some(100));
        // Only the header: the body has not arrived, nothing is buffered.
        let mut buf = BytesMut::from(&[0x00, 101][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::MessageTooLarge {
                size: 101,
                limit: 100
            })
        );
        let mut ok = BytesMut::from(&[0x00, 100][..]);
        assert_eq!(FrameDecoder::new(Some(100)).decode(&mut ok), Ok(None));
    }

    #[test]
    fn accumulated_message_size_is_limited() {
        let mut d = FrameDecoder::new(Some(10));
        let mut buf = BytesMut::new();
        encode_header(&mut buf, 6, true, false);
        buf.extend_from_slice(&[0; 6]);
        encode_header(&mut buf, 5, false, false);
        assert!(d.decode(&mut buf).unwrap().is_some());
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::MessageTooLarge {
                size: 11,
                limit: 10
            })
        );

        // The count restarts with each message.
        let mut d = FrameDecoder::new(Some(10));
        let mut buf = BytesMut::new();
        for _ in 0..3 {
            encode_header(&mut buf, 6, false, false);
            buf.extend_from_slice(&[0; 6]);
        }
        for _ in 0..3 {
            assert!(d.decode(&mut buf).unwrap().is_some());
        }
    }

    #[test]
    fn commands_are_bounded_when_messages_are_not() {
        let limit = 1 << 20;
        let mut d = FrameDecoder::new(None).with_command_limit(Some(limit));
        // A 2^62-byte SUBSCRIBE is refused at its header...
        let mut huge = BytesMut::new();
        encode_header(&mut huge, 1 << 62, false, true);
        huge.extend_from_slice(b"\x09SUBSCRIBE");
        assert_eq!(
            d.decode(&mut huge),
            Err(ProtocolError::MessageTooLarge {
                size: 1 << 62,
                limit
            })
        );
        // ... while messages stay unlimited, and maxmsgsize, when larger,
        // raises the bound for commands too.
        let mut d = FrameDecoder::new(None).with_command_limit(Some(limit));
        let mut msg = BytesMut::new();
        encode_header(&mut msg, 2 << 20, false, false);
        assert_eq!(d.decode(&mut msg), Ok(None));
        let mut d = FrameDecoder::new(Some(4 << 20)).with_command_limit(Some(limit));
        let mut cmd = BytesMut::new();
        encode_header(&mut cmd, 2 << 20, false, true);
        assert_eq!(d.decode(&mut cmd), Ok(None));
    }

    #[test]
    fn small_limit_still_admits_commands() {
        let mut d = FrameDecoder::new(Some(1));
        let mut buf = BytesMut::new();
        encode_header(&mut buf, 40, false, true);
        buf.extend_from_slice(&[0; 40]);
        assert!(d.decode(&mut buf).unwrap().unwrap().command);
        let mut big = BytesMut::from(&[0x06, 0, 0, 0, 0, 0, 0x01, 0, 1][..]);
        assert!(matches!(
            d.decode(&mut big),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn huge_announced_length_does_not_allocate() {
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&[0x02]);
        buf.extend_from_slice(&(1u64 << 62).to_be_bytes());
        buf.extend_from_slice(b"abc");
        let cap = buf.capacity();
        let mut d = FrameDecoder::new(None);
        assert_eq!(d.decode(&mut buf), Ok(None));
        // The header and what arrived of the body were taken, nothing was
        // reserved: a large body is gathered as it arrives.
        assert!(d.is_gathering());
        assert_eq!(buf.len(), 0);
        assert!(buf.capacity() <= cap);
        assert_eq!(d.message_bytes(), 3);
        assert_eq!(d.wanted() as u64, (1u64 << 62) - 3);
    }

    #[test]
    fn unrepresentable_length_is_an_error() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x02]);
        buf.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            FrameDecoder::new(None).decode(&mut buf),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
    }

    /// A large body is taken out of the input as it arrives, so the input
    /// never holds more than one read; it comes out whole, after a frame
    /// header split anywhere, followed by the next frame.
    #[test]
    fn large_bodies_are_gathered_in_chunks() {
        let body: Vec<u8> = (0..LARGE_BODY + 1000).map(|i| (i % 251) as u8).collect();
        let mut wire = header(body.len(), true, false);
        wire.extend_from_slice(&body);
        wire.extend_from_slice(&header(3, false, false));
        wire.extend_from_slice(b"end");
        for step in [1, 7, 4096, 300_000, wire.len()] {
            let mut d = FrameDecoder::new(None);
            let mut input = BytesMut::new();
            let mut frames = Vec::new();
            let mut most_held = 0;
            for piece in wire.chunks(step) {
                input.extend_from_slice(piece);
                while let Some(f) = d.decode(&mut input).expect("valid") {
                    frames.push(f);
                }
                most_held = most_held.max(input.len());
                if frames.is_empty() {
                    let arrived = d.message_bytes() as usize + input.len();
                    assert!(
                        arrived <= body.len() + 9,
                        "counts what arrived, step {step}"
                    );
                }
            }
            assert_eq!(frames.len(), 2, "step {step}");
            assert!(frames[0].more && !frames[0].command);
            assert_eq!(&frames[0].body[..], &body[..], "step {step}");
            assert_eq!(&frames[1].body[..], b"end");
            assert_eq!(d.message_bytes(), 0);
            if step < LARGE_BODY {
                assert!(
                    most_held <= step + 9,
                    "step {step}: the input held {most_held}"
                );
            }
        }
    }

    #[test]
    fn a_large_body_over_maxmsgsize_is_refused_at_its_header() {
        let mut d = FrameDecoder::new(Some(LARGE_BODY as u64));
        let mut input = BytesMut::from(&header(LARGE_BODY + 1, false, false)[..]);
        assert!(matches!(
            d.decode(&mut input),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
    }
}
