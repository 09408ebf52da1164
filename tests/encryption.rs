//! Issue 14: an encrypted archived object is an age file holding the usual
//! compressed object, so that it is restored by hand with standard tools:
//! `age -d -i KEY OBJECT | zstd -d > SEGMENT` (Debian's `age`, the Go
//! implementation), and the other way round, uxwal reads what `age` wrote.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::age_keygen as keygen;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uxwal::codec::{Compression, Encoder, Trailer};
use uxwal::crypt::{read_envelope, DigestKey, Identities, Recipients};
use uxwal::error::Error;
use uxwal::repo::Repository;
use uxwal::wal::name::WalName;

const SEG: &str = "000000010000000000000007";

/// The stored object of `content` as uxwal-archive writes it, encrypted.
fn encrypted_object(
    content: &[u8],
    codec: Compression,
    recipients: &Recipients,
    key: &DigestKey,
) -> Vec<u8> {
    let trailer = Trailer {
        sha256: Sha256::digest(content).into(),
        size: content.len() as u64,
    };
    let sealed = recipients
        .encrypt(Vec::new(), &key.mac(&trailer.sha256, trailer.size))
        .unwrap();
    let mut encoder = Encoder::new(sealed, codec, codec.default_level()).unwrap();
    encoder.write_all(content).unwrap();
    encoder.finish(&trailer).unwrap().finish().unwrap()
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("/bin/sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_encrypted_object_is_restored_by_hand_with_age_and_zstd_or_gunzip() {
    let dir = tempfile::tempdir().unwrap();
    let (old_key, old_pub) = keygen(dir.path(), "old.txt");
    let (new_key, new_pub) = keygen(dir.path(), "new.txt");
    let digest_key = DigestKey::load(&digest_key_file(dir.path(), "digest.key", 0x5A)).unwrap();
    let recipients = Recipients::parse(&[old_pub.clone(), new_pub.clone()]).unwrap();
    let content = segment(SEG, MIB, SYSID, 3);

    for (codec, tool) in [
        (Compression::Zstd, "zstd -d"),
        (Compression::Gzip, "gunzip"),
        (Compression::None, "zstd -d"),
    ] {
        let object = encrypted_object(&content, codec, &recipients, &digest_key);
        // uxwal's stanzas are readable without a key and name both recipients.
        let envelope = read_envelope(&object).unwrap();
        assert_eq!(envelope.recipients, vec![old_pub.clone(), new_pub.clone()]);
        fs::write(dir.path().join("object"), &object).unwrap();
        for key in [&old_key, &new_key] {
            let _ = fs::remove_file(dir.path().join("segment"));
            sh(
                dir.path(),
                &format!("age -d -i {} object | {tool} > segment", key.display()),
            );
            assert!(
                fs::read(dir.path().join("segment")).unwrap() == content,
                "{codec} with {}: the by-hand restore differs",
                key.display()
            );
        }
    }
}

#[test]
fn uxwal_decrypts_what_the_age_cli_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "id.txt");
    let content = segment(SEG, MIB, SYSID, 4);
    fs::write(dir.path().join("segment"), &content).unwrap();
    sh(
        dir.path(),
        &format!("zstd -q -c segment | age -r {public} > object"),
    );
    let ids = Identities::load(&[key]).unwrap();
    assert_eq!(ids.recipients(), vec![public]);
    let object = fs::File::open(dir.path().join("object")).unwrap();
    let mut plain = Vec::new();
    ids.decrypt(object)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(zstd::decode_all(&plain[..]).unwrap(), content);
}

/// A local repository (made by a real archive) with the encrypted object of
/// `SEG` planted beside it, as an encrypting uxwal-archive stores it.
fn repository_with_sealed(
    content: &[u8],
    recipients: &Recipients,
    key: &DigestKey,
) -> (Site, Vec<u8>) {
    let site = Site::new();
    let plain = "000000010000000000000003";
    site.write_wal(plain, &segment(plain, MIB, SYSID, 1));
    assert_eq!(site.archive(plain, "").code, 0);
    let object = encrypted_object(content, Compression::Zstd, recipients, key);
    plant(&site, &object);
    (site, object)
}

fn plant(site: &Site, object: &[u8]) {
    let name: WalName = SEG.parse().unwrap();
    let path = site.repo.join(Repository::key(&name));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, object).unwrap();
}

fn read_back(site: &Site, identities: Option<Identities>) -> uxwal::error::Result<Vec<u8>> {
    let mut repo = Repository::open(&site.location).unwrap();
    if let Some(ids) = identities {
        repo = repo.with_identities(Arc::new(ids));
    }
    let name: WalName = SEG.parse().unwrap();
    let stored = repo.open_stored(&name, Some(MIB))?.expect("stored");
    let mut out = Vec::new();
    stored.copy_to(&mut out, Path::new("out"))?;
    Ok(out)
}

/// The one stored-object reader decrypts with any matching identity, and
/// refuses, never as "not found", an object without one (naming its
/// recipients and the identities it has), an altered one and a cut one.
#[test]
fn the_stored_object_reader_decrypts_or_refuses_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "id.txt");
    let (other, other_pub) = keygen(dir.path(), "other.txt");
    let digest = DigestKey::load(&digest_key_file(dir.path(), "digest.key", 1)).unwrap();
    let content = segment(SEG, MIB, SYSID, 5);
    let recipients = Recipients::parse(std::slice::from_ref(&public)).unwrap();
    let (site, object) = repository_with_sealed(&content, &recipients, &digest);
    let ids = |file: &PathBuf| Some(Identities::load(std::slice::from_ref(file)).unwrap());

    assert!(read_back(&site, ids(&key)).unwrap() == content);

    let err = read_back(&site, None).unwrap_err();
    assert!(
        matches!(&err, Error::NoIdentity { recipients, have, .. } if recipients.as_slice() == std::slice::from_ref(&public) && have.is_empty()),
        "{err}"
    );
    let err = read_back(&site, ids(&other)).unwrap_err();
    assert!(
        matches!(&err, Error::NoIdentity { have, .. } if have.as_slice() == std::slice::from_ref(&other_pub)),
        "{err}"
    );
    assert!(
        err.to_string().contains(&public) && err.to_string().contains(SEG),
        "{err}"
    );

    // Altered in the middle of the payload, in the last chunk, cut at a chunk
    // boundary: damaged, every one.
    let header_len = read_envelope(&object).unwrap().header_len;
    let mut altered = object.clone();
    altered[object.len() / 2] ^= 0x40;
    let mut last = object.clone();
    *last.last_mut().unwrap() ^= 0x01;
    let cut = object[..(header_len + 16 + 64 * 1024 + 16).min(object.len() - 1)].to_vec();
    for (what, bytes) in [("altered", altered), ("last chunk", last), ("cut", cut)] {
        plant(&site, &bytes);
        let err = read_back(&site, ids(&key)).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { .. }),
            "{what}: {err} ({err:?})"
        );
    }
}

/// `uxwal-restore` during a point-in-time recovery, for an encrypted object it
/// has no identity for: stops recovery (exit 200), naming the file and its
/// recipient; nothing reaches `%p`.
#[test]
fn a_restore_without_the_identity_stops_recovery_naming_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path(), "id.txt");
    let digest = DigestKey::load(&digest_key_file(dir.path(), "digest.key", 1)).unwrap();
    let content = segment(SEG, MIB, SYSID, 5);
    let recipients = Recipients::parse(std::slice::from_ref(&public)).unwrap();
    let (site, _) = repository_with_sealed(&content, &recipients, &digest);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let ran = site.restore(SEG, "");
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(SEG) && ran.stderr.contains(&public),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(site.restored().is_none());
}

/// `--config FILE` for a configuration holding `text`.
fn config(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    format!("--config {}", path.display())
}

/// The real executables with `encrypt_to` and `identity_file` in the
/// configuration: the archived object is an age file only the identity
/// opens (by hand too), restore gives the exact bytes back, and a host that
/// holds recipients and the digest key but no identity still recognises an
/// identical duplicate and refuses a different file.
#[test]
fn archive_encrypts_restore_decrypts_and_duplicates_are_recognised_without_a_key() {
    let site = Site::new();
    let keys = site.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (identity, public) = keygen(&keys, "id.txt");
    let digest = digest_key_file(&keys, "digest.key", 0x11);
    let archiving = config(
        &keys,
        "archive.toml",
        &format!(
            "encrypt_to = [\"{public}\"]\ndigest_key_file = \"{}\"\n",
            digest.display()
        ),
    );
    let restoring = config(
        &keys,
        "restore.toml",
        &format!("identity_file = [\"{}\"]\n", identity.display()),
    );
    let content = segment(SEG, MIB, SYSID, 8);
    site.write_wal(SEG, &content);
    let ran = site.archive(SEG, &archiving);
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    let stored = fs::read(&site.archived(SEG)[0]).unwrap();
    let envelope = read_envelope(&stored).expect("an age file");
    assert_eq!(envelope.recipients, vec![public.clone()]);
    assert!(
        !stored.windows(8).any(|w| w == b"UXWALSUM"),
        "the trailer is inside the ciphertext"
    );
    fs::write(site.dir.path().join("object"), &stored).unwrap();
    sh(
        site.dir.path(),
        &format!(
            "age -d -i {} object | zstd -d > by-hand",
            identity.display()
        ),
    );
    assert!(fs::read(site.dir.path().join("by-hand")).unwrap() == content);

    // Restore: with the identity the bytes come back; without, recovery stops.
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let ran = site.restore(SEG, &restoring);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(site.restored().unwrap() == content);
    let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
    let ran = site.restore(SEG, "");
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(ran.stderr.contains(&public), "{}", ran.stderr);
    fs::remove_file(site.data.join("recovery.signal")).unwrap();

    // The same file again from a host without identities: identical, exit 0.
    let ran = site.archive(SEG, &archiving);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // A different file under the name: refused, the stored copy unchanged.
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 9));
    let ran = site.archive(SEG, &archiving);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("keyed digest") && ran.stderr.contains(SEG),
        "{}",
        ran.stderr
    );
    assert!(fs::read(&site.archived(SEG)[0]).unwrap() == stored);
    // The same file under another digest key cannot be recognised: refused.
    site.write_wal(SEG, &content);
    let other_key = digest_key_file(&keys, "other.key", 0x22);
    let other = config(
        &keys,
        "other.toml",
        &format!(
            "encrypt_to = [\"{public}\"]\ndigest_key_file = \"{}\"\n",
            other_key.display()
        ),
    );
    assert_eq!(site.archive(SEG, &other).code, 1);
}

/// Key files holding secrets must be private, and key settings are checked
/// before anything is archived; no message shows a secret.
#[test]
fn exposed_or_missing_keys_are_refused_with_a_message() {
    let site = Site::new();
    let keys = site.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (identity, public) = keygen(&keys, "id.txt");
    let secret = fs::read_to_string(&identity).unwrap();
    fs::set_permissions(
        &identity,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    site.write_wal(SEG, &segment(SEG, MIB, SYSID, 1));
    let cases = [
        (
            format!("identity_file = [\"{}\"]\n", identity.display()),
            "chmod 600",
        ),
        (format!("encrypt_to = [\"{public}\"]\n"), "digest_key_file"),
        (
            "encrypt_to = [\"age1notarecipient\"]\ndigest_key_file = \"/nonexistent\"\n".into(),
            "not an age recipient",
        ),
        (
            "identity_file = [\"relative.txt\"]\n".into(),
            "absolute paths",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let conf = config(&keys, &format!("c{i}.toml"), text);
        let ran = site.archive(SEG, &conf);
        assert_eq!(ran.code, 1, "{text}: {}", ran.stderr);
        assert!(ran.stderr.contains(expected), "{text}: {}", ran.stderr);
        for line in secret.lines().filter(|l| l.starts_with("AGE-SECRET-KEY")) {
            assert!(!ran.stderr.contains(line), "a secret was printed");
        }
    }
    assert!(site.archived(SEG).is_empty(), "nothing archived");
}

/// Archives one segment to the old key and one to the new (rotation), then
/// restores each during a point-in-time recovery: with both identities both
/// come back exactly; with only the new one, the old file stops recovery
/// (exit 200) naming its recipient, and the new one restores.
fn rotation_round_trip(site: &Site) {
    let keys = site.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (old_id, old_pub) = keygen(&keys, "old.txt");
    let (new_id, new_pub) = keygen(&keys, "new.txt");
    let digest = digest_key_file(&keys, "digest.key", 0x33);
    let archive_to = |name: &str, public: &str| {
        config(
            &keys,
            name,
            &format!(
                "encrypt_to = [\"{public}\"]\ndigest_key_file = \"{}\"\n",
                digest.display()
            ),
        )
    };
    let (a, b) = ("000000010000000000000004", "000000010000000000000005");
    for (name, conf, seed) in [
        (a, archive_to("old.toml", &old_pub), 1),
        (b, archive_to("new.toml", &new_pub), 2),
    ] {
        site.write_wal(name, &segment(name, MIB, SYSID, seed));
        let ran = site.archive(name, &conf);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
    }
    let reading = |files: &[&PathBuf], tag: &str| {
        let list: Vec<String> = files
            .iter()
            .map(|f| format!("\"{}\"", f.display()))
            .collect();
        config(
            &keys,
            &format!("read-{tag}.toml"),
            &format!("identity_file = [{}]\nprefetch = 0\n", list.join(", ")),
        )
    };
    let both = reading(&[&old_id, &new_id], "both");
    let only_new = reading(&[&new_id], "new");
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    for (name, seed) in [(a, 1), (b, 2)] {
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let ran = site.restore(name, &both);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
        assert!(site.restored().unwrap() == segment(name, MIB, SYSID, seed));
    }
    let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
    let ran = site.restore(a, &only_new);
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert!(ran.stderr.contains(&old_pub), "{}", ran.stderr);
    assert!(site.restored().is_none());
    let ran = site.restore(b, &only_new);
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    // Several recipients at once: either identity alone restores the file.
    let c = "000000010000000000000006";
    fs::remove_file(site.data.join("recovery.signal")).unwrap();
    let to_both = config(
        &keys,
        "both-to.toml",
        &format!(
            "encrypt_to = [\"{old_pub}\", \"{new_pub}\"]\ndigest_key_file = \"{}\"\n",
            digest.display()
        ),
    );
    site.write_wal(c, &segment(c, MIB, SYSID, 3));
    let ran = site.archive(c, &to_both);
    assert_eq!(ran.code, 0, "{c}: {}", ran.stderr);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let only_old = reading(&[&old_id], "old");
    for with in [&only_old, &only_new] {
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let ran = site.restore(c, with);
        assert_eq!(ran.code, 0, "{c}: {}", ran.stderr);
        assert!(site.restored().unwrap() == segment(c, MIB, SYSID, 3));
    }
}

#[test]
fn rotation_round_trip_local_directory() {
    rotation_round_trip(&Site::new());
}

#[test]
fn rotation_round_trip_s3() {
    let s3 = common::servers::S3::start("walbucket");
    rotation_round_trip(&s3.site("encrypted"));
}

#[test]
fn rotation_round_trip_azure() {
    let az = common::servers::Azure::start("walcontainer");
    let mut site = Site::new();
    site.location = az.location("encrypted");
    site.env = az.env();
    rotation_round_trip(&site);
}

/// A repository is plain or encrypted, and says which (its `ENCRYPTION`
/// object): an encrypting host refuses a plain repository and a plain host an
/// encrypted one, until `uxwal-archive --start-encryption` converts it going
/// forward; what was archived before stays readable. Keys given on the
/// command line (`--encrypt-to`, `--digest-key-file`, `--identity`).
fn mixing_is_refused_until_encryption_is_started(
    site: &Site,
    options: uxwal::repo::remote::StoreOptions,
) {
    let keys = site.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (identity, public) = keygen(&keys, "id.txt");
    let digest = digest_key_file(&keys, "digest.key", 0x44);
    let encrypting = format!(
        "--encrypt-to {public} --digest-key-file {}",
        digest.display()
    );
    let reading = format!("--identity {} --prefetch 0", identity.display());
    let (a, b, c) = (
        "000000010000000000000001",
        "000000010000000000000002",
        "000000010000000000000003",
    );
    for (seed, name) in [a, b, c].into_iter().enumerate() {
        site.write_wal(name, &segment(name, MIB, SYSID, seed as u64));
    }
    let ran = site.archive(a, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    // Encrypted WAL into the plain repository: refused, nothing stored.
    let ran = site.archive(b, &encrypting);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("unencrypted WAL")
            && ran.stderr.contains("--start-encryption")
            && ran.stderr.contains(b),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    let restored_b = site.restore(b, &reading);
    assert_eq!(restored_b.code, 1, "not archived: {}", restored_b.stderr);

    // --start-encryption without recipients: exit 1, nothing written; with a
    // file to archive as well: a usage error, exit 2.
    let ran = site.sh("\"$ARCHIVE\" --repo \"$REPO\" --start-encryption", "", "");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("needs recipients"), "{}", ran.stderr);
    let ran = site.sh(
        &format!("\"$ARCHIVE\" --repo \"$REPO\" --start-encryption {encrypting} %p %f"),
        &format!("pg_wal/{b}"),
        b,
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    // Converted going forward: told once, and again when already done.
    let start = format!("\"$ARCHIVE\" --repo \"$REPO\" --start-encryption {encrypting}");
    let ran = site.sh(&start, "", "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("from now on is encrypted") && ran.stdout.contains(&public),
        "{}",
        ran.stdout
    );
    let ran = site.sh(&start, "", "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("encrypted already"), "{}", ran.stdout);
    let marker = Repository::open_with(&site.location, &options)
        .unwrap()
        .recorded()
        .unwrap()
        .encryption
        .expect("the repository records its encryption");
    assert_eq!(marker.recipients, vec![public.clone()]);

    let ran = site.archive(b, &encrypting);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Plain WAL into the encrypted repository: refused.
    let ran = site.archive(c, "");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("holds encrypted WAL") && ran.stderr.contains("encrypt_to"),
        "{}",
        ran.stderr
    );
    // Both generations restore with the identity; the old one without it too.
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    for (name, seed, with) in [(a, 0, &reading), (b, 1, &reading), (a, 0, &String::new())] {
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let ran = site.restore(name, with);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
        assert!(site.restored().unwrap() == segment(name, MIB, SYSID, seed));
    }
    let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
    assert_eq!(site.restore(b, "--prefetch 0").code, 200);

    // uxwal-verify says which files are encrypted, and to whom.
    let (ran, json) = verify(site, &format!("--identity {}", identity.display()));
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let e = &json["encryption"];
    assert_eq!(e["encrypted"], true, "{e}");
    assert_eq!(e["files_encrypted"], 1, "{e}");
    assert_eq!(e["files_plain"], 1, "{e}");
    assert_eq!(e["recipients"][&public], 1, "{e}");
    let human = site.sh(
        &format!(
            "{VERIFY:?} --repo \"$REPO\" --identity {}",
            identity.display()
        ),
        "",
        "",
    );
    assert!(
        human.stdout.contains("1 files encrypted, 1 plain") && human.stdout.contains(&public),
        "{}",
        human.stdout
    );
    // Without the identity a full check cannot vouch for the encrypted file;
    // --quick, names and sizes only, needs none.
    let (ran, json) = verify(site, "");
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    let kinds: Vec<&Value> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["kind"])
        .collect();
    assert_eq!(kinds, [&Value::from("no_identity")], "{}", ran.stdout);
    let (ran, json) = verify(site, "--quick");
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(json["encryption"]["encrypted"], true);
    assert_eq!(json["encryption"]["files_encrypted"], Value::Null);
}

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

/// `uxwal-verify --json` of `site`'s repository with `args`.
fn verify(site: &Site, args: &str) -> (Ran, Value) {
    let ran = site.sh(
        &format!("{VERIFY:?} --repo \"$REPO\" --json {args}"),
        "",
        "",
    );
    let json = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", ran.stdout, ran.stderr));
    (ran, json)
}

#[test]
fn mixing_plain_and_encrypted_is_refused_local_directory() {
    mixing_is_refused_until_encryption_is_started(&Site::new(), Default::default());
}

#[test]
fn mixing_plain_and_encrypted_is_refused_s3() {
    let s3 = common::servers::S3::start("walbucket");
    mixing_is_refused_until_encryption_is_started(&s3.site("mixing"), s3.store_options());
}

/// An encrypted object that decrypts and checks out, but is not this file:
/// another cluster's segment, or another segment's object under this name
/// (copied from another repository with the same keys). Restore during a
/// point-in-time recovery stops (exit 200): never restored, never "not found".
#[test]
fn a_swapped_encrypted_object_is_refused_never_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "id.txt");
    let digest = DigestKey::load(&digest_key_file(dir.path(), "digest.key", 7)).unwrap();
    let recipients = Recipients::parse(std::slice::from_ref(&public)).unwrap();
    let (site, _) = repository_with_sealed(&segment(SEG, MIB, SYSID, 5), &recipients, &digest);
    let reading = format!("--identity {} --prefetch 0", key.display());
    // The data directory's own system identifier, as restore reads it.
    fs::create_dir_all(site.data.join("global")).unwrap();
    let mut control = SYSID.to_ne_bytes().to_vec();
    control.resize(8192, 0);
    fs::write(site.data.join("global/pg_control"), control).unwrap();
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let ran = site.restore(SEG, &reading);
    assert_eq!(
        ran.code, 0,
        "the object as planted restores: {}",
        ran.stderr
    );

    let other = "000000010000000000000009";
    for (what, content) in [
        ("another cluster's segment", segment(SEG, MIB, SYSID + 1, 5)),
        ("another segment's object", segment(other, MIB, SYSID, 5)),
    ] {
        plant(
            &site,
            &encrypted_object(&content, Compression::Zstd, &recipients, &digest),
        );
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let ran = site.restore(SEG, &reading);
        assert_eq!(ran.code, 200, "{what}: {}", ran.stderr);
        assert!(site.restored().is_none(), "{what}: nothing reaches %p");
        assert!(ran.stderr.contains(SEG), "{what}: {}", ran.stderr);
    }
}

/// A segment larger than the one-pass size (16 MiB) is hashed by a first pass
/// beside compression, and the streaming pass's hash must agree: a 32 MiB
/// segment, compressed and not, round trips.
#[test]
fn a_segment_above_16_mib_round_trips_through_the_two_pass_path() {
    let site = Site::new();
    let keys = site.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (identity, public) = keygen(&keys, "id.txt");
    let digest = digest_key_file(&keys, "digest.key", 0x66);
    let name = "000000010000000000000002";
    let content = segment(name, 32 * MIB, SYSID, 9);
    site.write_wal(name, &content);
    let to = format!(
        "--encrypt-to {public} --digest-key-file {}",
        digest.display()
    );
    let ran = site.archive(name, &to);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ran = site.archive(name, &to);
    assert_eq!(ran.code, 0, "an identical duplicate: {}", ran.stderr);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let ran = site.restore(
        name,
        &format!("--identity {} --prefetch 0", identity.display()),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(site.restored().unwrap() == content);
    let stored = fs::read(&site.archived(name)[0]).unwrap();
    assert_eq!(read_envelope(&stored).unwrap().recipients, vec![public]);
}
