//! NULL (RFC 23): each side sends READY with its metadata at once.

use super::{peer_error, Step};
use crate::error::ProtocolError;
use crate::zmtp::command::{Command, Metadata};
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct Null {
    ours: Metadata,
}

impl Null {
    pub(crate) fn new(ours: Metadata) -> Null {
        Null { ours }
    }

    pub(crate) fn start(&mut self, out: &mut BytesMut) {
        Command::Ready(std::mem::take(&mut self.ours)).encode(out);
    }

    pub(crate) fn on_command(&mut self, body: Bytes) -> Result<Step, ProtocolError> {
        match Command::parse(body)? {
            Command::Ready(md) => Ok(Step::Done(md)),
            Command::Error(reason) => Err(peer_error(reason)),
            other => Err(ProtocolError::UnexpectedCommand(
                String::from_utf8_lossy(other.name()).into_owned(),
            )),
        }
    }
}
