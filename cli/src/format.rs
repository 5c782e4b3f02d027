//! How messages look on stdin and stdout: one line per message, in one of
//! three encodings.
//!
//! - text (default): the frames' bytes as they are, separated by the
//!   separator (a tab unless `--separator` says otherwise). A frame that
//!   contains the separator or a newline cannot be written this way
//!   unambiguously: use `--hex` or `--json` for binary data.
//! - `--hex`: each frame in lower-case hex (upper case is accepted on
//!   input), separated by the separator.
//! - `--json`: a JSON array with one element per frame: a string for a
//!   frame that is valid UTF-8, `{"hex": "..."}` for any other. On input a
//!   single string stands for a one-frame message.
//!
//! A line always ends with `\n`, which is not part of the message; an empty
//! line is a message of one empty frame.

use ferrozmq::Message;
use serde_json::Value;
use std::fmt::Write as _;

/// The line encoding of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Raw bytes, frames separated by the separator.
    Text,
    /// Hex frames, separated by the separator.
    Hex,
    /// A JSON array of frames.
    Json,
}

/// Encodes messages to lines and decodes lines to messages.
#[derive(Clone, Debug)]
pub struct Format {
    /// Which encoding.
    pub encoding: Encoding,
    /// Between frames, in text and hex.
    pub separator: Vec<u8>,
}

impl Format {
    /// Decodes one line (without its `\n`) into a message.
    pub fn decode(&self, line: &[u8]) -> Result<Message, String> {
        match self.encoding {
            Encoding::Text => Ok(Message::from_frames(
                split(line, &self.separator).map(<[u8]>::to_vec),
            )),
            Encoding::Hex => {
                let frames = split(line, &self.separator)
                    .map(|f| from_hex(f.trim_ascii()))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Message::from_frames(frames))
            }
            Encoding::Json => {
                let value: Value =
                    serde_json::from_slice(line).map_err(|e| format!("bad JSON: {e}"))?;
                let frames = match value {
                    Value::Array(items) => items.iter().map(json_frame).collect(),
                    single @ Value::String(_) => json_frame(&single).map(|f| vec![f]),
                    _ => Err("expected an array of frames, or a string".to_owned()),
                }?;
                if frames.is_empty() {
                    return Err("a message needs at least one frame".into());
                }
                Ok(Message::from_frames(frames))
            }
        }
    }

    /// Encodes a message as one line, `\n` included.
    pub fn encode(&self, msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        match self.encoding {
            Encoding::Text | Encoding::Hex => {
                for (i, frame) in msg.frames().iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(&self.separator);
                    }
                    if self.encoding == Encoding::Hex {
                        out.extend_from_slice(to_hex(frame).as_bytes());
                    } else {
                        out.extend_from_slice(frame);
                    }
                }
            }
            Encoding::Json => {
                let frames = msg
                    .frames()
                    .iter()
                    .map(|f| match std::str::from_utf8(f) {
                        Ok(s) => Value::String(s.to_owned()),
                        Err(_) => serde_json::json!({ "hex": to_hex(f) }),
                    })
                    .collect();
                out = Value::Array(frames).to_string().into_bytes();
            }
        }
        out.push(b'\n');
        out
    }
}

/// Splits `line` at each occurrence of `sep`; an empty separator means one
/// frame.
fn split<'a>(line: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        let at = (!sep.is_empty())
            .then(|| r.windows(sep.len()).position(|w| w == sep))
            .flatten();
        match at {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn json_frame(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Object(o) if o.len() == 1 => match o.get("hex") {
            Some(Value::String(h)) => from_hex(h.as_bytes()),
            _ => Err(r#"a binary frame is written {"hex": "..."}"#.into()),
        },
        _ => Err(r#"a frame is a string or {"hex": "..."}"#.into()),
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn from_hex(s: &[u8]) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    let digit = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("not a hex digit: {:?}", c as char))
    };
    s.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(encoding: Encoding) -> Format {
        Format {
            encoding,
            separator: b"\t".to_vec(),
        }
    }

    fn frames(m: &Message) -> Vec<&[u8]> {
        m.frames().iter().map(|f| &f[..]).collect()
    }

    #[test]
    fn text_splits_at_the_separator_and_round_trips() {
        let f = fmt(Encoding::Text);
        let m = f.decode(b"a\t\tb c").unwrap();
        assert_eq!(frames(&m), [&b"a"[..], b"", b"b c"]);
        assert_eq!(f.encode(&m), b"a\t\tb c\n");
        let one = f.decode(b"").unwrap();
        assert_eq!(frames(&one), [&b""[..]]);
        let multi = Format {
            separator: b"||".to_vec(),
            ..fmt(Encoding::Text)
        };
        assert_eq!(
            frames(&multi.decode(b"x||y|z").unwrap()),
            [&b"x"[..], b"y|z"]
        );
    }

    #[test]
    fn hex_round_trips_binary_and_rejects_bad_digits() {
        let f = fmt(Encoding::Hex);
        let m = f.decode(b"00ff\tDEAD").unwrap();
        assert_eq!(frames(&m), [&[0u8, 0xff][..], &[0xde, 0xad]]);
        assert_eq!(f.encode(&m), b"00ff\tdead\n");
        assert!(f.decode(b"0").unwrap_err().contains("odd"));
        assert!(f.decode(b"zz").unwrap_err().contains("hex digit"));
    }

    #[test]
    fn json_uses_strings_for_utf8_and_hex_objects_for_the_rest() {
        let f = fmt(Encoding::Json);
        let m = f.decode(br#"["hi", {"hex": "00ff"}, "\u00e9"]"#).unwrap();
        assert_eq!(frames(&m), [&b"hi"[..], &[0, 0xff], "é".as_bytes()]);
        assert_eq!(
            f.encode(&m),
            "[\"hi\",{\"hex\":\"00ff\"},\"é\"]\n".as_bytes()
        );
        assert_eq!(frames(&f.decode(br#""one""#).unwrap()), [&b"one"[..]]);
        assert!(f.decode(b"[]").is_err());
        assert!(f.decode(b"[1]").is_err());
        assert!(f.decode(b"{").is_err());
    }
}
