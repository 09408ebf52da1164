//! `uxwal-cleanup`: remove archived WAL the database no longer needs (stub).
