//! Nothing here: the tests against libzmq are in `tests/`. They live in
//! this workspace member, not among the library's own tests, so that the
//! library's dev-dependencies (which every example builds) do not include
//! libzmq, built from C source; `cargo test` at the root runs them all the
//! same.
