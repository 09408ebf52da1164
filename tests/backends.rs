//! One conformance suite, run against every repository kind: a local directory,
//! S3 (moto) and Azure Blob (Azurite). Then the faults only remote storage has:
//! a server that stops answering, bad credentials, an unreachable endpoint.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::servers::{Azure, Server, S3};
use common::*;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use uxwal::repo::remote::{self, Scheme, StoreOptions};

const SEG: &str = "000000010000000000000003";

/// A site whose repository lives on one kind of storage, with its server.
struct Fixture {
    site: Site,
    server: Option<Box<dyn std::any::Any>>,
}

impl Fixture {
    fn local() -> Fixture {
        Fixture {
            site: Site::new(),
            server: None,
        }
    }

    fn s3() -> Fixture {
        let s3 = S3::start("walbucket");
        let site = s3.site("cluster/main");
        Fixture {
            site,
            server: Some(Box::new(s3)),
        }
    }

    fn azure() -> Fixture {
        let az = Azure::start("walcontainer");
        let mut site = Site::new();
        site.location = az.location("cluster/main");
        site.env = az.env();
        Fixture {
            site,
            server: Some(Box::new(az)),
        }
    }

    fn server(&self) -> &Server {
        let any = self.server.as_ref().expect("remote fixture");
        if let Some(s3) = any.downcast_ref::<S3>() {
            &s3.server
        } else {
            &any.downcast_ref::<Azure>().unwrap().server
        }
    }

    /// Replaces an archived object behind uxwal's back (a store client of its own).
    fn overwrite(&self, key: &str, f: &dyn Fn(&mut Vec<u8>)) {
        match &self.server {
            None => {
                let path = self.site.repo.join(key);
                let mut bytes = fs::read(&path).unwrap();
                f(&mut bytes);
                fs::write(&path, bytes).unwrap();
            }
            Some(_) => {
                let scheme = Scheme::of(&self.site.location).unwrap();
                let mut options = StoreOptions::default();
                let table = match scheme {
                    Scheme::S3 => &mut options.s3,
                    _ => &mut options.azure,
                };
                for (k, v) in &self.site.env {
                    table.insert(k.to_ascii_lowercase(), v.clone());
                }
                // The emulator URL variable is read from the process environment.
                table.remove("azurite_blob_storage_url");
                let (store, _, prefix): (Arc<dyn ObjectStore>, _, _) =
                    temp_env(&self.site.env, || {
                        remote::build(scheme, &self.site.location, &options).unwrap()
                    });
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let path = StorePath::from(format!("{prefix}/{key}"));
                rt.block_on(async {
                    let mut bytes = store
                        .get(&path)
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap()
                        .to_vec();
                    f(&mut bytes);
                    store.put(&path, PutPayload::from(bytes)).await.unwrap();
                });
            }
        }
    }
}

/// Runs `f` with `env` set in this process (the Azure emulator URL is read from it).
fn temp_env<T>(env: &[(String, String)], f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    for (k, v) in env {
        // SAFETY: serialised by LOCK; tests that read these variables take it too.
        unsafe { std::env::set_var(k, v) };
    }
    let out = f();
    for (k, _) in env {
        // SAFETY: as above.
        unsafe { std::env::remove_var(k) };
    }
    out
}

fn conformance(fx: Fixture) {
    let site = &fx.site;
    let seg = segment(SEG, MIB, SYSID, 1);
    site.write_wal(SEG, &seg);
    let history = b"1\t0/3000000\tno recovery target specified\n";
    site.write_wal("00000002.history", history);

    fs::write(site.data.join("recovery.signal"), "").unwrap();
    // Archive, restore.
    for name in [SEG, "00000002.history"] {
        let r = site.archive(name, "");
        assert_eq!(r.code, 0, "archive {name}: {}", r.stderr);
        let r = site.restore(name, "");
        assert_eq!(r.code, 0, "restore {name}: {}", r.stderr);
    }
    assert_eq!(site.restored().unwrap(), history);
    assert_eq!(site.restore(SEG, "").code, 0);
    assert_eq!(site.restored().unwrap(), seg);

    // Duplicates.
    let r = site.archive(SEG, "--compress gzip");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("identical content"), "{}", r.stderr);
    site.write_wal("00000002.history", b"1\t0/3000000\tother\n");
    let r = site.archive("00000002.history", "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);

    // Missing file: exit 1, silent, fast. Fast means no retry and no pause: the
    // verbose log shows the one answer "not in the archive" and nothing retried.
    // (How long a call takes is measured by bench/, not here.)
    let missing = "000000010000000000000009";
    let r = site.restore(missing, "");
    assert_eq!((r.code, r.stderr.as_str()), (1, ""));
    let r = site.restore(missing, "--verbose");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let answers = r
        .stderr
        .lines()
        .filter(|l| l.contains(&format!("{missing} is not in the archive")))
        .count();
    assert_eq!(answers, 1, "one lookup: {}", r.stderr);
    assert!(!r.stderr.contains("retry"), "no retry: {}", r.stderr);

    // Wrong cluster.
    let other = "000000010000000000000004";
    site.write_wal(other, &segment(other, MIB, 42, 1));
    let r = site.archive(other, "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("separate repository"), "{}", r.stderr);

    // Concurrent pushes of one name with different content: exactly one wins.
    let racy = "000000010000000000000005";
    let mut children = Vec::new();
    for i in 0..6u64 {
        let path = site.dir.path().join(format!("copy{i}"));
        fs::write(&path, segment(racy, MIB, SYSID, 10 + i % 2)).unwrap();
        children.push(
            Command::new(ARCHIVE)
                .args(["--repo", &site.location])
                .arg(&path)
                .arg(racy)
                .envs(site.env.iter().map(|(k, v)| (k, v)))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert_eq!(site.restore(racy, "").code, 0);
    let stored = site.restored().unwrap();
    let winner = (0..2)
        .find(|s| segment(racy, MIB, SYSID, 10 + s) == stored)
        .expect("a whole copy won");
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(
            *code,
            if i as u64 % 2 == winner { 0 } else { 1 },
            "writer {i}: {codes:?}"
        );
    }

    // A corrupted object never reaches the destination; recovery stops.
    fx.overwrite(&format!("wal/0000000100000000/{SEG}"), &|b| b[100] ^= 0x40);
    fs::remove_file(site.wal("RECOVERYXLOG")).unwrap(); // PostgreSQL removes a stale %p first
    let r = site.restore(SEG, "");
    assert_eq!(r.code, 200, "{}", r.stderr);
    assert!(
        r.stderr.contains("damaged") && r.stderr.contains(SEG),
        "{}",
        r.stderr
    );
    assert_eq!(site.restored(), None);
}

#[test]
fn conformance_local_directory() {
    conformance(Fixture::local());
}

#[test]
fn conformance_s3() {
    conformance(Fixture::s3());
}

#[test]
fn conformance_azure() {
    conformance(Fixture::azure());
}

/// A config file with a short deadline, for the fault tests.
fn short_deadline(site: &Site, extra: &str) -> String {
    let conf = site.dir.path().join("uxwal.toml");
    fs::write(
        &conf,
        format!("deadline = 3\nrequest_timeout = 2\nretries = 1\n{extra}"),
    )
    .unwrap();
    format!("--config {}", conf.display())
}

#[test]
fn a_server_that_stops_answering_fails_within_the_deadline_and_recovers() {
    let fx = Fixture::s3();
    let site = &fx.site;
    let conf = short_deadline(site, "");
    for (i, name) in ["000000010000000000000003", "000000010000000000000004"]
        .iter()
        .enumerate()
    {
        site.write_wal(name, &segment(name, MIB, SYSID, i as u64));
    }
    assert_eq!(site.archive("000000010000000000000003", &conf).code, 0);
    // The call returns because of its deadline: the server stays frozen until
    // after it returned (a call that waited for the server would never end),
    // and its one error line names the deadline of the configuration.
    fx.server().freeze();
    let r = site.archive("000000010000000000000004", &conf);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("deadline of 3 s"),
        "ended by the deadline: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("000000010000000000000004"),
        "{}",
        r.stderr
    );
    // Restore during point-in-time recovery: an error, not "not found".
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let r = site.restore("000000010000000000000003", &conf);
    assert_eq!(r.code, 200, "{}", r.stderr);
    fx.server().thaw();
    // Back: the retried archive succeeds (whatever the lost request did).
    let r = site.archive("000000010000000000000004", &conf);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(site.restore("000000010000000000000004", &conf).code, 0);
    assert_eq!(
        site.restored().unwrap(),
        segment("000000010000000000000004", MIB, SYSID, 1)
    );
}

#[test]
fn bad_credentials_fail_clearly_without_printing_the_secret() {
    let az = Azure::start("walcontainer");
    let mut site = Site::new();
    site.location = az.location("p");
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0xMjM0NTY3ODkw";
    site.env = vec![
        (
            "AZURE_STORAGE_ACCOUNT_NAME".into(),
            "devstoreaccount1".into(),
        ),
        ("AZURE_STORAGE_ACCOUNT_KEY".into(), wrong.into()),
        ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
        (
            "AZURITE_BLOB_STORAGE_URL".into(),
            format!("http://127.0.0.1:{}", az.server.port),
        ),
    ];
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 1));
    let conf = short_deadline(&site, "");
    let r = site.archive(SEG, &format!("{conf} --verbose"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        !r.stderr.contains(wrong),
        "the secret must never be printed: {}",
        r.stderr
    );
    let lower = r.stderr.to_lowercase();
    assert!(
        lower.contains("403") || lower.contains("auth") || lower.contains("permission"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unreachable_endpoint_stops_point_in_time_recovery() {
    let mut site = Site::new();
    let closed = common::servers::free_port();
    site.location = "s3://walbucket/p".into();
    site.env = S3::env_for(&format!("http://127.0.0.1:{closed}"));
    let conf = short_deadline(&site, "");
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let r = site.restore(SEG, &conf);
    assert_eq!(r.code, 200, "{}", r.stderr);
    assert!(!r.stderr.contains("testing"), "{}", r.stderr);
    // On a standby the same error is exit 1: it falls back to streaming.
    fs::write(site.data.join("standby.signal"), "").unwrap();
    assert_eq!(site.restore(SEG, &conf).code, 1);
    // Archiving to it fails with exit 1.
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 1));
    assert_eq!(site.archive(SEG, &conf).code, 1);
}

#[test]
fn settings_come_from_the_config_file_and_the_environment_wins() {
    let s3 = S3::start("walbucket");
    let mut site = Site::new();
    site.location = s3.location("fromconf");
    // Everything in the file: endpoint, credentials (file made private).
    let conf = s3.write_config(&site.dir.path().join("uxwal.toml"), &[&site.location], None);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 1));
    let r = site.sh(
        &format!("\"$ARCHIVE\" --config {} %p %f", conf.display()),
        &format!("pg_wal/{SEG}"),
        SEG,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("readable by group or others"),
        "a world-readable secret warns: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("testing"));
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let r = site.sh(
        &format!("\"$RESTORE\" --config {} %f %p", conf.display()),
        "pg_wal/RECOVERYXLOG",
        SEG,
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // The environment beats the file: a dead endpoint in the environment fails.
    site.env = vec![(
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{}", common::servers::free_port()),
    )];
    fs::write(site.data.join("standby.signal"), "").unwrap();
    let conf2 = site.dir.path().join("uxwal2.toml");
    let text = fs::read_to_string(&conf).unwrap().replacen(
        "repo =",
        "deadline = 3\nretries = 0\nrepo =",
        1,
    );
    fs::write(&conf2, text).unwrap();
    let r = site.sh(
        &format!("\"$RESTORE\" --config {} %f %p", conf2.display()),
        "pg_wal/RECOVERYXLOG",
        SEG,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Unknown keys in a store table are refused.
    fs::write(&conf2, "[s3]\nendpoitn = \"x\"\n").unwrap();
    let r = site.sh(
        &format!(
            "\"$ARCHIVE\" --config {} --repo s3://b/p %p %f",
            conf2.display()
        ),
        &format!("pg_wal/{SEG}"),
        SEG,
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("endpoitn"), "{}", r.stderr);
}

/// Runs another uxwal executable against the fixture's repository.
fn run_tool(site: &Site, exe: &str, args: &[&str]) -> Ran {
    Command::new(exe)
        .args(["--repo", &site.location])
        .args(args)
        .envs(site.env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into()
}

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");
const CLEANUP: &str = env!("CARGO_BIN_EXE_uxwal-cleanup");

/// uxwal-verify and uxwal-cleanup see the same repository on every backend.
fn verify_and_cleanup(fx: Fixture) {
    let site = &fx.site;
    let names: Vec<String> = (1..=4)
        .map(|i| format!("00000001000000000000000{i}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        site.write_wal(name, &segment(name, MIB, SYSID, i as u64));
        assert_eq!(site.archive(name, "").code, 0);
    }
    let r = run_tool(site, VERIFY, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // archive_cleanup_command with %r = the third segment removes the first two.
    let r = run_tool(site, CLEANUP, &[&names[2]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    assert_eq!(site.restore(&names[0], "").code, 1, "removed");
    assert_eq!(site.restore(&names[1], "").code, 1, "removed");
    assert_eq!(site.restore(&names[2], "").code, 0, "kept");
    let r = run_tool(site, VERIFY, &[]);
    assert_eq!(r.code, 0, "cleanup leaves no gap: {}{}", r.stdout, r.stderr);

    // A damaged object is named, and the run fails.
    fx.overwrite(&format!("wal/0000000100000000/{}", names[3]), &|b| {
        b[60] ^= 0x10
    });
    let r = run_tool(site, VERIFY, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&names[3]), "{}", r.stdout);
}

#[test]
fn verify_and_cleanup_local_directory() {
    verify_and_cleanup(Fixture::local());
}

#[test]
fn verify_and_cleanup_s3() {
    verify_and_cleanup(Fixture::s3());
}

#[test]
fn verify_and_cleanup_azure() {
    verify_and_cleanup(Fixture::azure());
}

/// Issue 13: a store that accepts `If-None-Match: *` and overwrites anyway
/// (moto behind a proxy that drops the header) is refused when uxwal would
/// create a repository in it, and nothing is left there: no FORMAT, no probe.
/// The same bucket straight through moto takes the same call.
#[test]
fn a_store_that_ignores_conditional_writes_gets_no_repository() {
    let s3 = S3::start("walbucket");
    let proxy = common::proxy::Proxy::start(s3.server.port, Some("if-none-match"));
    let mut site = s3.site("ignoring");
    site.env = S3::env_for(&proxy.endpoint());
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 1));
    let r = site.archive(SEG, "");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("ignores conditional writes") && r.stderr.contains(SEG),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let direct = uxwal::repo::Repository::open_with(&site.location, &s3.store_options()).unwrap();
    let left: Vec<String> = direct
        .list("")
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");

    // Straight to moto, which refuses a second create: the repository is made.
    site.env = s3.env();
    let r = site.archive(SEG, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left: Vec<String> = direct
        .list("")
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert!(left.iter().all(|k| !k.contains("probe")), "{left:?}");
    assert!(left.iter().any(|k| k == "FORMAT"), "{left:?}");
}

/// Issue 13: what networks and stores do that emulators do not, from a proxy
/// in front of the emulator — a storm of 503s, bodies cut short with the
/// connection closed (a reset, a truncated download), answers later than the
/// deadline. Archive exits 0 only with the file stored whole (a clean retry
/// after any failure succeeds); restore during a point-in-time recovery exits
/// 0 with the exact bytes or 200, never 1 ("not found"), and nothing partial
/// reaches `%p`.
#[test]
fn s3_faults_from_a_proxy_never_lose_a_file_or_end_a_recovery_early() {
    let s3 = S3::start("walbucket");
    let proxy = common::proxy::Proxy::start(s3.server.port, None);
    let mut site = s3.site("faults");
    site.env = S3::env_for(&proxy.endpoint());
    faults_from_a_proxy(&site, &proxy);
}

/// [`s3_faults_from_a_proxy_never_lose_a_file_or_end_a_recovery_early`]
/// against Azurite.
#[test]
fn azure_faults_from_a_proxy_never_lose_a_file_or_end_a_recovery_early() {
    let az = Azure::start("walcontainer");
    let proxy = common::proxy::Proxy::start(az.server.port, None);
    let mut site = Site::new();
    site.location = az.location("faults");
    site.env = Azure::env_for(&proxy.endpoint());
    faults_from_a_proxy(&site, &proxy);
}

fn faults_from_a_proxy(site: &Site, proxy: &common::proxy::Proxy) {
    use std::sync::atomic::Ordering::SeqCst;
    let conf = short_deadline(site, "");
    let names = ["000000010000000000000003", "000000010000000000000004"];
    for (i, name) in names.iter().enumerate() {
        site.write_wal(name, &segment(name, MIB, SYSID, i as u64));
    }
    let faults = &proxy.faults;
    let check_restore = |name: &str, seed: u64, what: &str| {
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let r = site.restore(name, &conf);
        assert!(
            r.code == 0 || r.code == 200,
            "{what}: restore exit {} during recovery: {}",
            r.code,
            r.stderr
        );
        match r.code {
            0 => assert_eq!(
                site.restored().unwrap(),
                segment(name, MIB, SYSID, seed),
                "{what}"
            ),
            _ => assert_eq!(site.restored(), None, "{what}: a file at %p after exit 200"),
        }
        r.code
    };
    let archive_then_retry = |name: &str, what: &str| {
        let r = site.archive(name, &conf);
        faults.fail_requests.store(0, SeqCst);
        faults.cut_bodies.store(0, SeqCst);
        faults.delay_ms.store(0, SeqCst);
        let retry = site.archive(name, &conf);
        assert_eq!(
            retry.code, 0,
            "{what}: the clean retry after exit {}: {}",
            r.code, retry.stderr
        );
        r.code
    };

    // 503 storms of growing length while archiving: the store's retries ride
    // out a short one, a long one fails the call; the retry succeeds.
    let mut storm_codes = Vec::new();
    for storm in [1, 3, 50] {
        faults.fail_requests.store(storm, SeqCst);
        storm_codes.push(archive_then_retry(
            names[0],
            &format!("archive, {storm} x 503"),
        ));
    }
    // The name was archived by one of them: every later call found it identical.
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    assert_eq!(check_restore(names[0], 0, "clean restore"), 0);

    // Restore during recovery: 503 storms, cut bodies, a slow store.
    let mut restore_codes = Vec::new();
    let storms = [1, 3, 50].map(|n| (&faults.fail_requests, n, "x 503"));
    let cuts = [1, 2, 10].map(|n| (&faults.cut_bodies, n, "cut bodies"));
    for (counter, n, what) in storms.into_iter().chain(cuts) {
        counter.store(n, SeqCst);
        restore_codes.push(check_restore(names[0], 0, &format!("restore, {n} {what}")));
        counter.store(0, SeqCst);
    }
    faults.delay_ms.store(5_000, SeqCst);
    let slow = check_restore(names[0], 0, "restore from a store slower than the deadline");
    faults.delay_ms.store(0, SeqCst);
    assert_eq!(slow, 200, "a store slower than the deadline stops recovery");
    fs::remove_file(site.data.join("recovery.signal")).unwrap();

    // Archive a new name while bodies are cut (the duplicate check reads the
    // stored object back) and while the store is slow.
    let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
    faults.cut_bodies.store(10, SeqCst);
    storm_codes.push(archive_then_retry(names[1], "archive with cut bodies"));
    faults.delay_ms.store(5_000, SeqCst);
    storm_codes.push(archive_then_retry(names[1], "archive to a slow store"));
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    assert_eq!(
        check_restore(names[1], 1, "restore after the faulted archives"),
        0
    );
    eprintln!(
        "archive exits {storm_codes:?}, restore exits {restore_codes:?}; the proxy answered {} requests itself and cut {} bodies",
        faults.failed.load(SeqCst),
        faults.cut.load(SeqCst)
    );
    assert!(
        faults.failed.load(SeqCst) > 0 && faults.cut.load(SeqCst) > 0,
        "the faults happened"
    );
}

/// A store's error answer with a multi-line body (moto's XML for a bucket
/// that does not exist) is still one line of the server log.
#[test]
fn a_store_error_with_a_multi_line_body_is_logged_on_one_line() {
    let s3 = common::servers::S3::start("walbucket");
    let mut site = s3.site("x");
    site.location = "s3://no-such-bucket/x".into();
    let name = "000000010000000000000001";
    site.write_wal(name, &segment(name, MIB, SYSID, 1));
    let ran = site.archive(name, "--parallel 1");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("NoSuchBucket"), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
}

/// Bodies over 64 MiB are read in ranges as they are consumed, against a real
/// S3 API (moto), in the order the stored-object reader reads them: the first
/// bytes, the tail, then everything from the start. Each read gives the
/// object's own bytes.
#[test]
fn large_bodies_are_read_in_ranges_from_s3() {
    use std::io::{Read, Seek, SeekFrom};
    let s3 = S3::start("walbucket");
    let location = s3.location("ranged");
    let repo = uxwal::repo::Repository::open_with(&location, &s3.store_options()).unwrap();
    let len = 70 * MIB as usize;
    let mut body = vec![0u8; len];
    noise(&mut body, 70);
    let mut staged = repo.stage("big").unwrap();
    std::io::Write::write_all(&mut staged, &body).unwrap();
    assert_eq!(
        repo.publish(staged, "big").unwrap(),
        uxwal::repo::PutOutcome::Created
    );

    let mut obj = repo.get("big").unwrap().expect("stored");
    assert_eq!(obj.len, len as u64);
    let mut head = [0u8; 4];
    obj.reader.read_exact(&mut head).unwrap();
    assert_eq!(head, body[..4]);
    obj.reader.seek(SeekFrom::End(-124)).unwrap();
    let mut tail = Vec::new();
    obj.reader.read_to_end(&mut tail).unwrap();
    assert!(tail == body[len - 124..], "the tail");
    obj.reader.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::with_capacity(len);
    obj.reader.read_to_end(&mut all).unwrap();
    assert!(all == body, "the whole body, in ranges");
}
