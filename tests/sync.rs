//! uxwal-sync with the real binaries: a repository archived into by
//! uxwal-archive is copied into another, locally and through S3 (moto); the
//! copy restores byte-identical and verifies clean, a second run copies
//! nothing, and conflicts, damaged objects and another cluster's repository
//! are refused by name.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::servers::S3;
use common::*;
use serde_json::Value;

const SYNC: &str = env!("CARGO_BIN_EXE_uxwal-sync");
const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

const BACKUP: &str = "000000010000000000000002.00000028.backup";
const HISTORY: &str = "00000002.history";

fn seg(n: u32) -> String {
    format!("0000000100000000000000{n:02X}")
}

/// Runs uxwal-sync with `env`; parses stdout when `--json` is given.
fn sync(env: &[(String, String)], args: &[&str]) -> (Ran, Option<Value>) {
    let ran: Ran = Command::new(SYNC)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into();
    let json = args.contains(&"--json").then(|| {
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
    });
    (ran, json)
}

fn local(from: &Site, to: &Path, extra: &[&str]) -> (Ran, Option<Value>) {
    let mut args = vec!["--from", &from.location, "--to", to.to_str().unwrap()];
    args.extend_from_slice(extra);
    sync(&[], &args)
}

fn archive(site: &Site, name: &str, bytes: &[u8]) {
    site.write_wal(name, bytes);
    let r = site.archive(name, "");
    assert_eq!(r.code, 0, "archive {name}: {}", r.stderr);
}

/// Segments 1..=4 of `sysid`, a backup history file and a timeline history
/// file, archived into `site`'s repository; returns every file and its bytes.
fn populate(site: &Site, sysid: u64) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (1..=4)
        .map(|n| (seg(n), segment(&seg(n), MIB, sysid, u64::from(n))))
        .collect();
    files.push((
        BACKUP.into(),
        b"START WAL LOCATION: 0/200028 (file 000000010000000000000002)\n\
STOP WAL LOCATION: 0/200100 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/200060\n\
BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-01-01 00:00:00 UTC\n\
LABEL: nightly\nSTART TIMELINE: 1\nSTOP TIME: 2025-01-01 00:00:01 UTC\nSTOP TIMELINE: 1\n"
            .to_vec(),
    ));
    files.push((
        HISTORY.into(),
        b"1\t0/500000\tno recovery target specified\n".to_vec(),
    ));
    for (name, bytes) in &files {
        archive(site, name, bytes);
    }
    files
}

fn key(name: &str) -> String {
    match name.strip_suffix(".history") {
        Some(_) => format!("history/{name}"),
        None => format!("wal/{}/{name}", &name[..16]),
    }
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Every file restores from `site`'s repository byte-identical.
fn restores_identically(site: &Site, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let r = site.restore(name, "");
        assert_eq!(r.code, 0, "restore {name}: {}", r.stderr);
        assert_eq!(site.restored().as_deref(), Some(&bytes[..]), "{name}");
    }
}

fn verify_clean(location: &str, env: &[(String, String)]) {
    let r: Ran = Command::new(VERIFY)
        .args(["--repo", location])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "verify {location}: {}{}", r.stdout, r.stderr);
}

/// A site whose repository is `repo` (to archive into or restore from it).
fn site_at(repo: &Path) -> Site {
    let mut site = Site::new();
    site.repo = repo.to_path_buf();
    site.location = repo.display().to_string();
    site
}

#[test]
fn copies_everything_byte_for_byte_and_a_second_run_copies_nothing() {
    let a = Site::new();
    let files = populate(&a, SYSID);
    let b = a.dir.path().join("copy");
    let (ran, v) = local(&a, &b, &["--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!(count(&v, "copied"), 6, "{v}");
    assert_eq!(count(&v, "skipped"), 0, "{v}");
    let stored: u64 = files
        .iter()
        .map(|(n, _)| fs::metadata(a.repo.join(key(n))).unwrap().len())
        .sum();
    assert_eq!(count(&v, "bytes"), stored, "{v}");
    for (name, _) in &files {
        assert_eq!(
            fs::read(a.repo.join(key(name))).unwrap(),
            fs::read(b.join(key(name))).unwrap(),
            "{name} is copied as stored"
        );
    }
    for meta in ["FORMAT", "IDENTITY"] {
        assert_eq!(
            fs::read(a.repo.join(meta)).unwrap(),
            fs::read(b.join(meta)).unwrap(),
            "{meta}"
        );
    }
    restores_identically(&site_at(&b), &files);
    verify_clean(b.to_str().unwrap(), &[]);

    // Resuming is running again: everything is there, nothing is copied.
    let (ran, v) = local(&a, &b, &["--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!((count(&v, "copied"), count(&v, "skipped")), (0, 6), "{v}");
    assert_eq!(count(&v, "bytes"), 0, "{v}");
}

#[test]
fn a_run_cut_short_is_resumed_by_running_again() {
    let a = Site::new();
    let files = populate(&a, SYSID);
    let b = a.dir.path().join("copy");
    // The first run stopped after the files up to segment 2 (what a killed
    // run leaves: some files created whole, the others absent).
    let (ran, _) = local(&a, &b, &["--from-segment", &seg(3), "-j", "2"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!b.join(key(&seg(1))).exists());
    assert!(b.join(key(&seg(3))).exists());
    assert!(b.join(key(HISTORY)).exists() && b.join(key(BACKUP)).exists());
    let (ran, v) = local(&a, &b, &["--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!((count(&v, "copied"), count(&v, "skipped")), (2, 4), "{v}");
    restores_identically(&site_at(&b), &files);
}

#[test]
fn a_dry_run_lists_and_writes_nothing() {
    let a = Site::new();
    populate(&a, SYSID);
    let b = a.dir.path().join("copy");
    let (ran, _) = local(&a, &b, &["--dry-run", "--from-segment", &seg(4)]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let listed: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("would copy wal/") || l.starts_with("would copy history/"))
        .collect();
    assert_eq!(listed.len(), 3, "{}", ran.stdout);
    for name in [HISTORY, BACKUP, &seg(4)] {
        assert!(ran.stdout.contains(&key(name)), "{name}: {}", ran.stdout);
    }
    assert!(!b.exists(), "a dry run creates nothing");

    let (ran, v) = local(&a, &b, &["--dry-run", "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!(count(&v, "copied"), 6, "{v}");
    assert_eq!(v["dry_run"], true, "{v}");
    assert!(!b.exists(), "a dry run creates nothing");
}

#[test]
fn a_conflict_is_named_and_the_other_files_are_still_copied() {
    let a = Site::new();
    let files = populate(&a, SYSID);
    let b = site_at(&a.dir.path().join("copy"));
    let theirs = segment(&seg(2), MIB, SYSID, 77);
    archive(&b, &seg(2), &theirs);
    let before = fs::read(b.repo.join(key(&seg(2)))).unwrap();

    let (ran, v) = local(&a, &b.repo, &["--json"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!(count(&v, "conflicts"), 1, "{v}");
    assert_eq!(count(&v, "copied"), 5, "{v}");
    assert_eq!(v["problems"][0]["file"], seg(2).as_str(), "{v}");
    assert!(
        ran.stderr.contains("uxwal-sync") && ran.stderr.contains(&seg(2)),
        "{}",
        ran.stderr
    );
    assert_eq!(
        fs::read(b.repo.join(key(&seg(2)))).unwrap(),
        before,
        "never overwritten"
    );
    let others: Vec<_> = files.into_iter().filter(|(n, _)| *n != seg(2)).collect();
    restores_identically(&b, &others);
}

#[test]
fn a_damaged_source_object_is_not_copied() {
    let a = Site::new();
    populate(&a, SYSID);
    let object = a.repo.join(key(&seg(3)));
    let mut bytes = fs::read(&object).unwrap();
    bytes[60] ^= 0x10;
    fs::write(&object, bytes).unwrap();
    let b = a.dir.path().join("copy");

    let (ran, v) = local(&a, &b, &["--json"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!((count(&v, "damaged"), count(&v, "copied")), (1, 5), "{v}");
    assert!(ran.stderr.contains(&seg(3)), "{}", ran.stderr);
    assert!(
        !b.join(key(&seg(3))).exists(),
        "a damaged object is not copied"
    );
    assert!(b.join(key(&seg(4))).exists());
}

#[test]
fn another_clusters_repository_is_refused_before_anything_is_copied() {
    let a = Site::new();
    populate(&a, SYSID);
    let b = site_at(&a.dir.path().join("copy"));
    archive(&b, &seg(7), &segment(&seg(7), MIB, SYSID + 1, 7));

    let (ran, _) = local(&a, &b.repo, &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("database system") && ran.stderr.contains("nothing was copied"),
        "{}",
        ran.stderr
    );
    assert!(!b.repo.join("history").exists());
    let wal: Vec<_> = fs::read_dir(b.repo.join("wal/0000000100000000"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(wal, [seg(7).as_str()], "nothing was copied");
}

#[test]
fn usage_errors_and_a_missing_source_exit_2() {
    let a = Site::new();
    let b = a.dir.path().join("copy");
    let (ran, _) = local(&a, &b, &[]);
    assert_eq!(ran.code, 2, "not a repository yet: {}", ran.stderr);
    assert!(
        ran.stderr.contains("not a uxwal repository"),
        "{}",
        ran.stderr
    );
    let (ran, _) = local(&a, &b, &["--from-segment", "nonsense"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    let (ran, _) = sync(&[], &["--from", "/x"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
}

/// Syncs `a` into the object storage repository of `remote` (its location
/// and environment): all 6 files copied, restored identically, verify clean;
/// a second run skips all 6.
fn copies_into_remote(a: &Site, files: &[(String, Vec<u8>)], remote: &Site) {
    let args = ["--from", &a.location, "--to", &remote.location, "--json"];
    let (ran, v) = sync(&remote.env, &args);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(v.as_ref().unwrap(), "copied"), 6);
    restores_identically(remote, files);
    verify_clean(&remote.location, &remote.env);
    let (ran, v) = sync(&remote.env, &args);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(v.as_ref().unwrap(), "skipped"), 6);
}

#[test]
fn local_to_s3_and_back() {
    let s3 = S3::start("walbucket");
    let a = Site::new();
    let files = populate(&a, SYSID);

    let remote = s3.site("cluster/copy");
    copies_into_remote(&a, &files, &remote);

    // And from S3 into a new local directory.
    let back = a.dir.path().join("back");
    let (ran, v) = sync(
        &s3.env(),
        &[
            "--from",
            &remote.location,
            "--to",
            back.to_str().unwrap(),
            "--json",
            "-j",
            "3",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(v.as_ref().unwrap(), "copied"), 6);
    for (name, _) in &files {
        assert_eq!(
            fs::read(a.repo.join(key(name))).unwrap(),
            fs::read(back.join(key(name))).unwrap(),
            "{name}"
        );
    }
    restores_identically(&site_at(&back), &files);
    verify_clean(back.to_str().unwrap(), &[]);
}

#[test]
fn local_to_azure_and_back() {
    let azure = common::servers::Azure::start("walcontainer");
    let a = Site::new();
    let files = populate(&a, SYSID);
    let mut remote = Site::new();
    remote.location = azure.location("cluster/copy");
    remote.env = azure.env();
    copies_into_remote(&a, &files, &remote);

    let back = a.dir.path().join("back");
    let (ran, v) = sync(
        &azure.env(),
        &[
            "--from",
            &remote.location,
            "--to",
            back.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(v.as_ref().unwrap(), "copied"), 6);
    for (name, _) in &files {
        assert_eq!(
            fs::read(a.repo.join(key(name))).unwrap(),
            fs::read(back.join(key(name))).unwrap(),
            "{name}"
        );
    }
    verify_clean(back.to_str().unwrap(), &[]);
}

/// An encrypted repository is copied as stored: without an identity every
/// object is copied after the checks that need no key and counted
/// unverified; with one, completely checked; a rerun recognises the copies
/// by their keyed digests; the copy restores with the identity.
#[test]
fn an_encrypted_repository_is_copied_encrypted() {
    let a = Site::new();
    let keys = a.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (identity, public) = age_keygen(&keys, "id.txt");
    let digest = digest_key_file(&keys, "digest.key", 0x37);
    let encrypting = format!(
        "--encrypt-to {public} --digest-key-file {}",
        digest.display()
    );
    let mut files = Vec::new();
    for n in 1..=3 {
        let name = seg(n);
        let bytes = segment(&name, MIB, SYSID, u64::from(n));
        a.write_wal(&name, &bytes);
        let ran = a.archive(&name, &encrypting);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        files.push((name, bytes));
    }

    let blind = a.dir.path().join("blind");
    let (ran, v) = local(&a, &blind, &["--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!(
        (count(&v, "copied"), count(&v, "unverified")),
        (3, 3),
        "{v}"
    );
    for (name, _) in &files {
        assert_eq!(
            fs::read(a.repo.join(key(name))).unwrap(),
            fs::read(blind.join(key(name))).unwrap(),
            "{name} copied as stored"
        );
    }
    let id = identity.to_str().unwrap();
    let (ran, v) = local(&a, &blind, &["--json", "--identity", id]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(v.as_ref().unwrap(), "skipped"), 3);

    let checked = a.dir.path().join("checked");
    let (ran, v) = local(&a, &checked, &["--json", "--identity", id]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    assert_eq!(
        (count(&v, "copied"), count(&v, "unverified")),
        (3, 0),
        "{v}"
    );
    let copy = site_at(&checked);
    for (name, bytes) in &files {
        let r = copy.restore(name, &format!("--identity {id} --prefetch 0"));
        assert_eq!(r.code, 0, "restore {name}: {}", r.stderr);
        assert_eq!(copy.restored().as_deref(), Some(&bytes[..]), "{name}");
        // Without the identity the copy is not readable.
        let r = copy.restore(name, "--prefetch 0");
        assert_ne!(r.code, 0, "{name} restored without a key");
    }
}

#[test]
fn a_run_killed_in_the_middle_of_an_upload_is_completed_by_the_next() {
    let s3 = S3::start("walbucket");
    let proxy = common::proxy::Proxy::start(s3.server.port, None);
    let a = Site::new();
    let files = populate(&a, SYSID);
    let mut remote = s3.site("cluster/killed");
    for (k, v) in remote.env.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = proxy.endpoint();
        }
    }
    // The upload of segment 3 is held in the proxy, and the run killed
    // (SIGKILL) while it waits; the held request is then dropped, never
    // reaching the store.
    let held = seg(3);
    proxy.hold_if(move |line| line.starts_with("PUT ") && line.contains(&held));
    let mut run = Command::new(SYNC)
        .args(["--from", &a.location, "--to", &remote.location, "-j", "1"])
        .envs(remote.env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    proxy.until_held();
    run.kill().unwrap();
    run.wait().unwrap();
    proxy.drop_held();
    let r = remote.restore(&seg(3), "--prefetch 0");
    assert_eq!(r.code, 1, "segment 3 is not in the copy: {}", r.stderr);

    // The next run copies what the killed one did not, and skips the rest.
    let args = ["--from", &a.location, "--to", &remote.location, "--json"];
    let (ran, v) = sync(&remote.env, &args);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v = v.unwrap();
    let (copied, skipped) = (count(&v, "copied"), count(&v, "skipped"));
    assert!(copied >= 1, "{v}");
    assert_eq!(copied + skipped, 6, "{v}");
    restores_identically(&remote, &files);
    verify_clean(&remote.location, &remote.env);
}
