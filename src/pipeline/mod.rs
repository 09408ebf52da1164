//! The data path, one file at a time: [`ship`] (validate -> hash and compress
//! in one streaming pass -> put-if-absent into every repository -> confirm)
//! and [`fetch`] (get -> decode and verify -> publish at the destination).
//! [`stamp`] identifies the local file that was shipped, for push-ahead's
//! confirmations. All use only the core: WAL names and headers, codecs, durable writes and
//! repositories.

pub mod fetch;
pub mod ship;
pub mod stamp;
