//! A libzmq peer with CURVE: `tests/peers/zmq_security_peer.py`, run on
//! pyzmq (its wheels bundle libzmq built with libsodium; the vendored
//! libzmq of the `zmq` dev-dependency has no CURVE). `.ci/run` installs
//! pyzmq; without it these tests fail, they never pass unrun.

use super::TIMEOUT;
use crossbeam_channel::Receiver;
use ferrozmq::CurveKeyPair;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Fails the test, with what to do, when python3 or pyzmq with CURVE is
/// missing.
pub fn require_pyzmq() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECK.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import zmq; assert zmq.has('curve'); print(zmq.zmq_version())"])
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pyzmq with CURVE is missing ({}); run `python3 -m pip install pyzmq` (.ci/run does)",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// One running peer.
pub struct PyPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

/// A JSON string literal.
pub fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Frames as the peer's list of hex strings.
pub fn hex_frames(frames: &[Vec<u8>]) -> String {
    let items: Vec<String> = frames
        .iter()
        .map(|f| js(&f.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        .collect();
    format!("[{}]", items.join(","))
}

/// A libzmq peer's description (see `tests/peers/zmq_security_peer.py`).
pub fn spec(
    ty: &str,
    place: (&str, &str),
    options: &[(&str, String)],
    zap: Option<&str>,
    action: &str,
    count: usize,
    frames: &[Vec<u8>],
) -> String {
    let opts: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{}:{}", js(k), v))
        .collect();
    format!(
        "{{\"type\":{},{}:{},\"options\":{{{}}},\"zap\":{},\"action\":{},\"count\":{},\"frames\":{}}}",
        js(ty),
        js(place.0),
        js(place.1),
        opts.join(","),
        zap.unwrap_or("null"),
        js(action),
        count,
        hex_frames(frames)
    )
}

/// A libzmq CURVE server's options, with this key pair.
pub fn curve_server_opts(server: &CurveKeyPair) -> Vec<(&'static str, String)> {
    vec![
        ("curve_server", "1".into()),
        ("curve_secretkey", js(&server.secret.to_z85())),
    ]
}

/// A libzmq CURVE client's options: its key pair and the server's
/// public key (Z85).
pub fn curve_client_opts(client: &CurveKeyPair, server_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("curve_secretkey", js(&client.secret.to_z85())),
        ("curve_publickey", js(&client.public.to_z85())),
        ("curve_serverkey", js(server_key)),
    ]
}

/// Bytes from hex digits (a peer's line, a fixture).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digits"))
        .collect()
}

impl PyPeer {
    /// Starts a peer from its JSON description (see the script).
    pub fn start(spec: &str) -> PyPeer {
        require_pyzmq();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/zmq_security_peer.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        PyPeer {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (others are kept in `seen`),
    /// without the prefix; fails the test after [`TIMEOUT`].
    pub fn expect(&mut self, prefix: &str) -> String {
        self.expect_within(prefix, TIMEOUT)
    }

    /// As [`expect`](Self::expect), with its own bound.
    pub fn expect_within(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                    assert!(!line.starts_with("ERROR"), "peer failed: {line}");
                }
                Err(_) => panic!(
                    "the libzmq peer printed no {prefix:?} within {timeout:?}; it printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// The endpoint the peer bound.
    pub fn bound(&mut self) -> String {
        self.expect("BOUND ")
    }

    /// The next message the peer printed as received.
    pub fn received(&mut self) -> Vec<Vec<u8>> {
        let line = self.expect("RECV ");
        if line.is_empty() {
            return vec![Vec::new()];
        }
        line.split(',').map(unhex).collect()
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        // Closing stdin ends the peer; kill it if it does not go.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
