//! CURVE keys: generation, Z85 text form, the public key of a secret one.
//!
//! Secret keys are wiped from memory when dropped and never shown by
//! `Debug`.

use super::z85;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes in a CURVE key.
pub const KEY_LEN: usize = 32;
/// Characters in a CURVE key's Z85 form.
pub const Z85_KEY_LEN: usize = 40;

/// Why bytes could not be taken as a CURVE key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Neither 32 raw bytes nor 40 Z85 characters.
    Length(usize),
    /// 40 characters that are not valid Z85.
    Z85(z85::Z85Error),
    /// A certificate whose secret key does not belong to its public key.
    Mismatch,
    /// A certificate without a `curve` section holding a `public-key`.
    NoPublicKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Length(n) => write!(
                f,
                "a CURVE key is 32 bytes or 40 Z85 characters, not {n} bytes"
            ),
            KeyError::Z85(e) => write!(f, "CURVE key: {e}"),
            KeyError::Mismatch => write!(f, "the secret key does not belong to the public key"),
            KeyError::NoPublicKey => write!(f, "the certificate has no curve public-key"),
        }
    }
}

impl std::error::Error for KeyError {}

/// 32 raw bytes as they are, or 40 Z85 characters decoded, as libzmq's
/// `ZMQ_CURVE_*KEY` options accept.
fn key_bytes(input: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
    let mut key = [0u8; KEY_LEN];
    match input.len() {
        KEY_LEN => key.copy_from_slice(input),
        Z85_KEY_LEN => {
            let mut decoded = z85::decode(input).map_err(KeyError::Z85)?;
            key.copy_from_slice(&decoded);
            decoded.zeroize();
        }
        n => return Err(KeyError::Length(n)),
    }
    Ok(key)
}

/// A CURVE public key (a Curve25519 point).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurvePublicKey(pub [u8; KEY_LEN]);

impl CurvePublicKey {
    /// From 32 raw bytes or 40 Z85 characters.
    pub fn from_bytes_or_z85(input: &[u8]) -> Result<CurvePublicKey, KeyError> {
        key_bytes(input).map(CurvePublicKey)
    }

    /// The 40-character Z85 form.
    pub fn to_z85(&self) -> String {
        z85::encode(&self.0).unwrap_or_default()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurvePublicKey({})", self.to_z85())
    }
}

/// A CURVE secret key. Zeroized on drop; `Debug` prints no byte of it;
/// compared in constant time.
///
/// Its public key is derived once, when the secret key is made (a
/// base-point multiplication): every connection of a socket asks for it,
/// and the handshake sends it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CurveSecretKey {
    bytes: [u8; KEY_LEN],
    #[zeroize(skip)]
    public: CurvePublicKey,
}

impl PartialEq for CurveSecretKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for CurveSecretKey {}

impl CurveSecretKey {
    /// From 32 raw bytes or 40 Z85 characters.
    pub fn from_bytes_or_z85(input: &[u8]) -> Result<CurveSecretKey, KeyError> {
        key_bytes(input).map(CurveSecretKey::new)
    }

    fn new(bytes: [u8; KEY_LEN]) -> CurveSecretKey {
        let secret = crypto_box::SecretKey::from_bytes(bytes);
        CurveSecretKey {
            bytes,
            public: CurvePublicKey(secret.public_key().to_bytes()),
        }
    }

    /// The matching public key (`zmq_curve_public`).
    pub fn public_key(&self) -> CurvePublicKey {
        self.public
    }

    /// The 40-character Z85 form, for writing the key where it is kept.
    pub fn to_z85(&self) -> String {
        z85::encode(&self.bytes).unwrap_or_default()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn to_box_key(&self) -> crypto_box::SecretKey {
        crypto_box::SecretKey::from_bytes(self.bytes)
    }
}

impl fmt::Debug for CurveSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurveSecretKey(<redacted>)")
    }
}

/// A long-term CURVE key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurveKeyPair {
    /// The public key, given to peers.
    pub public: CurvePublicKey,
    /// The secret key, kept.
    pub secret: CurveSecretKey,
}

impl CurveKeyPair {
    /// A new random key pair from the operating system's generator
    /// (`zmq_curve_keypair`).
    pub fn generate() -> CurveKeyPair {
        let secret = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        CurveKeyPair::from_secret(CurveSecretKey::new(secret.to_bytes()))
    }

    /// The pair of a known secret key (whose public key was derived when
    /// it was made).
    pub fn from_secret(secret: CurveSecretKey) -> CurveKeyPair {
        CurveKeyPair {
            public: secret.public_key(),
            secret,
        }
    }
}

/// CZMQ's certificate files (`zcert`, in ZPL): the public one to hand
/// out, the secret one (`_secret` beside it in CZMQ) to keep.
impl CurveKeyPair {
    /// The text of a public certificate: only the public key.
    pub fn to_zcert_public(&self) -> String {
        zcert(&self.public, None)
    }

    /// The text of a secret certificate: both keys. Keep it private.
    pub fn to_zcert_secret(&self) -> String {
        zcert(&self.public, Some(&self.secret))
    }

    /// Reads a certificate: `Ok((public, Some(pair)))` for a secret one,
    /// `Ok((public, None))` for a public one. The secret key must belong
    /// to the public key.
    pub fn from_zcert(text: &str) -> Result<(CurvePublicKey, Option<CurveKeyPair>), KeyError> {
        let mut public = None;
        let mut secret = None;
        let mut in_curve = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                in_curve = trimmed == "curve";
                continue;
            }
            let Some((name, value)) = trimmed.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').as_bytes();
            match (in_curve, name.trim()) {
                (true, "public-key") => public = Some(CurvePublicKey::from_bytes_or_z85(value)?),
                (true, "secret-key") => secret = Some(CurveSecretKey::from_bytes_or_z85(value)?),
                _ => {}
            }
        }
        let public = public.ok_or(KeyError::NoPublicKey)?;
        match secret {
            Some(secret) => {
                let pair = CurveKeyPair::from_secret(secret);
                if pair.public != public {
                    return Err(KeyError::Mismatch);
                }
                Ok((public, Some(pair)))
            }
            None => Ok((public, None)),
        }
    }
}

fn zcert(public: &CurvePublicKey, secret: Option<&CurveSecretKey>) -> String {
    let mut out = String::from(if secret.is_some() {
        "#   ZeroMQ CURVE **Secret** Certificate\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
    } else {
        "#   ZeroMQ CURVE Public Certificate\n\
         #   Exchange securely, or use a secure mechanism to verify the contents\n\
         #   of this file after exchange. Store public certificates in your home\n\
         #   directory, in the .curve subdirectory.\n\n"
    });
    out.push_str("metadata\ncurve\n");
    out.push_str(&format!("    public-key = \"{}\"\n", public.to_z85()));
    if let Some(secret) = secret {
        out.push_str(&format!("    secret-key = \"{}\"\n", secret.to_z85()));
    }
    out
}

/// Bytes that must not linger in memory or logs (a PLAIN password).
/// Compared in constant time (for equal lengths).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> SecretBytes {
        SecretBytes(bytes.into())
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_from_secret_matches_libzmq_test_vector() {
        // The key pair from libzmq's CURVE test suite (test_security_curve).
        let secret =
            CurveSecretKey::from_bytes_or_z85(b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
        assert_eq!(
            secret.public_key().to_z85(),
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
    }

    #[test]
    fn generated_pairs_differ_and_round_trip_z85() {
        let a = CurveKeyPair::generate();
        let b = CurveKeyPair::generate();
        assert_ne!(a.public, b.public);
        let again = CurveSecretKey::from_bytes_or_z85(a.secret.to_z85().as_bytes()).unwrap();
        assert_eq!(CurveKeyPair::from_secret(again), a);
        assert_eq!(
            CurvePublicKey::from_bytes_or_z85(&[7; 31]),
            Err(KeyError::Length(31))
        );
    }

    #[test]
    fn zcert_round_trip_and_czmq_layout() {
        let pair = CurveKeyPair::generate();
        let secret = pair.to_zcert_secret();
        assert!(secret.contains(&format!("    secret-key = \"{}\"", pair.secret.to_z85())));
        assert_eq!(
            CurveKeyPair::from_zcert(&secret),
            Ok((pair.public, Some(pair.clone())))
        );
        let public = pair.to_zcert_public();
        assert!(!public.contains("secret-key"));
        assert_eq!(CurveKeyPair::from_zcert(&public), Ok((pair.public, None)));
        // A CZMQ file with metadata, comments and another section.
        let czmq = format!(
            "#   ****  Generated on 2024-01-01 by CZMQ  ****\n\
             metadata\n    name = \"server\"\n\
             curve\n    public-key = \"{}\"\n",
            pair.public.to_z85()
        );
        assert_eq!(CurveKeyPair::from_zcert(&czmq), Ok((pair.public, None)));
        let other = CurveKeyPair::generate();
        let wrong = format!(
            "curve\n    public-key = \"{}\"\n    secret-key = \"{}\"\n",
            pair.public.to_z85(),
            other.secret.to_z85()
        );
        assert_eq!(CurveKeyPair::from_zcert(&wrong), Err(KeyError::Mismatch));
        assert_eq!(
            CurveKeyPair::from_zcert("metadata\n"),
            Err(KeyError::NoPublicKey)
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let pair = CurveKeyPair::generate();
        let shown = format!("{pair:?} {:?}", SecretBytes::new("hunter2"));
        assert!(!shown.contains(&pair.secret.to_z85()));
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains(&pair.public.to_z85()));
    }
}
