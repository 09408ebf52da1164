//! What uxwal knows of the database's WAL: file names ([`name`]) and the long
//! page header that starts every segment ([`header`]).

pub mod header;
pub mod name;
