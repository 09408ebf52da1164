//! The committed man pages (`man/*.1`) and shell completions (`completions/`)
//! are generated from the same clap definitions as `--help`, so they cannot
//! drift from the code; this fails when they are stale. Regenerate both with:
//!
//! ```text
//! UXWAL_UPDATE_MAN=1 cargo test --test man_pages
//! ```
//!
//! `man/uxwal.7` (the concepts) is written by hand; `tests/docs.rs` checks it
//! against the code, and this file checks that every page renders without a
//! `man --warnings` complaint.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use clap_complete::Shell;
use uxwal::cli::{ArchiveCli, CleanupCli, RestoreCli, SyncCli, VerifyCli};

const UPDATE_HINT: &str =
    "run UXWAL_UPDATE_MAN=1 cargo test --test man_pages and commit man/ and completions/";

fn commands() -> [(&'static str, clap::Command); 5] {
    [
        ("uxwal-archive", ArchiveCli::command()),
        ("uxwal-restore", RestoreCli::command()),
        ("uxwal-cleanup", CleanupCli::command()),
        ("uxwal-verify", VerifyCli::command()),
        ("uxwal-sync", SyncCli::command()),
    ]
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn render_man(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).unwrap();
    out
}

fn render_completion(shell: Shell, mut cmd: clap::Command, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The file names the packages install completions under: bash and fish look
/// a command's completion up by the command's name, zsh by `_<command>`.
fn completion_file(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("{name}.bash"),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        other => unreachable!("no completion file for {other}"),
    }
}

/// Every generated file, as (path relative to the repository, content).
fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, cmd) in commands() {
        files.push((format!("man/{name}.1"), render_man(cmd.clone())));
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            files.push((
                format!("completions/{}", completion_file(shell, name)),
                render_completion(shell, cmd.clone(), name),
            ));
        }
    }
    files
}

fn update_requested() -> bool {
    std::env::var_os("UXWAL_UPDATE_MAN").is_some()
}

/// With `UXWAL_UPDATE_MAN` set, rewrites every generated file (and removes
/// completions no command produces any more) once, before any test reads
/// them: the tests of this file run in parallel.
fn update_if_requested() {
    static UPDATED: std::sync::Once = std::sync::Once::new();
    if !update_requested() {
        return;
    }
    UPDATED.call_once(|| {
        let files = generated_files();
        let completions = repo_path("completions");
        std::fs::create_dir_all(&completions).unwrap();
        for entry in std::fs::read_dir(&completions).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !files
                .iter()
                .any(|(r, _)| *r == format!("completions/{name}"))
            {
                std::fs::remove_file(completions.join(name)).unwrap();
            }
        }
        for (relative, generated) in files {
            std::fs::write(repo_path(&relative), generated).unwrap();
        }
    });
}

#[test]
fn man_pages_and_completions_match_the_code() {
    update_if_requested();
    let stale: Vec<String> = generated_files()
        .into_iter()
        .filter(|(relative, generated)| {
            std::fs::read(repo_path(relative)).ok().as_deref() != Some(&generated[..])
        })
        .map(|(relative, _)| relative)
        .collect();
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: {UPDATE_HINT}"
    );
}

#[test]
fn completions_directory_holds_only_generated_files() {
    update_if_requested();
    // A command or shell dropped from the code must not leave its old
    // completion behind for the packages to install.
    let mut expected: Vec<String> = generated_files()
        .into_iter()
        .filter_map(|(relative, _)| relative.strip_prefix("completions/").map(str::to_owned))
        .collect();
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(repo_path("completions"))
        .expect("completions/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort();
    assert_eq!(present, expected, "{UPDATE_HINT}");
}

#[test]
fn bash_loads_the_bash_completions() {
    update_if_requested();
    for (name, _) in commands() {
        let file = repo_path(&format!("completions/{name}.bash"));
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("source \"$1\" && complete -p {name}"))
            .arg("bash")
            .arg(&file)
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(name) && out.stderr.is_empty(),
            "{}: {stdout} {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_offer_every_long_option() {
    update_if_requested();
    for (name, cmd) in commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let file = completion_file(shell, name);
            let text = std::fs::read_to_string(repo_path(&format!("completions/{file}"))).unwrap();
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let needle = match shell {
                        Shell::Fish => format!("-l {long}"),
                        _ => format!("--{long}"),
                    };
                    assert!(text.contains(&needle), "{file} lacks --{long}");
                }
            }
        }
    }
}

#[test]
fn every_option_and_exit_code_is_in_the_man_page() {
    update_if_requested();
    for (name, cmd) in commands() {
        let page = format!("{name}.1");
        let text = std::fs::read_to_string(repo_path(&format!("man/{page}"))).unwrap();
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

/// Formats `page` as a reader would see it and returns what groff and man
/// complained about (nothing for a clean page).
fn man_warnings(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run man ({e}): install man-db and groff-base (scripts/install-deps)")
        });
    assert!(
        out.status.success(),
        "man -l {} failed: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() > 200,
        "man -l {} rendered almost nothing",
        page.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_page_renders_without_warnings() {
    update_if_requested();
    let mut pages: Vec<PathBuf> = commands()
        .iter()
        .map(|(name, _)| repo_path(&format!("man/{name}.1")))
        .collect();
    pages.push(repo_path("man/uxwal.7"));
    for page in pages {
        let warnings = man_warnings(&page);
        assert!(
            warnings.is_empty(),
            "{}: man --warnings:\n{warnings}",
            page.display()
        );
    }
}

#[test]
fn the_warning_check_can_fail() {
    // Proves the check above is real: a page with an undefined macro is reported.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.7");
    std::fs::write(
        &page,
        ".TH BROKEN 7\n.SH NAME\nbroken \\- a page with an undefined macro\n.SH DESCRIPTION\n\
         Some text long enough to render a few lines of output for the length check.\n\
         .NOSUCHMACRO here\nMore text after the bad line, to pad the rendered page out.\n\
         Even more text, so that the page is clearly longer than two hundred bytes.\n",
    )
    .unwrap();
    let warnings = man_warnings(&page);
    assert!(warnings.contains("NOSUCHMACRO"), "{warnings:?}");
}
