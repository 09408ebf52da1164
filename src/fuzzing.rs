//! The fuzz targets' one door into the crate (`fuzz/`, built by `cargo fuzz`
//! with `--cfg fuzzing`): one function per kind of outside input, each handing
//! the bytes to the parser or decoder the commands themselves use, and
//! asserting what that parser guarantees. A panic here is a bug of the parser
//! (or of a guarantee), never of the input.
//!
//! The targets call nothing else, so the modules behind these functions may
//! stay private. Compiled for unit tests too, so that every seed of
//! `fuzz/corpus/` runs through its function in each `cargo test` (and the seed
//! generator, [`write_seeds`], lives beside what it feeds).

use std::io::{self, Cursor, Write};
use std::path::Path;

use crate::background::{prefetch, push_ahead};
use crate::codec::{self, read_trailer, Trailer};
use crate::config::ConfigFile;
use crate::repo::identity::{self, Identity};
use crate::repo::{Backend, Listed, Object, Repository, Staged};
use crate::wal::backup_label::BackupLabel;
use crate::wal::header::{LongPageHeader, LONG_HEADER_LEN};
use crate::wal::history;
use crate::wal::lsn::Lsn;
use crate::wal::name::{is_backup_history_file_name, SegmentName, WalName};

/// The segment sizes every name is tried with: PostgreSQL's smallest, its
/// default and its largest.
const SIZES: [u64; 3] = [1 << 20, 16 << 20, 1 << 30];

/// A WAL file name or an LSN, as `%f`, a listed key, a `want` file or a
/// history line holds it: a name that parses prints back as itself, and its
/// segment arithmetic stays in range.
pub fn wal_name(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = s.parse::<WalName>() {
        assert_eq!(name.to_string(), s, "a parsed name prints back as itself");
        assert!(!s.contains('/') && !s.contains(".."));
        if let Some(segment) = name.segment() {
            for size in SIZES {
                segment_arithmetic(segment, size);
            }
        }
    }
    if let Some(segment) = SegmentName::parse_prefix(s) {
        assert!(s.starts_with(&segment.to_string()));
    }
    let _ = is_backup_history_file_name(s);
    if let crate::repo::Entry::Wal(name) = Repository::classify(s) {
        assert_eq!(Repository::key(&name), s);
    }
    if let Ok(lsn) = s.parse::<Lsn>() {
        assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    }
}

fn segment_arithmetic(segment: SegmentName, size: u64) {
    let Some(number) = segment.segment_number(size) else {
        return;
    };
    let back = SegmentName::from_segment_number(segment.timeline, number, size);
    assert_eq!(back, segment);
    assert_eq!(segment.start_lsn(size), number.checked_mul(size));
    if let Some(next) = segment.next(size) {
        assert_eq!(next.segment_number(size), Some(number + 1));
    }
}

/// The first bytes of a segment: its long page header, checked against a name
/// and an archive identity taken from the bytes after the header (so that the
/// fuzzer reaches every check, not only the first that fails).
pub fn page_header(data: &[u8]) {
    let Ok(header) = LongPageHeader::parse(data) else {
        assert!(data.len() < LONG_HEADER_LEN);
        return;
    };
    let word = |i: usize| {
        let at = LONG_HEADER_LEN + 4 * i;
        data.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let name = SegmentName {
        timeline: word(0),
        log: word(1),
        seg: word(2),
    };
    let recorded = (word(3) & 0x1_0000 != 0).then_some(word(3) as u16);
    let len = u64::from(header.segment_size);
    if header.validate(name, len, recorded).is_ok() {
        let expected = name.start_lsn(len).expect("validated");
        assert_eq!(header.page_address, expected);
    }
    let archive = Identity {
        system_identifier: header.system_identifier,
        segment_size: len,
        page_magic: recorded.unwrap_or(header.magic),
    };
    let _ = identity::check_segment(data, name, len, Some(&archive));
    let _ = identity::check_segment(data, name, len, None);
}

/// The fixed-length trailer at the end of a stored object, found from the
/// object's length alone.
pub fn trailer(data: &[u8]) {
    let len = data.len() as u64;
    if let Ok((_, trailer, payload_len)) = read_trailer(&mut Cursor::new(data), len) {
        assert!(
            payload_len >= 4 && payload_len < len,
            "{payload_len} of {len}"
        );
        let _ = trailer.sha256_hex();
    }
    // A length longer than the bytes (a storage that lies) is an error too.
    let _ = read_trailer(
        &mut Cursor::new(data),
        len + 1 + u64::from(data.first().copied().unwrap_or(0)),
    );
}

/// A whole stored object, read back through the one stored-object reader
/// ([`Repository::open_stored`]) as the file its first byte chooses, in an
/// archive of 1 MiB segments or of unknown segment size: never more than the
/// trailer's size comes out, and anything that goes wrong is the object's
/// (corrupt), never "absent".
pub fn stored_object(data: &[u8]) {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let name: WalName = match choice & 3 {
        0 => "000000010000000000000003",
        1 => "000000010000000000000003.partial",
        2 => "00000002.history",
        _ => "000000010000000000000002.00000028.backup",
    }
    .parse()
    .expect("a WAL name");
    let segment_size = (choice & 4 != 0).then_some(1 << 20);
    let repo = Repository::with_backend(Box::new(Memory {
        keys: vec![Repository::key(&name)],
        body: body.to_vec(),
    }));
    let object = match repo.open_stored(&name, segment_size) {
        Ok(object) => object.expect("the object is there: never absent"),
        Err(e) => return assert_corrupt(&e),
    };
    let recorded = object.trailer().size;
    let mut out = Counted(0);
    let result = match choice & 8 {
        0 => object.copy_to(&mut out, Path::new("dest")),
        _ => object.copy_unhashed_to(&mut out, Path::new("dest")),
    };
    assert!(
        out.0 <= recorded,
        "{} bytes out, {recorded} recorded",
        out.0
    );
    match result {
        Ok(()) => assert_eq!(out.0, recorded),
        Err(e) => assert_corrupt(&e),
    }
}

fn assert_corrupt(e: &crate::Error) {
    assert!(matches!(e, crate::Error::Corrupt { .. }), "{e}");
}

/// A read-only repository in memory: `body` stored under each of `keys`.
struct Memory {
    keys: Vec<String>,
    body: Vec<u8>,
}

impl Memory {
    fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}

impl Backend for Memory {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn stage(&self, _: &str) -> io::Result<Box<dyn Staged>> {
        Err(io::Error::other("read-only"))
    }
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        Ok(self.has(key).then(|| Object {
            len: self.body.len() as u64,
            reader: Box::new(Cursor::new(self.body.clone())),
        }))
    }
    fn stat(&self, key: &str) -> io::Result<Option<u64>> {
        Ok(self.has(key).then_some(self.body.len() as u64))
    }
    fn make_durable(&self, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, _: &str) -> io::Result<Vec<Listed>> {
        Ok(Vec::new())
    }
    fn delete(&self, keys: &[String]) -> Vec<io::Result<()>> {
        keys.iter().map(|_| Ok(())).collect()
    }
}

/// Counts what reaches it.
struct Counted(u64);

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A repository's metadata objects (`FORMAT`, `IDENTITY`, `ENCRYPTION`), as
/// every command reads them before it trusts the repository: the same bytes
/// under every key, and under `ENCRYPTION` alone (so that its parser is
/// reached past a `FORMAT` the bytes cannot also be).
pub fn repo_metadata(data: &[u8]) {
    let repo = Repository::with_backend(Box::new(Memory {
        keys: vec!["FORMAT".into(), "IDENTITY".into(), "ENCRYPTION".into()],
        body: data.to_vec(),
    }));
    let _ = repo.check_format();
    let _ = repo.identity();
    let _ = repo.recorded();
    let marker_only = Repository::with_backend(Box::new(Memory {
        keys: vec!["ENCRYPTION".into()],
        body: data.to_vec(),
    }));
    if let Ok(recorded) = marker_only.recorded() {
        assert!(!recorded.is_repository && recorded.identity.is_none());
        if let Some(marker) = recorded.encryption {
            assert_eq!(marker.scheme, "age", "only age markers are accepted");
        }
    }
}

/// A timeline history file; its first byte is the file's own timeline (255:
/// the largest there is).
pub fn history(data: &[u8]) {
    let Some((&own, text)) = data.split_first() else {
        return;
    };
    let own = match own {
        255 => u32::MAX,
        n => u32::from(n),
    };
    if let Ok(forks) = history::parse(own, text) {
        for pair in forks.windows(2) {
            assert!(pair[0].parent < pair[1].parent);
            assert!(pair[0].switch <= pair[1].switch);
        }
        assert!(forks.iter().all(|f| f.parent >= 1 && f.parent < own));
    }
}

/// A backup history file (`<segment>.XXXXXXXX.backup`).
pub fn backup_label(data: &[u8]) {
    if let Ok(label) = BackupLabel::parse(data) {
        assert!(label.stop >= label.start);
        let segment = label.start_segment;
        assert_eq!(label.timeline(), segment.timeline);
        assert!(label.check_name(segment, "name").is_ok());
    }
}

/// The configuration file, and the settings the commands derive from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = ConfigFile::parse_str(text, "uxwal.toml") else {
        return;
    };
    let _ = config.store_options(None, &Default::default());
    let _ = config.repos(&[]);
    let _ = config.repo(&[]);
}

/// The archive identity of a fuzzed prefetch spool: 1 MiB segments.
const SPOOL_IDENTITY: Identity = Identity {
    system_identifier: 7_312_345_678_901_234_567,
    segment_size: 1 << 20,
    page_magic: 0xD110,
};

/// A prefetch spool entry: the segment's first bytes and, in its last
/// [`prefetch::ENTRY_TRAILER_LEN`] bytes, the entry's trailer, checked as the
/// spool checks an entry before serving it (the trailer, then the page header
/// against segment `000000010000000000000003` of [`SPOOL_IDENTITY`]).
pub fn spool_entry(data: &[u8]) {
    let Some(at) = data.len().checked_sub(prefetch::ENTRY_TRAILER_LEN) else {
        return;
    };
    let (head, tail) = data.split_at(at);
    let tail: &[u8; prefetch::ENTRY_TRAILER_LEN] = tail.try_into().expect("trailer length");
    let recorded: Option<Trailer> = prefetch::parse_entry_trailer(tail);
    let Some(recorded) = recorded.filter(|t| t.size == SPOOL_IDENTITY.segment_size) else {
        return;
    };
    let segment = SegmentName {
        timeline: 1,
        log: 0,
        seg: 3,
    };
    if prefetch::check_entry_header(&SPOOL_IDENTITY, head, segment).is_ok() {
        let _ = codec::hex(&recorded.sha256);
    }
}

/// A push-ahead spool record: its first line is the name of the file the
/// record is read for, the rest the record (TOML).
pub fn push_ahead_record(data: &[u8]) {
    let (first, record) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.parse::<WalName>().ok())
        .unwrap_or(WalName::Segment(SegmentName {
            timeline: 1,
            log: 0,
            seg: 4,
        }));
    // As `read_entry`: the record must be UTF-8.
    let Ok(text) = String::from_utf8(record.to_vec()) else {
        return;
    };
    let _ = push_ahead::PushedEntry::parse(&text, &name);
}

/// The seed corpus of every target (`fuzz/corpus/<target>/<seed>`): real-looking
/// inputs made with the crate's own encoders, small enough to keep in the repository.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use crate::codec::{Compression, Encoder};
    use crate::wal::header::encode_long_header;
    use sha2::{Digest, Sha256};

    let mut seeds: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, seed: &str, bytes: Vec<u8>| {
        seeds.push((target, seed.to_owned(), bytes));
    };
    for name in [
        "000000010000000000000003",
        "0000000200000001000000FF",
        "000000010000000000000010.partial",
        "00000002.history",
        "00000001000000000000000C.00000028.backup",
        "0/3000000",
        "16/B374D848",
    ] {
        add(
            "wal_name",
            &name.replace('/', "-"),
            name.as_bytes().to_vec(),
        );
    }

    let segment = |seg: u32| SegmentName {
        timeline: 1,
        log: 0,
        seg,
    };
    let header = |name: SegmentName, size: u64| LongPageHeader {
        magic: 0xD110,
        info: 0x0006,
        timeline: name.timeline,
        page_address: name.start_lsn(size).expect("in range"),
        system_identifier: SPOOL_IDENTITY.system_identifier,
        segment_size: size as u32,
        block_size: 8192,
    };
    let mut page = encode_long_header(&header(segment(3), 1 << 20)).to_vec();
    for word in [1u32, 0, 3, 0x1_D110] {
        page.extend_from_slice(&word.to_le_bytes());
    }
    add("page_header", "segment-1mib", page);
    let big = SegmentName {
        timeline: 2,
        log: 1,
        seg: 0x2A,
    };
    let mut page = encode_long_header(&header(big, 16 << 20)).to_vec();
    for word in [2u32, 1, 0x2A, 0] {
        page.extend_from_slice(&word.to_le_bytes());
    }
    add("page_header", "segment-16mib-tli2", page);

    let history = b"1\t0/10000B8\tno recovery target specified\n\n\
        2\t0/3000000\tat restore point \"before upgrade\"\n"
        .to_vec();
    let backup = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
        STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
        CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
        BACKUP FROM: primary\nSTART TIME: 2026-11-21 22:08:37 UTC\n\
        LABEL: nightly\nSTART TIMELINE: 1\n\
        STOP TIME: 2026-11-21 22:08:38 UTC\nSTOP TIMELINE: 1\n"
        .to_vec();
    let mut one_mib = vec![0u8; 1 << 20];
    one_mib[..LONG_HEADER_LEN].copy_from_slice(&encode_long_header(&header(segment(3), 1 << 20)));
    let stored = |data: &[u8], c: Compression| {
        let trailer = Trailer {
            sha256: Sha256::digest(data).into(),
            size: data.len() as u64,
        };
        let mut e = Encoder::new(Vec::new(), c, c.default_level()).expect("encoder");
        e.write_all(data).expect("in memory");
        e.finish(&trailer).expect("in memory")
    };
    let with_choice = |choice: u8, object: Vec<u8>| [vec![choice], object].concat();
    for (c, label) in [
        (Compression::Zstd, "zstd"),
        (Compression::Gzip, "gzip"),
        (Compression::None, "none"),
    ] {
        let object = stored(&history, c);
        add("trailer", &format!("history-{label}"), object.clone());
        add(
            "stored_object",
            &format!("history-{label}"),
            with_choice(2, object),
        );
    }
    add(
        "stored_object",
        "backup-gzip-unhashed",
        with_choice(3 | 8, stored(&backup, Compression::Gzip)),
    );
    add(
        "stored_object",
        "segment-1mib-zstd",
        with_choice(4, stored(&one_mib, Compression::Zstd)),
    );

    add("history", "timeline-3", [vec![3], history].concat());
    add("history", "timeline-1-empty", vec![1]);
    add("backup_label", "streamed", backup);
    add(
        "metrics_file",
        "written",
        b"# HELP uxwal_runs_total Runs.\n# TYPE uxwal_runs_total counter\n\
          uxwal_runs_total{command=\"archive\",repository=\"s3://b/p\",result=\"success\"} 41\n\
          uxwal_archive_ready_files 3\nuxwal_verify_problems{repository=\"/a\\\"b\"} 0\n"
            .to_vec(),
    );

    add(
        "config",
        "local",
        b"repo = \"/mnt/wal\"\ncompress = \"zstd\"\nlevel = 3\non_error = \"abort\"\n\
          parallel = 4\nprefetch = 8\nspool_dir = \"/var/spool/uxwal\"\n"
            .to_vec(),
    );
    add(
        "config",
        "s3",
        b"repo = [\"/mnt/wal\", \"s3://bucket/wal\"]\ndeadline = 60\nrequest_timeout = 30\n\
          retries = 3\nspool_max_bytes = 2147483648\n\n[s3]\nregion = \"us-east-1\"\n\
          endpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n"
            .to_vec(),
    );

    let mut entry = one_mib[..LONG_HEADER_LEN].to_vec();
    entry.extend_from_slice(b"UXWALSPL");
    entry.extend_from_slice(&Sha256::digest(&one_mib));
    entry.extend_from_slice(&(1u64 << 20).to_le_bytes());
    add("spool_entry", "segment-1mib", entry);

    add(
        "push_ahead_record",
        "two-repos",
        b"000000010000000000000004\n\
          name = \"000000010000000000000004\"\nsize = 16777216\n\
          sha256 = \"abababababababababababababababababababababababababababababababab\"\n\
          stamp = \"2049:131:16777216:1764700000.123456789:1764700000.5\"\n\n\
          [[repos]]\nlocation = \"/srv/wal\"\nsystem_identifier = \"7312345678901234567\"\n\
          stored_size = 1234\n\n[[repos]]\nlocation = \"s3://bucket/prefix\"\nstored_size = 1234\n"
            .to_vec(),
    );
    add("repo_metadata", "format", b"format_version = 1\n".to_vec());
    add(
        "repo_metadata",
        "encryption",
        b"scheme = \"age\"\nsince = \"2026-12-02T13:20:00Z\"\n\
          recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n"
            .to_vec(),
    );
    // An age header as uxwal writes it (one X25519 stanza, its own stanzas, the
    // MAC line), then payload bytes; fixed values, so that the seed is the same
    // on every run (real encryption is randomised).
    let b64 = "A".repeat(43);
    add(
        "age_object",
        "uxwal-header",
        format!(
            "age-encryption.org/v1\n-> X25519 {b64}\n{b64}\n-> uxwal-to age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n\n-> uxwal-mac {}\n\n--- {b64}\n{}",
            "0123456789abcdef".repeat(4),
            "payload".repeat(10)
        )
        .into_bytes(),
    );
    add(
        "repo_metadata",
        "identity",
        b"system_identifier = \"7312345678901234567\"\nsegment_size = 16777216\npage_magic = 53520\n"
            .to_vec(),
    );
    seeds
}

/// The start of an encrypted object (an age file), as a reader without a key
/// sees it (uxwal's stanzas: recipients, keyed digest) and as one with a key
/// does (the age header, then the payload, decrypted through a bounded read).
pub fn age_object(data: &[u8]) {
    use crate::crypt::{self, Identities};
    if let Ok(envelope) = crypt::read_envelope(data) {
        assert!(envelope.header_len <= data.len().min(crypt::MAX_HEADER_LEN));
        assert!(envelope.recipients.len() <= crypt::MAX_RECIPIENTS);
    }
    static KEY: std::sync::OnceLock<Identities> = std::sync::OnceLock::new();
    let identities = KEY.get_or_init(Identities::generated);
    if let Ok(plain) = identities.decrypt(Cursor::new(data)) {
        let _ = io::copy(&mut io::Read::take(plain, 1 << 20), &mut io::sink());
    }
}

/// A metrics file as the next run reads it back before merging into it: what
/// is kept renders to text that reads back the same, within the series bound.
pub fn metrics_file(data: &[u8]) {
    crate::metrics::check_round_trip(&String::from_utf8_lossy(data));
}

/// What a fuzz target calls with its bytes.
pub type Target = fn(&[u8]);

/// Every target by name, with its function: what `fuzz/fuzz_targets/` calls.
pub const TARGETS: &[(&str, Target)] = &[
    ("wal_name", wal_name),
    ("page_header", page_header),
    ("trailer", trailer),
    ("stored_object", stored_object),
    ("history", history),
    ("backup_label", backup_label),
    ("config", config),
    ("spool_entry", spool_entry),
    ("push_ahead_record", push_ahead_record),
    ("repo_metadata", repo_metadata),
    ("age_object", age_object),
    ("metrics_file", metrics_file),
];

/// Writes [`seeds`] under `corpus` (`fuzz/corpus`), one directory per target.
pub fn write_seeds(corpus: &Path) -> io::Result<()> {
    for (target, seed, bytes) in seeds() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(seed), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
    }

    /// `fuzz/gen-seeds` runs this: `cargo test --lib fuzzing::tests::generate_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus"]
    fn generate_seeds() {
        write_seeds(&corpus()).unwrap();
    }

    #[test]
    fn every_seed_passes_its_target_and_the_checked_in_corpus_is_current() {
        for (target, seed, bytes) in seeds() {
            let run = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
            run(&bytes);
            let kept = std::fs::read(corpus().join(target).join(&seed)).unwrap();
            assert!(
                kept == bytes,
                "fuzz/corpus/{target}/{seed} is stale: run fuzz/gen-seeds"
            );
        }
    }

    #[test]
    fn the_seeds_are_valid_inputs() {
        let seeds = seeds();
        let seed = |target: &str, name: &str| {
            let found = seeds.iter().find(|(t, s, _)| *t == target && s == name);
            found.unwrap().2.clone()
        };
        let page = seed("page_header", "segment-1mib");
        let name = SegmentName {
            timeline: 1,
            log: 0,
            seg: 3,
        };
        let header = LongPageHeader::parse(&page).unwrap();
        assert_eq!(header.validate(name, 1 << 20, None), Ok(()));
        let object = seed("stored_object", "segment-1mib-zstd");
        assert!(object.len() < 4096, "{} bytes", object.len());
        let text = String::from_utf8(seed("push_ahead_record", "two-repos")).unwrap();
        let (first, record) = text.split_once('\n').unwrap();
        assert!(push_ahead::PushedEntry::parse(record, &first.parse().unwrap()).is_some());
        let config = String::from_utf8(seed("config", "s3")).unwrap();
        let config = ConfigFile::parse_str(&config, "s3").unwrap();
        assert!(config.store_options(None, &Default::default()).is_ok());
        let entry = seed("spool_entry", "segment-1mib");
        let (head, tail) = entry.split_at(entry.len() - prefetch::ENTRY_TRAILER_LEN);
        assert!(prefetch::parse_entry_trailer(tail.try_into().unwrap()).is_some());
        assert!(prefetch::check_entry_header(&SPOOL_IDENTITY, head, name).is_ok());
        assert!(history::parse(3, &seed("history", "timeline-3")[1..]).is_ok());
        assert!(BackupLabel::parse(&seed("backup_label", "streamed")).is_ok());
    }
}
