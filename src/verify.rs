//! `uxwal-verify`: prove an archive is complete and intact (stub).
