//! Every rule of uxwal-archive and uxwal-restore, driven through the real
//! binaries as the database calls them (`sh -c`, current directory = data dir).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

const SEG1: &str = "000000010000000000000003";

fn assert_nothing_archived(site: &Site, name: &str) {
    assert!(
        site.archived(name).is_empty(),
        "{name} must not be in the archive"
    );
    assert!(
        site.staging_files().is_empty(),
        "no staging file may remain: {:?}",
        site.staging_files()
    );
}

#[test]
fn round_trip_every_kind_and_codec() {
    for codec in [
        "",
        "--compress zstd",
        "--compress gzip",
        "--compress none",
        "--compress zstd --level 19",
    ] {
        let site = Site::new();
        let files: Vec<(String, Vec<u8>)> = vec![
            (SEG1.into(), segment(SEG1, MIB, SYSID, 1)),
            (
                "000000010000000000000004".into(),
                segment("000000010000000000000004", MIB, SYSID, 2),
            ),
            (
                "000000010000000000000004.partial".into(),
                segment("000000010000000000000004", MIB, SYSID, 3),
            ),
            (
                "00000002.history".into(),
                b"1\t0/4000000\tno recovery target specified\n".to_vec(),
            ),
            (
                "000000010000000000000003.00000028.backup".into(),
                b"START WAL LOCATION: 0/3000028\n".to_vec(),
            ),
            // A new timeline's first segment keeps the old timeline in its header.
            (
                "000000020000000000000004".into(),
                segment("000000010000000000000004", MIB, SYSID, 4),
            ),
        ];
        for (name, bytes) in &files {
            site.write_wal(name, bytes);
            let r = site.archive(name, codec);
            assert_eq!(r.code, 0, "{codec} {name}: {}", r.stderr);
            assert_eq!(r.stderr, "", "success is silent");
            assert_eq!(site.archived(name).len(), 1, "{name} archived once");
        }
        for (name, bytes) in &files {
            let r = site.restore(name, "");
            assert_eq!(r.code, 0, "{codec} restore {name}: {}", r.stderr);
            assert_eq!(
                site.restored().as_deref(),
                Some(&bytes[..]),
                "{codec} {name} restored exactly"
            );
        }
        assert!(site.staging_files().is_empty());
    }
}

#[test]
fn archived_files_are_private_and_readable_with_standard_tools() {
    let site = Site::new();
    let bytes = segment(SEG1, MIB, SYSID, 7);
    site.write_wal(SEG1, &bytes);
    for (codec, tool) in [
        ("zstd", "zstd -dc"),
        ("gzip", "gzip -dc"),
        ("none", "zstd -dc"),
    ] {
        let repo = site.dir.path().join(format!("repo-{codec}"));
        let r = site.sh(
            &format!(
                "\"$ARCHIVE\" --repo {} --compress {codec} %p %f",
                repo.display()
            ),
            &format!("pg_wal/{SEG1}"),
            SEG1,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let stored = repo.join("wal/0000000100000000").join(SEG1);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{tool} < {}", stored.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} must read a {codec} object");
        assert_eq!(out.stdout, bytes, "{tool} restores the original bytes");
        assert_eq!(
            fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for dir in [
            repo.clone(),
            repo.join("wal"),
            repo.join("wal/0000000100000000"),
            repo.join("tmp"),
        ] {
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                dir.display()
            );
        }
    }
}

#[test]
fn bad_names_are_refused_and_nothing_is_written() {
    let site = Site::new();
    site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
    for bad in [
        "../000000010000000000000003",
        "00000001000000000000000a",
        "''",
        "pg_wal/x",
        "RECOVERYXLOG",
        "..",
        "000000010000000000000003.gz",
    ] {
        let r = site.sh(
            "\"$ARCHIVE\" --repo \"$REPO\" %p %f",
            &format!("pg_wal/{SEG1}"),
            bad,
        );
        assert_eq!(r.code, 1, "archive {bad}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("uxwal-archive: error: ")
                && r.stderr.contains("not a WAL file name"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1);
        let r = site.sh(
            "\"$RESTORE\" --repo \"$REPO\" %f %p",
            "pg_wal/RECOVERYXLOG",
            bad,
        );
        assert_eq!(r.code, 1, "restore {bad}: {}", r.stderr);
        assert_eq!(site.restored(), None);
    }
    assert!(
        !site.repo.exists(),
        "a bad name touches nothing, not even the repository"
    );
}

#[test]
fn source_must_be_a_readable_regular_file() {
    let site = Site::new();
    fs::create_dir(site.wal(SEG1)).unwrap();
    let r = site.archive(SEG1, "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    let r = site.archive("000000010000000000000009", "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot read pg_wal/000000010000000000000009"),
        "{}",
        r.stderr
    );
    assert_nothing_archived(&site, SEG1);
}

#[test]
fn segment_headers_must_match_the_name() {
    let site = Site::new();
    let good = segment(SEG1, MIB, SYSID, 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("000000010000000000000005", good.clone(), "page address"),
        (SEG1, good[..good.len() - 1].to_vec(), "bytes"),
        (SEG1, vec![0u8; MIB as usize], "long-header"),
        (SEG1, b"not wal".to_vec(), "shorter"),
        (
            "000000010000000000000005.partial",
            good.clone(),
            "page address",
        ),
    ];
    for (name, bytes, why) in cases {
        site.write_wal(name, &bytes);
        let r = site.archive(name, "");
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains(name) && r.stderr.contains(why),
            "{}",
            r.stderr
        );
        assert_nothing_archived(&site, name);
    }
}

#[test]
fn another_cluster_is_refused_by_identity() {
    let site = Site::new();
    site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
    assert_eq!(site.archive(SEG1, "").code, 0);
    let other = "000000010000000000000004";
    site.write_wal(other, &segment(other, MIB, 42, 1));
    let r = site.archive(other, "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&SYSID.to_string())
            && r.stderr.contains("42")
            && r.stderr.contains("separate repository"),
        "{}",
        r.stderr
    );
    // Same cluster, other segment size: also refused.
    site.write_wal(other, &segment(other, 2 * MIB, SYSID, 1));
    let r = site.archive(other, "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("segments"), "{}", r.stderr);
    assert_nothing_archived(&site, other);
}

#[test]
fn unknown_page_magic_is_accepted_on_a_new_archive_then_pinned() {
    let site = Site::new();
    let mut bytes = segment(SEG1, MIB, SYSID, 1);
    bytes[0..2].copy_from_slice(&0xBEEFu16.to_le_bytes());
    site.write_wal(SEG1, &bytes);
    assert_eq!(site.archive(SEG1, "").code, 0, "UXDB may use its own magic");
    let next = "000000010000000000000004";
    let mut other = segment(next, MIB, SYSID, 1);
    other[0..2].copy_from_slice(&0xBEEEu16.to_le_bytes());
    site.write_wal(next, &other);
    let r = site.archive(next, "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("magic"), "{}", r.stderr);
}

#[test]
fn duplicates_identical_succeed_and_different_are_refused() {
    for name in [
        SEG1,
        "00000002.history",
        "000000010000000000000003.partial",
        "000000010000000000000003.00000028.backup",
    ] {
        let site = Site::new();
        let (first, second) = if name == SEG1 || name.ends_with(".partial") {
            (segment(SEG1, MIB, SYSID, 1), segment(SEG1, MIB, SYSID, 2))
        } else {
            (
                b"1\t0/3000000\tbefore\n".to_vec(),
                b"1\t0/3000000\tsplit brain\n".to_vec(),
            )
        };
        site.write_wal(name, &first);
        assert_eq!(site.archive(name, "").code, 0);
        // Identical again, even with another codec: success and one line.
        let r = site.archive(name, "--compress gzip");
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr.contains("already archived with identical content"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1);
        let r = site.archive(name, "--quiet");
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (0, ""),
            "--quiet hides the informational line"
        );
        // Different: refused, archive unchanged.
        site.write_wal(name, &second);
        let r = site.archive(name, "");
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("refusing to overwrite") && r.stderr.contains(name),
            "{}",
            r.stderr
        );
        assert_eq!(site.restore(name, "").code, 0);
        assert_eq!(
            site.restored().unwrap(),
            first,
            "{name}: the first content stays"
        );
        assert!(site.staging_files().is_empty());
    }
}

#[test]
fn a_damaged_copy_is_never_taken_for_a_duplicate() {
    let site = Site::new();
    let bytes = segment(SEG1, MIB, SYSID, 1);
    site.write_wal(SEG1, &bytes);
    assert_eq!(site.archive(SEG1, "--compress none").code, 0);
    let stored = &site.archived(SEG1)[0];
    let mut damaged = fs::read(stored).unwrap();
    damaged[1000] ^= 0xFF;
    fs::write(stored, &damaged).unwrap();
    let r = site.archive(SEG1, "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
}

#[test]
fn restore_of_a_missing_file_is_fast_and_quiet() {
    let site = Site::new();
    site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
    assert_eq!(site.archive(SEG1, "").code, 0);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    for name in [
        "000000010000000000000004",
        "00000003.history",
        "000000020000000000000003",
    ] {
        let r = site.restore(name, "");
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(
            r.stderr, "",
            "a miss is normal: the database asks for files that do not exist"
        );
        assert_eq!(site.restored(), None);
    }
}

fn wal_dir_entries(site: &Site) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(site.data.join("pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A way to damage an archived file.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// Damages the archived copy of SEG1 in place.
fn damage(site: &Site, how: &dyn Fn(&mut Vec<u8>)) {
    let stored = &site.archived(SEG1)[0];
    let mut bytes = fs::read(stored).unwrap();
    how(&mut bytes);
    fs::write(stored, &bytes).unwrap();
}

#[test]
fn damaged_archive_files_never_reach_the_destination() {
    let cases: Vec<(&str, Damage)> = vec![
        ("flipped byte", Box::new(|b: &mut Vec<u8>| b[200] ^= 0x01)),
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)),
        ),
        (
            "trailer cut",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 10)),
        ),
        ("empty", Box::new(|b: &mut Vec<u8>| b.clear())),
    ];
    for codec in ["zstd", "gzip", "none"] {
        for (what, how) in &cases {
            let site = Site::new();
            site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
            assert_eq!(site.archive(SEG1, &format!("--compress {codec}")).code, 0);
            damage(&site, how.as_ref());
            // Point-in-time recovery: stop the recovery (exit > 125), after brief retries.
            fs::write(site.data.join("recovery.signal"), "").unwrap();
            let r = site.restore(SEG1, "");
            assert_eq!(r.code, 200, "{codec} {what}: {}", r.stderr);
            assert!(
                r.stderr.lines().last().unwrap().contains(SEG1),
                "{}",
                r.stderr
            );
            assert_eq!(
                site.restored(),
                None,
                "{codec} {what}: nothing at the destination"
            );
            assert_eq!(
                wal_dir_entries(&site),
                vec![SEG1.to_string()],
                "no staging file left"
            );
            // Standby: exit 1, it falls back to streaming and asks again.
            fs::write(site.data.join("standby.signal"), "").unwrap();
            let r = site.restore(SEG1, "");
            assert_eq!(r.code, 1, "{codec} {what}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1);
            // Forced policies.
            assert_eq!(site.restore(SEG1, "--on-error abort").code, 200);
            fs::remove_file(site.data.join("standby.signal")).unwrap();
            assert_eq!(site.restore(SEG1, "--on-error missing").code, 1);
            assert_eq!(site.restored(), None);
        }
    }
}

#[test]
fn an_unmounted_or_empty_repository_is_an_error_not_a_miss() {
    let site = Site::new();
    fs::create_dir_all(&site.repo).unwrap();
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let r = site.restore(SEG1, "");
    assert_eq!(r.code, 200, "{}", r.stderr);
    assert!(r.stderr.contains("not a uxwal repository"), "{}", r.stderr);
    fs::write(site.data.join("standby.signal"), "").unwrap();
    assert_eq!(site.restore(SEG1, "").code, 1);
}

#[test]
fn restore_to_an_absolute_path_from_anywhere_like_pg_rewind() {
    let site = Site::new();
    let bytes = segment(SEG1, MIB, SYSID, 1);
    site.write_wal(SEG1, &bytes);
    assert_eq!(site.archive(SEG1, "").code, 0);
    let dest = site.dir.path().join("target_wal").join(SEG1);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let out = Command::new(RESTORE)
        .args([
            "--repo",
            site.repo.to_str().unwrap(),
            SEG1,
            dest.to_str().unwrap(),
        ])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&dest).unwrap(), bytes);
    // A destination directory that does not exist is an error, not a miss.
    let out = Command::new(RESTORE)
        .args([
            "--repo",
            site.repo.to_str().unwrap(),
            "--on-error",
            "abort",
            SEG1,
            "/nonexistent/dir/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(200));
}

#[test]
fn usage_errors_exit_2() {
    for (bin, args) in [
        (ARCHIVE, vec![]),
        (ARCHIVE, vec!["--repo", "/tmp/x", "onlyone"]),
        (ARCHIVE, vec!["--bogus", "a", "b"]),
        (ARCHIVE, vec!["--compress", "lz4", "a", "b"]),
        (ARCHIVE, vec!["--quiet", "--verbose", "a", "b"]),
        (RESTORE, vec![]),
        (RESTORE, vec!["--on-error", "maybe", "a", "b"]),
        (RESTORE, vec!["a", "b", "c"]),
    ] {
        let out = Command::new(bin)
            .args(&args)
            .env_remove("UXWAL_REPO")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}");
    }
    for bin in [ARCHIVE, RESTORE] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("archive format 1"));
    }
}

#[test]
fn configuration_file_environment_and_command_line() {
    let site = Site::new();
    site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
    let conf = site.dir.path().join("uxwal.toml");
    let file_repo = site.dir.path().join("file-repo");
    fs::write(
        &conf,
        format!("repo = \"{}\"\ncompress = \"gzip\"\n", file_repo.display()),
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(ARCHIVE);
        c.args(args)
            .arg(format!("pg_wal/{SEG1}"))
            .arg(SEG1)
            .current_dir(&site.data);
        c.env_remove("UXWAL_REPO").env_remove("UXWAL_CONFIG");
        for (k, v) in env {
            c.env(k, v);
        }
        Ran::from(c.output().unwrap())
    };
    let conf_s = conf.to_str().unwrap();
    // The file alone.
    assert_eq!(run(&["--config", conf_s], &[]).code, 0);
    let stored = file_repo.join("wal/0000000100000000").join(SEG1);
    assert_eq!(
        &fs::read(&stored).unwrap()[..2],
        &[0x1F, 0x8B],
        "compress from the file"
    );
    // Environment beats the file, the command line beats the environment.
    let env_repo = site.dir.path().join("env-repo");
    let cli_repo = site.dir.path().join("cli-repo");
    assert_eq!(
        run(
            &[],
            &[
                ("UXWAL_CONFIG", conf_s),
                ("UXWAL_REPO", env_repo.to_str().unwrap())
            ]
        )
        .code,
        0
    );
    assert!(env_repo.join("FORMAT").exists());
    let r = run(
        &["--repo", cli_repo.to_str().unwrap(), "--compress", "zstd"],
        &[("UXWAL_CONFIG", conf_s), ("UXWAL_REPO", "/nonexistent")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        &fs::read(cli_repo.join("wal/0000000100000000").join(SEG1)).unwrap()[..4],
        &[0x28, 0xB5, 0x2F, 0xFD]
    );
    // Unknown keys and missing files are errors; so is no repository at all.
    fs::write(&conf, "repo = \"/x\"\ncompresion = \"gzip\"\n").unwrap();
    let r = run(&["--config", conf_s], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("compresion"), "{}", r.stderr);
    assert_eq!(run(&["--config", "/nonexistent.toml"], &[]).code, 1);
    let r = run(&[], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no repository"), "{}", r.stderr);
    // A broken configuration during point-in-time recovery stops the recovery.
    let out = Command::new(RESTORE)
        .args(["--config", conf_s, SEG1, "pg_wal/RECOVERYXLOG"])
        .current_dir(&site.data)
        .env_remove("UXWAL_REPO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(200));
    // Out-of-range level.
    assert_eq!(
        run(
            &["--repo", cli_repo.to_str().unwrap(), "--level", "42"],
            &[]
        )
        .code,
        1
    );
}

#[test]
fn a_full_disk_fails_cleanly() {
    require_root("it mounts a small filesystem to fill");
    let site = Site::new();
    let _disk = Tmpfs::mount(&site.repo, "2m");
    let mut bytes = segment(SEG1, 4 * MIB, SYSID, 1);
    noise(&mut bytes[64..], 9);
    site.write_wal(SEG1, &bytes);
    let r = site.archive(SEG1, "--compress none");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(SEG1) && r.stderr.contains("No space left"),
        "{}",
        r.stderr
    );
    assert_nothing_archived(&site, SEG1);
    // Restoring onto a full disk: an error, nothing at the destination.
    let small = segment(SEG1, MIB, SYSID, 2);
    let other = Site::new();
    other.write_wal(SEG1, &small);
    assert_eq!(other.archive(SEG1, "").code, 0);
    let _wal_disk = Tmpfs::mount(&site.data.join("pg_wal"), "512k");
    let r = site.sh(
        &format!(
            "\"$RESTORE\" --repo {} --on-error abort %f %p",
            other.repo.display()
        ),
        "pg_wal/RECOVERYXLOG",
        SEG1,
    );
    assert_eq!(r.code, 200, "{}", r.stderr);
    assert_eq!(
        wal_dir_entries(&site),
        Vec::<String>::new(),
        "no partial file left"
    );
}

#[test]
fn permission_denied_fails_cleanly() {
    require_root("it runs uxwal-archive as the postgres user, whom root's files deny access");
    let site = Site::new();
    fs::set_permissions(site.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&site.data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(site.data.join("pg_wal"), fs::Permissions::from_mode(0o755)).unwrap();
    site.write_wal(SEG1, &segment(SEG1, MIB, SYSID, 1));
    fs::set_permissions(site.wal(SEG1), fs::Permissions::from_mode(0o600)).unwrap();
    let bin = site.dir.path().join("uxwal-archive");
    fs::copy(ARCHIVE, &bin).unwrap();
    let as_postgres = |args: &[&str]| -> Ran {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&bin)
            .args(args)
            .current_dir(&site.data)
            .output()
            .unwrap()
            .into()
    };
    // Unreadable source.
    let r = as_postgres(&["--repo", "/tmp", &format!("pg_wal/{SEG1}"), SEG1]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("Permission denied") && r.stderr.contains(SEG1),
        "{}",
        r.stderr
    );
    // Readable source, repository not writable.
    fs::set_permissions(site.wal(SEG1), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(&site.repo).unwrap();
    let r = as_postgres(&[
        "--repo",
        site.repo.to_str().unwrap(),
        &format!("pg_wal/{SEG1}"),
        SEG1,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn kill_9_while_archiving_leaves_no_final_file_and_the_retry_cleans_up() {
    let site = Site::new();
    // A large incompressible segment at gzip's slowest level takes a while to write.
    let mut bytes = segment(SEG1, 256 * MIB, SYSID, 1);
    noise(&mut bytes[64..], 3);
    site.write_wal(SEG1, &bytes);
    let mut child = Command::new(ARCHIVE)
        .args([
            "--repo",
            site.repo.to_str().unwrap(),
            "--compress",
            "gzip",
            "--level",
            "9",
        ])
        .arg(format!("pg_wal/{SEG1}"))
        .arg(SEG1)
        .current_dir(&site.data)
        .spawn()
        .unwrap();
    // Wait (by condition, not by time) until the staging file holds data.
    poll_until("the segment's staging file to hold data", || {
        // The segment's own staging file: FORMAT and IDENTITY are staged first.
        let staged: u64 = site
            .staging_files()
            .iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(SEG1))
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if staged > 0 {
            return Ok(());
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "archive finished before it could be killed"
        );
        Err("no staged data yet".to_string())
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        site.archived(SEG1).is_empty(),
        "nothing under the final name"
    );
    let left = site.staging_files();
    assert_eq!(left.len(), 1);
    assert!(
        left[0].to_string_lossy().ends_with(".uxwal-tmp"),
        "recognisable: {left:?}"
    );
    // The database retries: it succeeds and removes the dead writer's file.
    let r = site.archive(SEG1, "--compress zstd --level 1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(site.staging_files().is_empty());
    assert_eq!(site.restore(SEG1, "").code, 0);
    assert_eq!(site.restored().unwrap(), bytes);
}
