//! Running `fzmq` as a user would: a child process with pipes, whose
//! output lines arrive on channels, and every wait bounded.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The bound on every wait in these tests: generous, since the machine
/// may be busy, but a hang still fails instead of stalling the suite.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A running `fzmq`.
pub struct Fzmq {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

/// How a run ended.
#[derive(Debug)]
pub struct Ended {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
    reader: Option<JoinHandle<()>>,
}

impl Lines {
    fn new(source: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(source);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx
                            .send(String::from_utf8_lossy(&line).into_owned())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            reader: Some(reader),
        }
    }

    /// Waits for a line that satisfies `want`; panics after `LIMIT`.
    fn expect(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what} within {LIMIT:?}; saw {:?}", self.seen),
            }
        }
    }

    fn rest(mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.seen.extend(self.rx.try_iter());
        self.seen.concat()
    }
}

/// Starts `fzmq ARGS` with `stdin` as its input (closed after it).
pub fn spawn(args: &[&str], stdin: &str) -> Fzmq {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fzmq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fzmq starts");
    let mut input = child.stdin.take().expect("stdin piped");
    let data = stdin.as_bytes().to_vec();
    // A writer thread: a child that reads nothing must not block us.
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let stdout = Lines::new(child.stdout.take().expect("stdout piped"));
    let stderr = Lines::new(child.stderr.take().expect("stderr piped"));
    Fzmq {
        child,
        stdout,
        stderr,
    }
}

/// Runs `fzmq ARGS` to its end.
pub fn run(args: &[&str], stdin: &str) -> Ended {
    spawn(args, stdin).wait()
}

impl Fzmq {
    /// The endpoint it bound, from its `fzmq: bound ENDPOINT` line.
    pub fn bound(&mut self) -> String {
        let line = self.stderr.expect("naming the bound endpoint", |l| {
            l.starts_with("fzmq: bound ")
        });
        line.trim_end()
            .trim_start_matches("fzmq: bound ")
            .to_owned()
    }

    /// Waits for a stdout line satisfying `want`.
    pub fn expect_stdout(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        self.stdout.expect(what, want)
    }

    /// Waits for it to exit; kills it and panics after `LIMIT`.
    pub fn wait(mut self) -> Ended {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "fzmq did not exit within {LIMIT:?}; stdout {:?}",
                        self.stdout.rest()
                    );
                }
                // Polling a child's exit: std has no wait with a timeout.
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Ended {
            code: status.code(),
            stdout: self.stdout.rest(),
            stderr: self.stderr.rest(),
        }
    }

    /// Stops a command that runs until killed (monitor).
    pub fn kill(mut self) -> Ended {
        let _ = self.child.kill();
        self.wait()
    }
}
