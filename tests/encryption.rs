//! Issue 14: an encrypted archived object is an age file holding the usual
//! compressed object, so that it is restored by hand with standard tools:
//! `age -d -i KEY OBJECT | zstd -d > SEGMENT` (Debian's `age`, the Go
//! implementation), and the other way round, uxwal reads what `age` wrote.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};
use uxwal::codec::{Compression, Encoder, Trailer};
use uxwal::crypt::{read_envelope, DigestKey, Identities, Recipients};

const SEG: &str = "000000010000000000000007";

/// `age-keygen -o DIR/NAME`: the identity file and its public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian package age; scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert!(public.status.success());
    (
        path,
        String::from_utf8(public.stdout).unwrap().trim().to_owned(),
    )
}

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
    let digest_key = dir.path().join("digest.key");
    fs::write(&digest_key, [0x5Au8; 32]).unwrap();
    fs::set_permissions(
        &digest_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let digest_key = DigestKey::load(&digest_key).unwrap();
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
