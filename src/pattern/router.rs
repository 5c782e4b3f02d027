//! STUB
use super::*;
#[derive(Debug)]
pub struct Router;
impl Router { pub fn new(_seed: u64) -> Self { Router } }
impl Pattern for Router {
    fn attach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}
    fn detach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}
    fn send(&mut self, msg: Message, _pipes: &mut Pipes) -> Result<(), SendError> { Err(SendError::new(Error::WouldBlock, msg)) }
    fn recv(&mut self, _pipes: &mut Pipes) -> Result<Message, Error> { Err(Error::WouldBlock) }
}
