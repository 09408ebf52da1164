//! What each command decides: one module per executable. A command combines
//! the data path ([`crate::pipeline`]) with the background workers
//! (the private `background` module); the exit code it leads to is chosen at the edge
//! ([`crate::exit`]).

pub mod archive;
pub mod cleanup;
mod pool;
pub mod restore;
pub mod sync;
pub mod verify;
