//! The helpers of the library's own tests (`tests/util/`), plus
//! [`interop`]: libzmq sockets from the `zmq` dev-dependency.
#![allow(dead_code)]

#[path = "../../../tests/util/mod.rs"]
mod common;
pub use common::*;

pub mod interop;
