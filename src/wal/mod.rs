//! What uxwal knows of the database's WAL: file names ([`name`]), the long
//! page header that starts every segment ([`header`]), positions ([`lsn`]),
//! timeline history files ([`history`]) and the tree they make
//! ([`timeline`]), and backup history files ([`backup_label`]). Each is parsed in exactly one place, here.

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod backup_label;
pub mod header;
pub mod history;
pub mod lsn;
pub mod name;
pub mod timeline;
