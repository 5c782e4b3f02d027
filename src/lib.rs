//! ferrozmq
#![deny(missing_docs)]

mod backoff;
mod context;
pub mod endpoint;
pub mod error;
mod io;
pub mod message;
pub mod monitor;
pub mod options;
pub mod pattern;
mod socket;
pub mod socket_type;
pub mod zmtp;

pub use context::Context;
pub use error::{Error, ProtocolError, Result, SendError};
pub use message::Message;
pub use monitor::{ConnectFailure, EventKind, MonitorEvent};
pub use pattern::Stats as SocketStats;
pub use socket::Socket;
pub use socket_type::SocketType;
