//! STUB
use super::{PipeId, Pipes};
use crate::message::Message;
/// Round-robin.
#[derive(Debug, Default)]
pub struct LoadBalancer { _p: () }
impl LoadBalancer {
    /// Sends.
    pub fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<PipeId, Message> { let _ = pipes; Err(msg) }
}
