//! PLAIN (RFC 24): a username and password in clear, checked by ZAP.
//!
//! ```text
//! client                          server
//! HELLO username password   ->
//!                           <-    WELCOME        (or ERROR "400")
//! INITIATE metadata         ->
//!                           <-    READY metadata
//! ```

use super::{
    merge, send_plain_refusal, split_command, unexpected_command, zap_outcome, Credentials,
    SecretBytes, Step, ZapAnswer, ZapContext,
};
use crate::error::ProtocolError;
use crate::zmtp::command::{Command, Metadata};
use bytes::{Bytes, BytesMut};

const HELLO: &[u8] = b"HELLO";
const WELCOME: &[u8] = b"WELCOME";
const INITIATE: &[u8] = b"INITIATE";
const READY: &[u8] = b"READY";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client: HELLO sent (or about to be).
    ClientStart,
    ClientAwaitWelcome,
    ClientAwaitReady,
    ServerAwaitHello,
    /// HELLO checked, its ZAP request out: WELCOME waits for the answer,
    /// and the client may send nothing meanwhile.
    ServerAwaitZap,
    ServerAwaitInitiate,
    Done,
}

#[derive(Debug)]
pub(crate) struct Plain {
    state: State,
    server: bool,
    ours: Metadata,
    /// Client only: what HELLO carries.
    username: Bytes,
    password: SecretBytes,
    /// Server only.
    zap: ZapContext,
    /// Server: what ZAP added to the peer's metadata (`User-Id`...).
    zap_md: Metadata,
}

/// Appends a command frame: name, then `data`.
fn command(out: &mut BytesMut, name: &'static [u8], data: Bytes) {
    Command::Unknown {
        name: Bytes::from_static(name),
        data,
    }
    .encode(out);
}

impl Plain {
    pub(crate) fn client(ours: Metadata, username: Bytes, password: SecretBytes) -> Plain {
        Plain {
            state: State::ClientStart,
            server: false,
            ours,
            username,
            password,
            zap: ZapContext::default(),
            zap_md: Metadata::new(),
        }
    }

    pub(crate) fn server(ours: Metadata, zap: ZapContext) -> Plain {
        Plain {
            state: State::ServerAwaitHello,
            server: true,
            ours,
            username: Bytes::new(),
            password: SecretBytes::default(),
            zap,
            zap_md: Metadata::new(),
        }
    }

    pub(crate) fn is_server(&self) -> bool {
        self.server
    }

    pub(crate) fn start(&mut self, out: &mut BytesMut) {
        if self.state != State::ClientStart {
            return;
        }
        // Lengths are one byte on the wire; longer fields are cut (the
        // socket options refuse them before this).
        let user = &self.username[..self.username.len().min(255)];
        let pass = &self.password.expose()[..self.password.expose().len().min(255)];
        let mut data = BytesMut::with_capacity(2 + user.len() + pass.len());
        data.extend_from_slice(&[user.len() as u8]);
        data.extend_from_slice(user);
        data.extend_from_slice(&[pass.len() as u8]);
        data.extend_from_slice(pass);
        command(out, HELLO, data.freeze());
        self.password = SecretBytes::default();
        self.state = State::ClientAwaitWelcome;
    }

    pub(crate) fn on_command(
        &mut self,
        body: Bytes,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        let Some((name, data)) = split_command(&body) else {
            return Err(unexpected_command(&body));
        };
        match (self.state, name) {
            (State::ClientAwaitWelcome, WELCOME) => {
                if !data.is_empty() {
                    return Err(ProtocolError::MalformedCommand("WELCOME with data"));
                }
                let mut md = BytesMut::new();
                self.ours.encode(&mut md);
                command(out, INITIATE, md.freeze());
                self.state = State::ClientAwaitReady;
                Ok(Step::Continue)
            }
            (State::ClientAwaitReady, READY) => {
                let md = Metadata::parse(body.slice(1 + READY.len()..))?;
                self.state = State::Done;
                Ok(Step::Done(md))
            }
            (State::ServerAwaitHello, HELLO) => {
                let (username, password) = parse_hello(&body, 1 + HELLO.len())?;
                let credentials = Credentials::Plain { username, password };
                self.state = State::ServerAwaitZap;
                Ok(Step::Zap(self.zap.request("PLAIN", credentials)))
            }
            (State::ServerAwaitInitiate, INITIATE) => {
                let mut md = Metadata::parse(body.slice(1 + INITIATE.len()..))?;
                Command::Ready(std::mem::take(&mut self.ours)).encode(out);
                merge(&mut md, std::mem::take(&mut self.zap_md));
                self.state = State::Done;
                Ok(Step::Done(md))
            }
            _ => Err(unexpected_command(&body)),
        }
    }

    pub(crate) fn on_zap_reply(
        &mut self,
        answer: ZapAnswer,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        if self.state != State::ServerAwaitZap {
            return Err(ProtocolError::MalformedCommand(
                "ZAP answer without a request",
            ));
        }
        self.zap_md = zap_outcome(answer).inspect_err(|e| send_plain_refusal(out, e))?;
        command(out, WELCOME, Bytes::new());
        self.state = State::ServerAwaitInitiate;
        Ok(Step::Continue)
    }
}

/// HELLO's data: a length-prefixed username, then a length-prefixed
/// password, and nothing after.
fn parse_hello(body: &Bytes, at: usize) -> Result<(Bytes, SecretBytes), ProtocolError> {
    let field = |pos: usize| -> Result<(Bytes, usize), ProtocolError> {
        let len = usize::from(
            *body
                .get(pos)
                .ok_or(ProtocolError::MalformedCommand("HELLO truncated"))?,
        );
        let end = pos + 1 + len;
        if end > body.len() {
            return Err(ProtocolError::MalformedCommand("HELLO truncated"));
        }
        Ok((body.slice(pos + 1..end), end))
    };
    let (username, pos) = field(at)?;
    let (password, end) = field(pos)?;
    if end != body.len() {
        return Err(ProtocolError::MalformedCommand("HELLO with trailing bytes"));
    }
    Ok((username, SecretBytes::new(password.to_vec())))
}
