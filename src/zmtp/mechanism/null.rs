//! NULL (RFC 23): each side sends READY with its metadata at once. With
//! a `zap_domain`, ZAP is asked first (with no credentials), as libzmq
//! does: our READY waits for the answer, and a refusal sends ERROR
//! instead. The peer's READY may come meanwhile (it does not wait for
//! ours); it is kept until the answer.

use super::{
    merge, peer_error, send_refusal, zap_outcome, Credentials, Step, ZapAnswer, ZapContext,
};
use crate::error::ProtocolError;
use crate::zmtp::command::{Command, Metadata};
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(crate) struct Null {
    ours: Metadata,
    zap: ZapContext,
    /// A ZAP request is out: our READY waits for its answer.
    awaiting_zap: bool,
    /// The peer's READY, when it came before ZAP's answer.
    peer_ready: Option<Metadata>,
    /// What ZAP added to the peer's metadata.
    zap_md: Metadata,
}

impl Null {
    pub(crate) fn new(ours: Metadata, zap: ZapContext) -> Null {
        Null {
            ours,
            zap,
            awaiting_zap: false,
            peer_ready: None,
            zap_md: Metadata::new(),
        }
    }

    pub(crate) fn start(&mut self, out: &mut BytesMut) -> Step {
        if !self.zap.domain.is_empty() {
            self.awaiting_zap = true;
            return Step::Zap(self.zap.request("NULL", Credentials::Null));
        }
        Command::Ready(std::mem::take(&mut self.ours)).encode(out);
        Step::Continue
    }

    pub(crate) fn on_command(&mut self, body: Bytes) -> Result<Step, ProtocolError> {
        match Command::parse(body)? {
            Command::Ready(md) if self.awaiting_zap => {
                if self.peer_ready.is_some() {
                    return Err(ProtocolError::UnexpectedCommand("READY".into()));
                }
                self.peer_ready = Some(md);
                Ok(Step::Continue)
            }
            Command::Ready(mut md) => {
                merge(&mut md, std::mem::take(&mut self.zap_md));
                Ok(Step::Done(md))
            }
            Command::Error(reason) => Err(peer_error(reason)),
            other => Err(ProtocolError::UnexpectedCommand(
                String::from_utf8_lossy(other.name()).into_owned(),
            )),
        }
    }

    pub(crate) fn on_zap_reply(
        &mut self,
        answer: ZapAnswer,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        self.awaiting_zap = false;
        let zap_md = zap_outcome(answer).inspect_err(|e| send_refusal(out, e))?;
        Command::Ready(std::mem::take(&mut self.ours)).encode(out);
        match self.peer_ready.take() {
            Some(mut md) => {
                merge(&mut md, zap_md);
                Ok(Step::Done(md))
            }
            None => {
                self.zap_md = zap_md;
                Ok(Step::Continue)
            }
        }
    }
}
