//! ZMTP bytes built by hand (not by our codec), for raw TCP peers that
//! play a well-behaved part before misbehaving.

/// A valid ZMTP 3.1 greeting with the NULL mechanism, built by hand.
pub fn greeting() -> [u8; 64] {
    greeting_for(b"NULL")
}

/// A ZMTP 3.1 client greeting announcing `mechanism` (at most 20 bytes).
pub fn greeting_for(mechanism: &[u8]) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[8] = 0x01;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism);
    g
}

/// A READY command frame; `socket_type: None` omits the property.
pub fn ready(socket_type: Option<&str>) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    if let Some(t) = socket_type {
        body.push(11);
        body.extend_from_slice(b"Socket-Type");
        body.extend_from_slice(&(t.len() as u32).to_be_bytes());
        body.extend_from_slice(t.as_bytes());
    }
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}
