//! End to end with object storage: a real PostgreSQL server archives into S3
//! (moto) with uxwal-archive, a base backup is recovered to a named restore
//! point with uxwal-restore reading from S3, and the data must be exactly the
//! data at that point; no archive attempt may fail.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::pg::{chown_to_postgres, pg_tempdir, Cluster, InitOptions, Recovery, RestoreOptions};
use common::servers::S3;

const STATE_SQL: &str = "select (select sum(abalance) || '/' || count(*) from pgbench_accounts) \
     || ' markers=' || (select coalesce(string_agg(label, ',' order by label), '') from uxwal_marker)";

/// Writes a private configuration file the `postgres` user can read, naming
/// `repos` and the S3 endpoint and credentials of `s3`.
fn write_config(dir: &std::path::Path, s3: &S3, repos: &[String]) -> String {
    let path = dir.join("uxwal.toml");
    let repo_line = if repos.len() == 1 {
        format!("repo = \"{}\"", repos[0])
    } else {
        format!(
            "repo = [{}]",
            repos
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    fs::write(
        &path,
        format!(
            "{repo_line}\ndeadline = 30\n[s3]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\n\
             secret_access_key = \"testing\"\nregion = \"us-east-1\"\nallow_http = true\n",
            s3.endpoint()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    chown_to_postgres(&path);
    format!("--config {}", path.display())
}

fn pitr_through(repos_for: impl Fn(&std::path::Path, &S3) -> Vec<String>) {
    let s3 = S3::start("walbucket");
    let shared = pg_tempdir("uxwal-s3e2e.");
    chown_to_postgres(shared.path());
    let repos = repos_for(shared.path(), &s3);
    let args = write_config(shared.path(), &s3, &repos);
    let backup = shared.path().join("base");

    let mut primary = Cluster::init(
        "s3primary",
        &InitOptions {
            wal_segsize_mb: 1,
            archive: true,
            repo: None,
        },
    );
    primary.set_repo_args(&args);
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table uxwal_marker (label text primary key)");
    primary.base_backup(&backup);
    primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
    primary.psql("insert into uxwal_marker values ('before_target')");
    let at_target = primary.psql(STATE_SQL);
    primary.psql("select pg_create_restore_point('uxwal_s3')");
    primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
    primary.psql("insert into uxwal_marker values ('after_target')");
    let last = primary.switch_wal();
    primary.wait_for_archived(&last);
    assert_eq!(primary.archive_failures(), 0);
    primary.stop();

    let mut pitr = Cluster::from_backup(
        "s3pitr",
        &backup,
        &RestoreOptions {
            repo: shared.path().join("unused"),
            recovery: Recovery::promote(Some("uxwal_s3"), None),
            archive: false,
        },
    );
    pitr.set_repo_args(&args);
    pitr.start();
    pitr.wait_for("select pg_is_in_recovery()", "f");
    assert_eq!(
        pitr.psql(STATE_SQL),
        at_target,
        "restored data equals the data at the restore point"
    );
    // Every repository holds every archived segment.
    for repo in repos.iter().filter(|r| !r.contains("://")) {
        assert!(
            common::pg::find_in_repo(std::path::Path::new(repo), &last).is_some(),
            "{last} in {repo}"
        );
    }
}

#[test]
fn pitr_from_s3() {
    pitr_through(|_, s3| vec![s3.location("pg/main")]);
}

#[test]
fn pitr_with_two_repositories_local_and_s3() {
    pitr_through(|dir, s3| {
        let local = dir.join("localrepo");
        fs::create_dir(&local).unwrap();
        chown_to_postgres(&local);
        vec![local.display().to_string(), s3.location("pg/both")]
    });
}
