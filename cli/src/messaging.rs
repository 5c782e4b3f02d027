//! The everyday commands: send, recv, req, rep, pub, sub, push, pull.
//!
//! Messages come from stdin and go to stdout, one per line, in the
//! [`Format`] the options chose. Each command opens one socket in its own
//! context, connects or binds it, and moves messages until stdin ends,
//! `--count` is reached, or `--timeout-ms` passes (exit 3).

use crate::format::Format;
use crate::progress::Progress;
use crate::{Common, Outcome};
use ferrozmq::{Context, Error, Message, Socket, SocketType};
use std::io::{self, BufRead, BufWriter, Write};
use std::time::Duration;

/// Types `send` accepts: those that can send without first receiving.
const SENDERS: [SocketType; 7] = [
    SocketType::Push,
    SocketType::Pub,
    SocketType::XPub,
    SocketType::XSub,
    SocketType::Dealer,
    SocketType::Router,
    SocketType::Pair,
];

/// Types `recv` accepts: those that can receive without first sending.
const RECEIVERS: [SocketType; 7] = [
    SocketType::Pull,
    SocketType::Sub,
    SocketType::XSub,
    SocketType::XPub,
    SocketType::Dealer,
    SocketType::Router,
    SocketType::Pair,
];

/// `send`, `push` and `pub`: each stdin line becomes a message. With
/// `subscribers` > 0 (pub only) the socket is an XPUB that first waits for
/// that many subscriptions, so that no subscriber misses the first
/// messages.
pub fn send(common: &Common, ty: SocketType, subscribers: u64) -> Outcome {
    if !SENDERS.contains(&ty) {
        return Outcome::Usage(format!("send cannot use a {ty} socket; see --help"));
    }
    let ty = if subscribers > 0 {
        SocketType::XPub
    } else {
        ty
    };
    let (_ctx, socket) = match open(common, ty) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // Queued messages may leave for up to --timeout-ms after stdin ends;
    // without it, until they are written (libzmq's default linger).
    if let Err(e) = socket.set_linger(common.timeout()) {
        return failure(e, "setting linger");
    }
    if subscribers > 0 {
        if let Err(e) = socket.set_xpub_verbose(true) {
            return failure(e, "setting xpub_verbose");
        }
        if let Err(o) = wait_for_subscribers(&socket, subscribers, common.timeout()) {
            return o;
        }
    }
    let format = common.format();
    let progress = Progress::new(common.count, "sent");
    let mut input = Lines::stdin();
    let mut sent = 0u64;
    while common.count.is_none_or(|n| sent < n) {
        let msg = match input.next_message(&format) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(o) => return o,
        };
        let doing = format!("sending message {}", sent + 1);
        if let Err(o) = send_one(&socket, msg, common.timeout(), &doing) {
            return o;
        }
        sent += 1;
        progress.inc();
    }
    progress.finish();
    finish(&socket, common.timeout())
}

/// `recv`, `pull` and `sub`: prints each message received.
pub fn recv(common: &Common, ty: SocketType, subscribe: &[String]) -> Outcome {
    if !RECEIVERS.contains(&ty) {
        return Outcome::Usage(format!("recv cannot use a {ty} socket; see --help"));
    }
    if !subscribe.is_empty() && !ty.subscribes() {
        return Outcome::Usage(format!("--subscribe is for sub and xsub, not {ty}"));
    }
    let (_ctx, socket) = match open(common, ty) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = socket.set_linger(Some(Duration::ZERO)) {
        return failure(e, "setting linger");
    }
    if ty.subscribes() {
        // No prefix means everything, as zmqc and most tools do.
        let all = [String::new()];
        let prefixes = if subscribe.is_empty() {
            &all[..]
        } else {
            subscribe
        };
        for p in prefixes {
            let done = if ty == SocketType::XSub {
                // An XSUB subscribes by sending the message form: 1, then
                // the prefix.
                let mut m = vec![1u8];
                m.extend_from_slice(p.as_bytes());
                socket.send(m).map_err(|e| e.error)
            } else {
                socket.subscribe(p)
            };
            if let Err(e) = done {
                return failure(e, "subscribing");
            }
        }
    }
    let mut out = Output::new(common.format(), Progress::new(common.count, "received"));
    let mut received = 0u64;
    while common.count.is_none_or(|n| received < n) {
        let doing = format!("waiting for message {}", received + 1);
        let msg = match receive(&socket, &mut out, common.timeout(), &doing) {
            Ok(m) => m,
            Err(o) => return o,
        };
        received += 1;
        if let Err(o) = out.write(&msg) {
            return o;
        }
    }
    out.close()
}

/// `req`: each stdin line is a request; prints each reply.
pub fn req(common: &Common) -> Outcome {
    let (_ctx, socket) = match open(common, SocketType::Req) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = socket.set_linger(Some(Duration::ZERO)) {
        return failure(e, "setting linger");
    }
    let format = common.format();
    let mut input = Lines::stdin();
    let mut out = Output::new(format.clone(), Progress::new(common.count, "requests"));
    let mut done = 0u64;
    while common.count.is_none_or(|n| done < n) {
        let request = match input.next_message(&format) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(o) => return o,
        };
        let doing = format!("sending request {}", done + 1);
        if let Err(o) = send_one(&socket, request, common.timeout(), &doing) {
            return o;
        }
        let doing = format!("waiting for reply {}", done + 1);
        let reply = match receive(&socket, &mut out, common.timeout(), &doing) {
            Ok(m) => m,
            Err(o) => return o,
        };
        done += 1;
        if let Err(o) = out.write(&reply) {
            return o;
        }
    }
    out.close()
}

/// `rep`: prints each request and answers it with the next stdin line, or
/// with the request itself (`echo`).
pub fn rep(common: &Common, echo: bool) -> Outcome {
    let (_ctx, socket) = match open(common, SocketType::Rep) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = socket.set_linger(common.timeout()) {
        return failure(e, "setting linger");
    }
    let format = common.format();
    let mut input = Lines::stdin();
    let mut out = Output::new(format.clone(), Progress::new(common.count, "requests"));
    let mut done = 0u64;
    while common.count.is_none_or(|n| done < n) {
        let doing = format!("waiting for request {}", done + 1);
        let request = match receive(&socket, &mut out, common.timeout(), &doing) {
            Ok(m) => m,
            Err(o) => return o,
        };
        if let Err(o) = out.write(&request) {
            return o;
        }
        let reply = if echo {
            request
        } else {
            // The answer may depend on the request: let the user see it.
            if let Err(o) = out.flush() {
                return o;
            }
            match input.next_message(&format) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(o) => return o,
            }
        };
        let doing = format!("sending reply {}", done + 1);
        if let Err(o) = send_one(&socket, reply, common.timeout(), &doing) {
            return o;
        }
        done += 1;
    }
    match out.close() {
        Outcome::Done => finish(&socket, common.timeout()),
        other => other,
    }
}

/// A context and one socket of type `ty`, bound or connected as asked.
/// The context is returned so that it outlives the socket.
fn open(common: &Common, ty: SocketType) -> Result<(Context, Socket), Outcome> {
    let ctx = Context::new();
    let socket = ctx
        .socket(ty)
        .map_err(|e| failure(e, "creating the socket"))?;
    if common.bind {
        let bound = socket
            .bind(&common.endpoint)
            .map_err(|e| failure(e, &format!("binding {}", common.endpoint)))?;
        // Tests and scripts that bind to port * learn the port here.
        eprintln!("fzmq: bound {bound}");
    } else {
        socket
            .connect(&common.endpoint)
            .map_err(|e| failure(e, &format!("connecting to {}", common.endpoint)))?;
    }
    Ok((ctx, socket))
}

/// Waits until `n` subscriptions have reached the XPUB.
fn wait_for_subscribers(socket: &Socket, n: u64, timeout: Option<Duration>) -> Result<(), Outcome> {
    let mut seen = 0;
    while seen < n {
        let m = match timeout {
            Some(t) => socket.recv_timeout(t),
            None => socket.recv(),
        }
        .map_err(|e| failure(e, &format!("waiting for subscriber {} of {n}", seen + 1)))?;
        // A subscription is a frame starting with 1; 0 is a cancel.
        if m.first().is_some_and(|f| f.first() == Some(&1)) {
            seen += 1;
        }
    }
    Ok(())
}

/// Sends one message, waiting at most `timeout` (for ever without).
fn send_one(
    socket: &Socket,
    msg: Message,
    timeout: Option<Duration>,
    doing: &str,
) -> Result<(), Outcome> {
    match timeout {
        Some(t) => socket.send_timeout(msg, t),
        None => socket.send(msg),
    }
    .map_err(|e| failure(e.error, doing))
}

/// Receives one message, flushing what was printed before blocking, so
/// that a reader of our stdout sees each message without waiting for the
/// next one, and a burst still costs one write.
fn receive(
    socket: &Socket,
    out: &mut Output,
    timeout: Option<Duration>,
    doing: &str,
) -> Result<Message, Outcome> {
    match socket.try_recv() {
        Err(e) if e.is_would_block() => {}
        other => return other.map_err(|e| failure(e, doing)),
    }
    out.flush()?;
    match timeout {
        Some(t) => socket.recv_timeout(t),
        None => socket.recv(),
    }
    .map_err(|e| failure(e, doing))
}

/// Closes the socket and waits until its queued messages are written: for
/// at most the linger set on it (`--timeout-ms`), or for ever without.
fn finish(socket: &Socket, timeout: Option<Duration>) -> Outcome {
    let report = socket.close().wait();
    if report.dropped() > 0 {
        let msg = format!("{} message(s) were not delivered", report.dropped());
        return match timeout {
            Some(t) if report.dropped_linger > 0 => {
                Outcome::TimedOut(format!("{msg} within {} ms", t.as_millis()))
            }
            _ => Outcome::Failed(format!("{msg}: their peer went away")),
        };
    }
    Outcome::Done
}

/// Turns a library error into an outcome: timeouts exit 3, endpoint
/// errors are usage errors.
fn failure(e: Error, doing: &str) -> Outcome {
    match e {
        Error::TimedOut => Outcome::TimedOut(doing.to_owned()),
        Error::InvalidEndpoint(_) => Outcome::Usage(format!("{doing}: {e}")),
        e => Outcome::Failed(format!("{doing}: {e}")),
    }
}

/// Messages from stdin, one per line.
struct Lines {
    input: io::StdinLock<'static>,
    line: Vec<u8>,
    number: u64,
}

impl Lines {
    fn stdin() -> Lines {
        Lines {
            input: io::stdin().lock(),
            line: Vec::new(),
            number: 0,
        }
    }

    /// The next line decoded, `None` at the end of input.
    fn next_message(&mut self, format: &Format) -> Result<Option<Message>, Outcome> {
        self.line.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.line)
            .map_err(|e| Outcome::Failed(format!("reading stdin: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        format
            .decode(&self.line)
            .map(Some)
            .map_err(|e| Outcome::Failed(format!("stdin line {}: {e}", self.number)))
    }
}

/// Messages to stdout, with the progress bar kept out of their way.
struct Output {
    format: Format,
    out: BufWriter<io::Stdout>,
    progress: Progress,
}

impl Output {
    fn new(format: Format, progress: Progress) -> Output {
        Output {
            format,
            out: BufWriter::new(io::stdout()),
            progress,
        }
    }

    fn write(&mut self, msg: &Message) -> Result<(), Outcome> {
        let line = self.format.encode(msg);
        let (out, progress) = (&mut self.out, &self.progress);
        let result = progress.suspend(|| out.write_all(&line));
        progress.inc();
        self.check(result)
    }

    fn flush(&mut self) -> Result<(), Outcome> {
        let (out, progress) = (&mut self.out, &self.progress);
        let result = progress.suspend(|| out.flush());
        self.check(result)
    }

    fn check(&self, result: io::Result<()>) -> Result<(), Outcome> {
        match result {
            Ok(()) => Ok(()),
            // A reader closed our stdout (`fzmq sub ... | head -1`): stop
            // quietly, as other Unix tools do.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Outcome::Done),
            Err(e) => Err(Outcome::Failed(format!("writing stdout: {e}"))),
        }
    }

    fn close(mut self) -> Outcome {
        self.progress.finish();
        match self.flush() {
            Ok(()) => Outcome::Done,
            Err(o) => o,
        }
    }
}
