//! Z85 (RFC 32): 4 bytes as 5 printable characters, the text form of
//! CURVE keys (40 characters for 32 bytes).

/// The 85 characters, in digit order.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why a Z85 string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Z85Error {
    /// The length is not a multiple of 5.
    Length,
    /// A character outside the Z85 alphabet.
    Character,
    /// Five characters whose value does not fit in 32 bits.
    Overflow,
}

impl std::fmt::Display for Z85Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Z85Error::Length => "Z85 text length is not a multiple of 5",
            Z85Error::Character => "character outside the Z85 alphabet",
            Z85Error::Overflow => "Z85 group larger than 32 bits",
        })
    }
}

impl std::error::Error for Z85Error {}

/// Encodes `data`, whose length must be a multiple of 4 (RFC 32); `None`
/// otherwise.
pub fn encode(data: &[u8]) -> Option<String> {
    if data.len() % 4 != 0 {
        return None;
    }
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut group = [0u8; 5];
        for c in group.iter_mut().rev() {
            *c = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        // The alphabet is ASCII, so each byte is one char.
        out.extend(group.iter().map(|&b| char::from(b)));
    }
    Some(out)
}

/// Decodes Z85 text into `len / 5 * 4` bytes.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Z85Error> {
    if text.len() % 5 != 0 {
        return Err(Z85Error::Length);
    }
    let mut out = Vec::with_capacity(text.len() / 5 * 4);
    for group in text.chunks_exact(5) {
        let mut value: u64 = 0;
        for &c in group {
            let digit = digit(c).ok_or(Z85Error::Character)?;
            value = value * 85 + u64::from(digit);
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow)?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|i| i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc32_test_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&data).as_deref(), Some("HelloWorld"));
        assert_eq!(decode(b"HelloWorld").as_deref(), Ok(&data[..]));
    }

    #[test]
    fn round_trip_and_errors() {
        let data: Vec<u8> = (0..=255u8).cycle().take(32 * 4).collect();
        let text = encode(&data).expect("multiple of 4");
        assert_eq!(text.len(), data.len() / 4 * 5);
        assert_eq!(decode(text.as_bytes()), Ok(data));
        assert_eq!(encode(&[1, 2, 3]), None);
        assert_eq!(decode(b"abcd"), Err(Z85Error::Length));
        assert_eq!(decode(b"abc d"), Err(Z85Error::Character));
        assert_eq!(decode(b"#####"), Err(Z85Error::Overflow));
        assert_eq!(decode(b"%nSc0"), Ok(vec![0xFF; 4]));
    }
}
