//! [`Message`]: one ZeroMQ message, made of one or more frames.

use bytes::Bytes;
use std::fmt;

/// A multipart message: an ordered list of frames, each a [`Bytes`].
///
/// A message travels whole: a peer receives all of its frames or none of
/// them. Frames are reference-counted [`Bytes`], so cloning a message or
/// slicing a large frame out of a read buffer copies no payload. A
/// single-frame message, the common case, needs no heap allocation of its
/// own.
///
/// An empty message (no frames) cannot be sent; a message with one empty
/// frame can.
#[derive(Clone, Default)]
pub struct Message {
    frames: Frames,
    /// The connection's properties (READY metadata, `User-Id` from ZAP),
    /// on messages received from PLAIN and CURVE peers; shared by every
    /// message of the connection.
    properties: Option<Properties>,
}

/// Anything that can be a frame: owned bytes are moved in, borrowed ones
/// copied (so `Message::from_frames([name.as_str(), "x"])` works for a
/// `String` that does not live forever).
pub trait IntoFrame {
    /// The frame's bytes.
    fn into_frame(self) -> Bytes;
}

macro_rules! owned_frame {
    ($($t:ty),*) => {$(
        impl IntoFrame for $t {
            fn into_frame(self) -> Bytes {
                Bytes::from(self)
            }
        }
    )*};
}
owned_frame!(Bytes, Vec<u8>, String, Box<[u8]>, bytes::BytesMut);

macro_rules! borrowed_frame {
    ($($t:ty),*) => {$(
        impl IntoFrame for &$t {
            fn into_frame(self) -> Bytes {
                Bytes::copy_from_slice(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}
borrowed_frame!(str, [u8], String, Vec<u8>);

impl<const N: usize> IntoFrame for &[u8; N] {
    fn into_frame(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoFrame for [u8; N] {
    fn into_frame(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

/// A shared frame is shared again, not copied.
impl IntoFrame for &Bytes {
    fn into_frame(self) -> Bytes {
        self.clone()
    }
}

/// Name/value pairs, shared.
type Properties = std::sync::Arc<[(Bytes, Bytes)]>;

/// Frame storage: inline for zero or one frame, a `Vec` beyond.
#[derive(Clone, Default)]
enum Frames {
    #[default]
    Empty,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Message {
    /// A message with no frames yet.
    pub fn new() -> Self {
        Message {
            frames: Frames::Empty,
            properties: None,
        }
    }

    /// A message from any sequence of frames (see [`IntoFrame`]).
    pub fn from_frames<I, F>(frames: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: IntoFrame,
    {
        let mut it = frames.into_iter();
        let Some(first) = it.next() else {
            return Message::new();
        };
        let first = first.into_frame();
        match it.next() {
            None => Message {
                frames: Frames::One(first),
                properties: None,
            },
            Some(second) => {
                let mut v = Vec::with_capacity(2 + it.size_hint().0);
                v.push(first);
                v.push(second.into_frame());
                v.extend(it.map(IntoFrame::into_frame));
                Message {
                    frames: Frames::Many(v),
                    properties: None,
                }
            }
        }
    }

    fn as_vec(&mut self) -> &mut Vec<Bytes> {
        let v = match std::mem::take(&mut self.frames) {
            Frames::Empty => Vec::new(),
            Frames::One(b) => {
                let mut v = Vec::with_capacity(4);
                v.push(b);
                v
            }
            Frames::Many(v) => v,
        };
        self.frames = Frames::Many(v);
        match &mut self.frames {
            Frames::Many(v) => v,
            // Just assigned above.
            _ => unreachable!(),
        }
    }

    /// Appends a frame.
    pub fn push_back(&mut self, frame: impl IntoFrame) {
        let frame = frame.into_frame();
        match &mut self.frames {
            Frames::Empty => self.frames = Frames::One(frame),
            Frames::Many(v) => v.push(frame),
            Frames::One(_) => self.as_vec().push(frame),
        }
    }

    /// Prepends a frame (an envelope such as a routing id or delimiter).
    pub fn push_front(&mut self, frame: impl IntoFrame) {
        let frame = frame.into_frame();
        match &mut self.frames {
            Frames::Empty => self.frames = Frames::One(frame),
            _ => self.as_vec().insert(0, frame),
        }
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        match std::mem::take(&mut self.frames) {
            Frames::Empty => None,
            Frames::One(b) => Some(b),
            Frames::Many(mut v) => {
                let first = if v.is_empty() {
                    None
                } else {
                    Some(v.remove(0))
                };
                self.frames = Frames::Many(v);
                first
            }
        }
    }

    /// Removes and returns the last frame.
    pub fn pop_back(&mut self) -> Option<Bytes> {
        match &mut self.frames {
            Frames::Empty => None,
            Frames::One(_) => match std::mem::take(&mut self.frames) {
                Frames::One(b) => Some(b),
                _ => None,
            },
            Frames::Many(v) => v.pop(),
        }
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Bytes] {
        match &self.frames {
            Frames::Empty => &[],
            Frames::One(b) => std::slice::from_ref(b),
            Frames::Many(v) => v,
        }
    }

    /// The frame at `index`.
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.frames().get(index)
    }

    /// The first frame.
    pub fn first(&self) -> Option<&Bytes> {
        self.frames().first()
    }

    /// The last frame.
    pub fn last(&self) -> Option<&Bytes> {
        self.frames().last()
    }

    /// The number of frames.
    pub fn len(&self) -> usize {
        self.frames().len()
    }

    /// True when the message has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames().is_empty()
    }

    /// The sum of the frame sizes, in bytes.
    pub fn byte_len(&self) -> usize {
        self.frames().iter().map(Bytes::len).sum()
    }

    /// An iterator over the frames.
    pub fn iter(&self) -> std::slice::Iter<'_, Bytes> {
        self.frames().iter()
    }

    /// Splits off the frames from `at` onwards, leaving `[0, at)` in `self`.
    pub fn split_off(&mut self, at: usize) -> Message {
        let mut tail = if at >= self.len() {
            Message::new()
        } else {
            Message::from(self.as_vec().split_off(at))
        };
        // Both halves came from the same connection.
        tail.properties = self.properties.clone();
        tail
    }

    /// Appends all frames of `other`.
    pub fn extend(&mut self, other: Message) {
        for f in other {
            self.push_back(f);
        }
    }

    /// The message as text: its one frame, as UTF-8 (pyzmq's
    /// `recv_string`; see also `Socket::recv_string`).
    pub fn to_str(&self) -> Result<&str, crate::Error> {
        match self.frames() {
            [frame] => std::str::from_utf8(frame)
                .map_err(|_| crate::Error::InvalidMessage("the frame is not UTF-8")),
            _ => Err(crate::Error::InvalidMessage(
                "a text message has exactly one frame",
            )),
        }
    }

    /// Consumes the message, returning its frames.
    pub fn into_frames(self) -> Vec<Bytes> {
        match self.frames {
            Frames::Empty => Vec::new(),
            Frames::One(b) => vec![b],
            Frames::Many(v) => v,
        }
    }
}

impl Message {
    /// A property of the connection the message came from (libzmq's
    /// `zmq_msg_gets`): `User-Id` (from the ZAP handler), `Socket-Type`,
    /// `Identity` and any other the peer sent in its handshake; names
    /// compare without case. Messages from PLAIN and CURVE peers carry
    /// them; NULL connections attach none, which keeps their messages
    /// as cheap as before.
    pub fn property(&self, name: &str) -> Option<&Bytes> {
        self.properties
            .as_deref()?
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    pub(crate) fn set_properties(&mut self, properties: Properties) {
        self.properties = Some(properties);
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.frames() == other.frames()
    }
}

impl Eq for Message {}

impl std::hash::Hash for Message {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.frames().hash(state)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Frame<'a>(&'a Bytes);
        impl fmt::Debug for Frame<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                const SHOWN: usize = 32;
                let b = &self.0[..self.0.len().min(SHOWN)];
                write!(f, "{:?}", bytes::Bytes::copy_from_slice(b))?;
                if self.0.len() > SHOWN {
                    write!(f, "..({} bytes)", self.0.len())?;
                }
                Ok(())
            }
        }
        f.debug_list()
            .entries(self.frames().iter().map(Frame))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Message {
    type Item = &'a Bytes;
    type IntoIter = std::slice::Iter<'a, Bytes>;
    fn into_iter(self) -> Self::IntoIter {
        self.frames().iter()
    }
}

impl IntoIterator for Message {
    type Item = Bytes;
    type IntoIter = std::vec::IntoIter<Bytes>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_frames().into_iter()
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message {
            frames: Frames::One(b),
            properties: None,
        }
    }
}
impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}
impl From<&[u8]> for Message {
    fn from(v: &[u8]) -> Self {
        Bytes::copy_from_slice(v).into()
    }
}
impl<const N: usize> From<&[u8; N]> for Message {
    fn from(v: &[u8; N]) -> Self {
        Bytes::copy_from_slice(v).into()
    }
}
impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Bytes::copy_from_slice(s.as_bytes()).into()
    }
}
impl From<String> for Message {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}
impl From<Vec<Bytes>> for Message {
    fn from(frames: Vec<Bytes>) -> Self {
        Message {
            frames: Frames::Many(frames),
            properties: None,
        }
    }
}
impl From<Vec<Vec<u8>>> for Message {
    fn from(frames: Vec<Vec<u8>>) -> Self {
        Message::from_frames(frames)
    }
}
impl From<&[&str]> for Message {
    fn from(frames: &[&str]) -> Self {
        Message::from_frames(frames.iter().copied())
    }
}
impl<const N: usize> From<[&str; N]> for Message {
    fn from(frames: [&str; N]) -> Self {
        Message::from_frames(frames)
    }
}
/// The frame at `index`; panics when there is none, as a slice does
/// (`get` does not).
impl std::ops::Index<usize> for Message {
    type Output = Bytes;
    fn index(&self, index: usize) -> &Bytes {
        &self.frames()[index]
    }
}

impl<F: IntoFrame> FromIterator<F> for Message {
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        Message::from_frames(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_operations_keep_order() {
        let mut m = Message::from(["a", "b"]);
        m.push_front(Bytes::new());
        m.push_back("c");
        assert_eq!(m.len(), 4);
        assert_eq!(m.pop_front(), Some(Bytes::new()));
        assert_eq!(
            m.frames(),
            &[Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
        );
        assert_eq!(m.byte_len(), 3);
        let tail = m.split_off(1);
        assert_eq!(m.len(), 1);
        assert_eq!(tail.len(), 2);
    }

    #[test]
    fn borrowed_frames_are_copied_and_frames_indexed() {
        let name = String::from("weather");
        let bytes = vec![1u8, 2];
        let shared = Bytes::from_static(b"shared");
        let m = Message::from_frames([name.as_str(), "21C"]);
        drop(name);
        assert_eq!(&m[0][..], b"weather");
        let mut m2 = Message::new();
        m2.push_back(&bytes);
        m2.push_back(&bytes[..1]);
        m2.push_back(&shared);
        m2.push_front(*b"id");
        assert_eq!(m2.len(), 4);
        assert_eq!(m2[3].as_ptr(), shared.as_ptr(), "shared, not copied");
        assert_eq!(Message::from("text").to_str().ok(), Some("text"));
        assert!(m.to_str().is_err(), "two frames are not one text");
        assert!(Message::from(vec![0xFFu8]).to_str().is_err());
    }

    #[test]
    fn single_and_multi_frame_forms_compare_equal() {
        let mut one = Message::from("x");
        let many = Message::from(vec![Bytes::from("x")]);
        assert_eq!(one, many);
        assert_eq!(one.pop_back(), Some(Bytes::from("x")));
        assert!(one.is_empty());
        assert_eq!(one.pop_front(), None);
        one.push_front("b");
        one.push_front("a");
        one.push_back("c");
        assert_eq!(
            one.frames(),
            &[Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
        );
        assert_eq!(one.pop_front(), Some(Bytes::from("a")));
        let all: Vec<Bytes> = one.clone().into_iter().collect();
        assert_eq!(all, one.frames());
    }
}
