//! NULL (RFC 23): each side sends READY with its metadata at once. With
//! a `zap_domain` and a ZAP handler, the handler is asked first (with no
//! credentials), as libzmq does; a refusal sends ERROR instead of READY.

use super::{peer_error, send_refusal, Credentials, Step, ZapContext, PROP_USER_ID};
use crate::error::ProtocolError;
use crate::zmtp::command::{Command, Metadata};
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct Null {
    ours: Metadata,
    zap: ZapContext,
    user_id: Option<Bytes>,
}

impl Null {
    pub(crate) fn new(ours: Metadata, zap: ZapContext) -> Null {
        Null {
            ours,
            zap,
            user_id: None,
        }
    }

    pub(crate) fn start(&mut self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        if !self.zap.domain.is_empty() {
            match self.zap.authenticate("NULL", Credentials::Null) {
                Ok(user_id) => self.user_id = user_id,
                Err(e) => {
                    send_refusal(out, &e);
                    return Err(e);
                }
            }
        }
        Command::Ready(std::mem::take(&mut self.ours)).encode(out);
        Ok(())
    }

    pub(crate) fn on_command(&mut self, body: Bytes) -> Result<Step, ProtocolError> {
        match Command::parse(body)? {
            Command::Ready(mut md) => {
                if let Some(user_id) = self.user_id.take() {
                    md.push(PROP_USER_ID, user_id);
                }
                Ok(Step::Done(md))
            }
            Command::Error(reason) => Err(peer_error(reason)),
            other => Err(ProtocolError::UnexpectedCommand(
                String::from_utf8_lossy(other.name()).into_owned(),
            )),
        }
    }
}
