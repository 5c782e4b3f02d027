//! The 64-byte ZMTP 3.x greeting (RFC 23 and 37, "Greeting").
//!
//! ```text
//! signature  0xFF, 8 padding bytes, 0x7F      (10 bytes)
//! version    major, minor                      (2 bytes)
//! mechanism  name, zero-padded                 (20 bytes)
//! as-server  0 or 1                            (1 byte)
//! filler     zeros                             (31 bytes)
//! ```

use crate::error::ProtocolError;

/// Length of a whole greeting.
pub const GREETING_LEN: usize = 64;
/// Length of the signature part, after which it can be validated.
pub const SIGNATURE_LEN: usize = 10;
/// Length of the mechanism field.
pub const MECHANISM_LEN: usize = 20;

/// The ZMTP version we announce.
pub const OUR_VERSION: (u8, u8) = (3, 1);

const MECHANISM_OFFSET: usize = 12;
const AS_SERVER_OFFSET: usize = 32;

/// A greeting, ours or the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// Major protocol version.
    pub major: u8,
    /// Minor protocol version.
    pub minor: u8,
    /// Mechanism name, padded with zeros.
    pub mechanism: [u8; MECHANISM_LEN],
    /// The as-server flag (meaningless for NULL).
    pub as_server: bool,
}

impl Greeting {
    /// Our greeting: ZMTP 3.1, NULL mechanism, not as server.
    pub fn ours() -> Greeting {
        Greeting::with_mechanism(b"NULL", false)
    }

    /// Our greeting for a mechanism (a name of at most 20 bytes; longer
    /// names are cut) and role.
    pub fn with_mechanism(name: &[u8], as_server: bool) -> Greeting {
        let mut mechanism = [0; MECHANISM_LEN];
        let n = name.len().min(MECHANISM_LEN);
        mechanism[..n].copy_from_slice(&name[..n]);
        Greeting {
            major: OUR_VERSION.0,
            minor: OUR_VERSION.1,
            mechanism,
            as_server,
        }
    }

    /// The wire form, for a socket without a routing id.
    pub fn to_bytes(&self) -> [u8; GREETING_LEN] {
        self.to_bytes_for(0)
    }

    /// The wire form for a socket whose routing id is `routing_id_len`
    /// bytes long. libzmq puts (routing-id length + 1) as a 64-bit
    /// big-endian number in the signature padding, a leftover for ZMTP 1.0
    /// peers that RFC 23 calls not significant; we send the same bytes so
    /// that our greeting is byte-identical to libzmq's.
    pub fn to_bytes_for(&self, routing_id_len: usize) -> [u8; GREETING_LEN] {
        let mut g = [0u8; GREETING_LEN];
        g[0] = 0xFF;
        g[1..9].copy_from_slice(&(routing_id_len as u64 + 1).to_be_bytes());
        g[9] = 0x7F;
        g[10] = self.major;
        g[11] = self.minor;
        g[MECHANISM_OFFSET..MECHANISM_OFFSET + MECHANISM_LEN].copy_from_slice(&self.mechanism);
        g[AS_SERVER_OFFSET] = u8::from(self.as_server);
        g
    }

    /// Parses the greeting at the front of `buf`.
    ///
    /// Returns `Ok(None)` until all 64 bytes are there, but fails as soon
    /// as what has arrived cannot start a ZMTP 3 greeting: a wrong first
    /// byte, a wrong signature at 10 bytes, or an old version at 12. That
    /// way a non-ZMTP peer is dropped without waiting for 64 bytes that may
    /// never come.
    pub fn parse(buf: &[u8]) -> Result<Option<Greeting>, ProtocolError> {
        if buf.first().is_some_and(|&b| b != 0xFF) {
            return Err(ProtocolError::BadSignature);
        }
        if buf.get(9).is_some_and(|&b| b & 0x01 == 0) {
            return Err(ProtocolError::BadSignature);
        }
        let (Some(&major), Some(&minor)) = (buf.get(10), buf.get(11)) else {
            return Ok(None);
        };
        if major < 3 {
            return Err(ProtocolError::UnsupportedVersion { major, minor });
        }
        let Some(g) = buf.get(..GREETING_LEN) else {
            return Ok(None);
        };
        let mut mechanism = [0; MECHANISM_LEN];
        mechanism.copy_from_slice(&g[MECHANISM_OFFSET..MECHANISM_OFFSET + MECHANISM_LEN]);
        Ok(Some(Greeting {
            major,
            minor,
            mechanism,
            as_server: g[AS_SERVER_OFFSET] != 0,
        }))
    }

    /// The mechanism name without its zero padding.
    pub fn mechanism_name(&self) -> &[u8] {
        let end = self
            .mechanism
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        &self.mechanism[..end]
    }

    /// True for the NULL mechanism. Like libzmq this compares all 20
    /// bytes: "NULL" followed by anything but zeros is another mechanism.
    pub fn is_null_mechanism(&self) -> bool {
        self.mechanism_name() == b"NULL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const OURS: [u8; 64] = [
        0xFF, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x7F, // signature
        0x03, 0x01,                             // version 3.1
        b'N', b'U', b'L', b'L', 0, 0, 0, 0,     // mechanism
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00,                                   // as-server
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0,           // filler
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn our_greeting_bytes() {
        assert_eq!(Greeting::ours().to_bytes(), OURS);
    }

    #[test]
    fn parses_our_greeting_only_when_complete() {
        for n in 0..GREETING_LEN {
            assert_eq!(Greeting::parse(&OURS[..n]), Ok(None), "{n} bytes");
        }
        let g = Greeting::parse(&OURS).unwrap().unwrap();
        assert_eq!(g, Greeting::ours());
        assert!(g.is_null_mechanism());
        assert_eq!(g.mechanism_name(), b"NULL");
    }

    #[test]
    fn bad_signature_fails_early() {
        assert_eq!(Greeting::parse(b"G"), Err(ProtocolError::BadSignature));
        assert_eq!(
            Greeting::parse(b"GET / HTTP/1.1\r\n"),
            Err(ProtocolError::BadSignature)
        );
        let mut sig = OURS;
        sig[9] = 0x7E;
        assert_eq!(
            Greeting::parse(&sig[..SIGNATURE_LEN]),
            Err(ProtocolError::BadSignature)
        );
        // Nine good bytes are not yet a verdict.
        assert_eq!(Greeting::parse(&OURS[..9]), Ok(None));
    }

    #[test]
    fn old_versions_are_rejected_new_ones_accepted() {
        let mut g = OURS;
        g[10] = 2;
        g[11] = 0;
        assert_eq!(
            Greeting::parse(&g[..12]),
            Err(ProtocolError::UnsupportedVersion { major: 2, minor: 0 })
        );
        for (major, minor) in [(3, 0), (3, 1), (3, 7), (4, 0)] {
            g[10] = major;
            g[11] = minor;
            let p = Greeting::parse(&g).unwrap().unwrap();
            assert_eq!((p.major, p.minor), (major, minor));
        }
    }

    #[test]
    fn other_mechanisms_are_recognised() {
        let mut g = OURS;
        g[12..17].copy_from_slice(b"CURVE");
        let p = Greeting::parse(&g).unwrap().unwrap();
        assert!(!p.is_null_mechanism());
        assert_eq!(p.mechanism_name(), b"CURVE");
        let mut g = OURS;
        g[20] = b'X';
        assert!(!Greeting::parse(&g).unwrap().unwrap().is_null_mechanism());
        let mut g = OURS;
        g[12..32].fill(0);
        assert!(!Greeting::parse(&g).unwrap().unwrap().is_null_mechanism());
    }
}
