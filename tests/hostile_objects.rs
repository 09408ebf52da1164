//! Regression tests for issue 13 ("Decoding is not bounded"): a hostile object
//! in the repository, under a WAL name, never makes `uxwal-restore` write more
//! than the size its name allows. Driven through the real binary, as the
//! database calls it.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use uxwal::codec::{Compression, Encoder, Trailer};
use uxwal::repo::Repository;
use uxwal::wal::name::WalName;

const GOOD: &str = "000000010000000000000003";
const HOSTILE: &str = "000000010000000000000004";
const CLAIMED: u64 = 16 << 20;

/// A site whose repository holds one real segment (so it has FORMAT and IDENTITY).
fn site() -> Site {
    let site = Site::new();
    site.write_wal(GOOD, &segment(GOOD, MIB, SYSID, 1));
    let ran = site.archive(GOOD, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    fs::remove_file(site.wal(GOOD)).unwrap();
    site
}

/// Stores `body` in the repository as the object of `name`, bypassing uxwal.
fn plant(site: &Site, name: &str, body: &[u8]) {
    let key = Repository::key(&name.parse::<WalName>().unwrap());
    let path = site.repo.join(key);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

/// A decompression bomb: the first page of a 16 MiB segment (so that its page
/// header passes), then 64 copies of one compressed frame of 64 MiB of zeros
/// (4 GiB decoded), then a trailer that claims a 16 MiB segment.
fn bomb(codec: Compression) -> Vec<u8> {
    let compress = |data: &[u8]| match codec {
        Compression::Gzip => {
            let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            g.write_all(data).unwrap();
            g.finish().unwrap()
        }
        _ => zstd::stream::encode_all(data, 3).unwrap(),
    };
    let first_page = &segment(HOSTILE, CLAIMED, SYSID, 5)[..8192];
    let mut body = compress(first_page);
    body.extend(compress(&vec![0u8; 64 << 20]).repeat(64));
    // An empty stream of the same codec carries the trailer.
    let trailer = Trailer {
        sha256: [0x5A; 32],
        size: CLAIMED,
    };
    let tail = Encoder::new(Vec::new(), codec, codec.default_level())
        .unwrap()
        .finish(&trailer)
        .unwrap();
    body.extend_from_slice(&tail);
    body
}

/// Total size of the files in `dir`.
fn bytes_in(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What one hostile restore did: its outcome, the most `pg_wal` held while it
/// ran, and its peak resident memory.
struct Bounded {
    ran: Ran,
    most_bytes: u64,
    peak_rss: u64,
}

/// A restore's peak resident memory may not exceed this, whatever the object:
/// decoding is streamed through fixed buffers, never read whole.
const MAX_RSS: u64 = 64 * MIB;

/// Runs `restore` of `name` under `--on-error abort` with a file-size limit of
/// `fsize` bytes and GNU time recording its peak memory, sampling how much
/// `pg_wal` holds while it runs. Prints one row of the hostile-input table
/// (`scripts/test --test hostile_objects -- --nocapture` shows them all).
fn restore_bounded(site: &Site, name: &str, fsize: u64, what: &str) -> Bounded {
    let pg_wal = site.data.join("pg_wal");
    let rss_file = site.dir.path().join("rss");
    let done = AtomicBool::new(false);
    let most = AtomicU64::new(0);
    let ran = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(bytes_in(&pg_wal), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let ran = site.sh(
            &format!(
                "/usr/bin/time -f %M -o {} prlimit --fsize={fsize} \"$RESTORE\" --repo \"$REPO\" --on-error abort %f %p",
                rss_file.display()
            ),
            "pg_wal/RECOVERYXLOG",
            name,
        );
        done.store(true, Ordering::SeqCst);
        ran
    });
    let kib: u64 = fs::read_to_string(&rss_file)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory from /usr/bin/time: {}", ran.stderr));
    let bounded = Bounded {
        ran,
        most_bytes: most.into_inner(),
        peak_rss: kib * 1024,
    };
    eprintln!(
        "hostile input | {what} | exit {} | pg_wal peak {} bytes | peak RSS {:.1} MiB | last line: {}",
        bounded.ran.code,
        bounded.most_bytes,
        bounded.peak_rss as f64 / MIB as f64,
        bounded.ran.stderr.lines().last().unwrap_or_default()
    );
    assert!(
        bounded.peak_rss <= MAX_RSS,
        "{what}: peak memory {} bytes",
        bounded.peak_rss
    );
    bounded
}

#[test]
fn issue_13_a_decompression_bomb_is_corrupt_and_never_fills_pg_wal() {
    for codec in [Compression::Zstd, Compression::Gzip] {
        let site = site();
        let body = bomb(codec);
        assert!(body.len() < 8 << 20, "{codec}: {} bytes", body.len());
        plant(&site, HOSTILE, &body);
        let Bounded {
            ran,
            most_bytes: most,
            ..
        } = restore_bounded(
            &site,
            HOSTILE,
            CLAIMED,
            &format!("{codec} bomb, 4 GiB decoded"),
        );
        assert_eq!(ran.code, 200, "{codec}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("damaged")
                && ran
                    .stderr
                    .contains("decodes to more than the 16777216 bytes"),
            "{codec}: {}",
            ran.stderr
        );
        assert!(most <= CLAIMED, "{codec}: pg_wal held {most} bytes");
        let left: Vec<_> = fs::read_dir(site.data.join("pg_wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{codec}: left in pg_wal: {left:?}");
        // The real segment beside it still restores.
        let ran = site.restore(GOOD, "");
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert_eq!(site.restored().unwrap(), segment(GOOD, MIB, SYSID, 1));
    }
}

#[test]
fn objects_too_long_for_their_name_are_refused_unread() {
    let site = site();
    // Garbage under a segment name: damaged, and nothing is written.
    plant(&site, HOSTILE, &vec![0x28; 40 << 20]);
    let Bounded {
        ran, most_bytes, ..
    } = restore_bounded(
        &site,
        HOSTILE,
        CLAIMED,
        "40 MiB of garbage under a segment name",
    );
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(ran.stderr.contains("damaged"), "{}", ran.stderr);
    assert_eq!(most_bytes, 0);

    // 3 MiB under a timeline history name: refused from its length alone.
    plant(&site, "00000002.history", &vec![0x28; 3 << 20]);
    let ran = restore_bounded(
        &site,
        "00000002.history",
        CLAIMED,
        "3 MiB under a history name",
    )
    .ran;
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("more than uxwal stores"),
        "{}",
        ran.stderr
    );
    assert!(site.restored().is_none());
}

/// Restores `name` as during a point-in-time recovery (`recovery.signal`).
fn restore_in_pitr(site: &Site, name: &str) -> Ran {
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let ran = site.restore(name, "");
    fs::remove_file(site.data.join("recovery.signal")).unwrap();
    ran
}

/// A well-formed object of another position stored under a segment's name
/// (a mixed-up or tampered repository: the trailer is right for what it
/// holds) is refused before PostgreSQL could read it and end recovery there:
/// during a point-in-time recovery the restore stops it (exit 200), naming
/// the file and the page address; nothing reaches `pg_wal`.
#[test]
fn a_segment_stored_under_another_name_is_refused() {
    let site = site();
    site.write_wal(HOSTILE, &segment(HOSTILE, MIB, SYSID, 2));
    assert_eq!(site.archive(HOSTILE, "").code, 0);
    fs::remove_file(site.wal(HOSTILE)).unwrap();
    let other = fs::read(&site.archived(HOSTILE)[0]).unwrap();
    plant(&site, GOOD, &other);
    let ran = restore_bounded(&site, GOOD, CLAIMED, "another position's segment").ran;
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(GOOD) && ran.stderr.contains("page address"),
        "{}",
        ran.stderr
    );
    assert!(site.restored().is_none(), "nothing at the destination");
    assert_eq!(bytes_in(&site.data.join("pg_wal")), 0, "pg_wal is clean");
}

/// A segment of another database system than the data directory restoring it
/// (read from its `global/pg_control`) is refused the same way; the same
/// segment restores into a data directory of its own system.
#[test]
fn a_segment_of_another_database_system_is_refused() {
    let site = site();
    fs::create_dir_all(site.data.join("global")).unwrap();
    let control = |sysid: u64| {
        let mut bytes = sysid.to_ne_bytes().to_vec();
        bytes.resize(8192, 0);
        fs::write(site.data.join("global/pg_control"), bytes).unwrap();
    };
    control(SYSID + 1);
    let ran = restore_bounded(&site, GOOD, CLAIMED, "another system's segment").ran;
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(GOOD)
            && ran
                .stderr
                .contains(&format!("comes from database system {SYSID}")),
        "{}",
        ran.stderr
    );
    assert!(site.restored().is_none(), "nothing at the destination");

    control(SYSID);
    let ran = restore_in_pitr(&site, GOOD);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(site.restored().unwrap(), segment(GOOD, MIB, SYSID, 1));
}

/// An object whose trailer claims a larger segment size (64 MiB, which
/// PostgreSQL allows) than its page header says (1 MiB), with a correct
/// SHA-256 for what it holds: refused once the header is decoded, so no more
/// than the header reaches `pg_wal`. Under a 1 MiB file-size limit a restore
/// that wrote the claimed size would be killed by SIGXFSZ instead.
#[test]
fn a_trailer_claiming_more_than_the_page_header_writes_no_more_than_the_header() {
    use sha2::{Digest, Sha256};
    let site = site();
    let claimed = 64 * MIB;
    let mut content = segment(HOSTILE, MIB, SYSID, 3);
    content.resize(claimed as usize, 0);
    let trailer = Trailer {
        sha256: Sha256::digest(&content).into(),
        size: claimed,
    };
    let mut encoder = Encoder::new(Vec::new(), Compression::Zstd, 1).unwrap();
    encoder.write_all(&content).unwrap();
    plant(&site, HOSTILE, &encoder.finish(&trailer).unwrap());
    let ran = restore_bounded(
        &site,
        HOSTILE,
        MIB,
        "a trailer claiming 64 MiB, header 1 MiB",
    )
    .ran;
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(HOSTILE) && ran.stderr.contains("segments are 1048576 bytes"),
        "{}",
        ran.stderr
    );
    assert!(site.restored().is_none());
    assert_eq!(bytes_in(&site.data.join("pg_wal")), 0);
}
