//! STUB
use super::*;
#[derive(Debug)]
pub struct Push;
impl Push { pub fn new() -> Self { Push } }
impl Pattern for Push {
    fn attach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}
    fn detach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}
    fn send(&mut self, msg: Message, _pipes: &mut Pipes) -> Result<(), SendError> { Err(SendError::new(Error::WouldBlock, msg)) }
    fn recv(&mut self, _pipes: &mut Pipes) -> Result<Message, Error> { Err(Error::WouldBlock) }
}
