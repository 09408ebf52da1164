//! End to end with encryption at rest: a real PostgreSQL server archives into
//! S3 (moto) with `encrypt_to`, a base backup is recovered to a named restore
//! point from the encrypted bucket, and uxwal-verify checks the bucket with
//! the identity (every object opened, all encrypted) and without it
//! (`--quick`: names and sizes only; a full check reports what it cannot open).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::pg::{chown_to_postgres, pg_tempdir};
use common::pitr::{archive_marked_history, start_primary};
use common::servers::S3;
use common::Ran;
use serde_json::Value;

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

/// A private (0600) file the PostgreSQL user owns.
fn private_to_postgres(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    chown_to_postgres(path);
}

fn verify(config: &Path, args: &[&str]) -> (Ran, Value) {
    let ran: Ran = Command::new(VERIFY)
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into();
    let json = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", ran.stdout, ran.stderr));
    (ran, json)
}

#[test]
fn pitr_from_an_encrypted_s3_repository_and_verify_with_and_without_the_identity() {
    let s3 = S3::start("walbucket");
    let shared = pg_tempdir("uxwal-s3enc.");
    chown_to_postgres(shared.path());
    let keys = shared.path().join("keys");
    fs::create_dir(&keys).unwrap();
    chown_to_postgres(&keys);
    let (identity, public) = common::age_keygen(&keys, "identity.txt");
    private_to_postgres(&identity);
    let digest = keys.join("digest.key");
    fs::write(&digest, [0x5a; 32]).unwrap();
    private_to_postgres(&digest);

    let repo = s3.location("pg/encrypted");
    // Without keys: what a host that can neither encrypt nor decrypt uses.
    let plain = s3.write_config(&shared.path().join("plain.toml"), &[&repo], Some(30));
    let config = shared.path().join("uxwal.toml");
    fs::write(
        &config,
        format!(
            "encrypt_to = [\"{public}\"]\ndigest_key_file = \"{}\"\nidentity_file = [\"{}\"]\n{}",
            digest.display(),
            identity.display(),
            fs::read_to_string(&plain).unwrap()
        ),
    )
    .unwrap();
    private_to_postgres(&config);
    let args = format!("--config {}", config.display());

    let mut primary = start_primary("s3encprimary", &args);
    let archived =
        archive_marked_history(&mut primary, &shared.path().join("base"), "uxwal_encrypted");
    archived.recover_to_target("s3encpitr", &shared.path().join("unused"), false, |pitr| {
        pitr.set_repo_args(&args)
    });

    // With the identity: every object opened, every one encrypted.
    let (ran, json) = verify(&config, &[]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let e = &json["encryption"];
    assert_eq!(e["encrypted"], true, "{e}");
    assert_eq!(e["files_plain"], 0, "{e}");
    let encrypted = e["files_encrypted"].as_u64().unwrap();
    assert!(encrypted >= 3, "{e}");
    assert_eq!(e["recipients"][&public], encrypted, "{e}");
    assert_eq!(json["summary"]["files_checked"], encrypted);
    // Without it: --quick lists names and sizes, and is clean.
    let (ran, json) = verify(&plain, &["--quick"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(json["summary"]["files_checked"], encrypted);
    assert_eq!(json["encryption"]["encrypted"], true);
    // A full check without it opens nothing, and says so for each file.
    let (ran, json) = verify(&plain, &[]);
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    let problems = json["problems"].as_array().unwrap();
    assert!(
        !problems.is_empty() && problems.iter().all(|p| p["kind"] == "no_identity"),
        "{}",
        ran.stdout
    );
}
