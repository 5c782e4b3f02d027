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
    send_plain_refusal, split_command, unexpected_command, Credentials, SecretBytes, Step,
    ZapContext, PROP_USER_ID,
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
    /// Server: the user id ZAP gave, for the peer's metadata.
    user_id: Option<Bytes>,
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
            user_id: None,
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
            user_id: None,
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
                match self.zap.authenticate("PLAIN", credentials) {
                    Ok(user_id) => self.user_id = user_id,
                    Err(e) => {
                        send_plain_refusal(out, &e);
                        return Err(e);
                    }
                }
                command(out, WELCOME, Bytes::new());
                self.state = State::ServerAwaitInitiate;
                Ok(Step::Continue)
            }
            (State::ServerAwaitInitiate, INITIATE) => {
                let mut md = Metadata::parse(body.slice(1 + INITIATE.len()..))?;
                Command::Ready(std::mem::take(&mut self.ours)).encode(out);
                if let Some(user_id) = self.user_id.take() {
                    md.push(PROP_USER_ID, user_id);
                }
                self.state = State::Done;
                Ok(Step::Done(md))
            }
            _ => Err(unexpected_command(&body)),
        }
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
