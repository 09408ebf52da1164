//! The committed man pages are generated from the same clap definitions as
//! `--help`; this fails when they are stale. Regenerate with:
//!
//! ```text
//! UXWAL_UPDATE_MAN=1 cargo test --test man_pages
//! ```

use std::path::Path;

use clap::CommandFactory;
use uxwal::cli::{ArchiveCli, CleanupCli, RestoreCli, VerifyCli};

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).unwrap();
    out
}

#[test]
fn man_pages_match_the_code() {
    let pages = [
        ("uxwal-archive.1", render(ArchiveCli::command())),
        ("uxwal-restore.1", render(RestoreCli::command())),
        ("uxwal-cleanup.1", render(CleanupCli::command())),
        ("uxwal-verify.1", render(VerifyCli::command())),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("UXWAL_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (name, generated) in pages {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &generated).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&generated[..]) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run UXWAL_UPDATE_MAN=1 cargo test --test man_pages and commit man/"
    );
}

#[test]
fn every_option_and_exit_code_is_in_the_man_page() {
    for (cmd, page) in [
        (ArchiveCli::command(), "uxwal-archive.1"),
        (RestoreCli::command(), "uxwal-restore.1"),
        (CleanupCli::command(), "uxwal-cleanup.1"),
        (VerifyCli::command(), "uxwal-verify.1"),
    ] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(page))
                .unwrap();
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "{page} lacks --{long}"
                );
            }
        }
        for code in ["0 ", "1 ", "2 "] {
            assert!(text.contains(code), "{page} lacks exit code {code}");
        }
    }
}
