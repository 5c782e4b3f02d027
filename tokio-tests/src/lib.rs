//! Nothing here: the tests of `ferrozmq::tokio` are in `tests/`. They
//! live in this workspace member, not among the library's own tests, so
//! that the library's dev-dependencies (which every example builds) stay
//! free of tokio; `cargo test` at the root runs them all the same.
