//! End to end with object storage: a real PostgreSQL server archives into S3
//! (moto) with uxwal-archive, a base backup is recovered to a named restore
//! point with uxwal-restore reading from S3, and the data must be exactly the
//! data at that point; no archive attempt may fail.

mod common;

use std::fs;

use common::pg::{chown_to_postgres, pg_tempdir};
use common::pitr::{archive_marked_history, start_s3_primary};
use common::servers::S3;

fn pitr_through(repos_for: impl Fn(&std::path::Path, &S3) -> Vec<String>) {
    let s3 = S3::start("walbucket");
    let shared = pg_tempdir("uxwal-s3e2e.");
    chown_to_postgres(shared.path());
    let repos = repos_for(shared.path(), &s3);
    let repo_refs: Vec<&str> = repos.iter().map(String::as_str).collect();
    let (mut primary, args) = start_s3_primary("s3primary", &s3, shared.path(), &repo_refs);
    let archived = archive_marked_history(&mut primary, &shared.path().join("base"), "uxwal_s3");

    // The repositories come from the configuration file, not `unused`.
    archived.recover_to_target("s3pitr", &shared.path().join("unused"), false, |pitr| {
        pitr.set_repo_args(&args)
    });
    // Every repository holds every archived segment.
    let last = &archived.last;
    for repo in repos.iter().filter(|r| !r.contains("://")) {
        assert!(
            common::pg::find_in_repo(std::path::Path::new(repo), last).is_some(),
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
