//! ferrozmq
#![deny(missing_docs)]

pub mod error;
pub mod message;
pub mod pattern;
pub mod socket_type;
pub mod zmtp;

pub use error::{Error, ProtocolError, Result, SendError};
pub use message::Message;
pub use socket_type::SocketType;
