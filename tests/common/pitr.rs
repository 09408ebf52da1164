//! The point-in-time recovery scenario the PostgreSQL tests share: a primary
//! archives while it writes, a base backup is taken, a named restore point
//! splits its work into "before" and "after", and a copy of the backup
//! recovered to that point must hold exactly the data of the point. The tests
//! bring their own primary (repository, options), workloads and assertions.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::pg::{Cluster, InitOptions, Recovery, RestoreOptions};
use super::servers::S3;

/// One line that changes with any committed write of the scenario: the account
/// balances and the marker rows.
pub const STATE_SQL: &str = "select (select sum(abalance) || '/' || count(*) from pgbench_accounts) \
     || ' markers=' || (select coalesce(string_agg(label, ',' order by label), '') from uxwal_marker)";

/// What the primary left in its archive.
pub struct Archived {
    /// The base backup (taken before the restore point's "before" work).
    pub backup: PathBuf,
    /// The restore point's name.
    pub target: String,
    /// [`STATE_SQL`] at the restore point.
    pub at_target: String,
    /// The last segment the primary completed and archived.
    pub last: String,
}

/// Starts the primary `name` (1 MiB segments) archiving into `repos` through
/// a uxwal.toml in `dir` written for `s3` (30 s deadline); returns it with the
/// `--config` arguments its recoveries take too.
pub fn start_s3_primary(name: &str, s3: &S3, dir: &Path, repos: &[&str]) -> (Cluster, String) {
    let config = s3.write_config(&dir.join("uxwal.toml"), repos, Some(30));
    let args = format!("--config {}", config.display());
    (start_primary(name, &args), args)
}

/// Starts the primary `name` (1 MiB segments) archiving with uxwal and the
/// repository arguments `args` (a `--config` naming its repositories).
pub fn start_primary(name: &str, args: &str) -> Cluster {
    let mut primary = Cluster::init(
        name,
        &InitOptions {
            wal_segsize_mb: 1,
            archive: true,
            repo: None,
        },
    );
    primary.set_repo_args(args);
    primary.start();
    primary
}

/// [`archive_history`] at scale 1 with the usual small workloads: 200 pgbench
/// transactions and a marker row on each side of the restore point `target`.
pub fn archive_marked_history(primary: &mut Cluster, backup: &Path, target: &str) -> Archived {
    archive_history(
        primary,
        1,
        backup,
        target,
        |primary| {
            primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
            primary.psql("insert into uxwal_marker values ('before_target')");
        },
        |primary| {
            primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
            primary.psql("insert into uxwal_marker values ('after_target')");
        },
    )
}

/// Runs the scenario on the started, archiving `primary`: pgbench tables at
/// `scale` and a marker table, a base backup into `backup` (which must not
/// exist), `before`, the restore point `target`, `after`, a WAL switch; waits
/// until the last segment is archived with no failed attempt, then stops the
/// primary.
pub fn archive_history(
    primary: &mut Cluster,
    scale: u32,
    backup: &Path,
    target: &str,
    before: impl FnOnce(&Cluster),
    after: impl FnOnce(&Cluster),
) -> Archived {
    primary.pgbench(&["-i", "-s", &scale.to_string(), "-q"]);
    primary.psql("create table uxwal_marker (label text primary key)");
    primary.base_backup(backup);
    before(primary);
    let at_target = primary.psql(STATE_SQL);
    primary.psql(&format!("select pg_create_restore_point('{target}')"));
    after(primary);
    let last = primary.switch_wal();
    primary.wait_for_archived(&last);
    assert_eq!(primary.archive_failures(), 0, "{}", primary.log_tail(50));
    primary.stop();
    Archived {
        backup: backup.to_path_buf(),
        target: target.to_string(),
        at_target,
        last,
    }
}

impl Archived {
    /// A cluster `name` made from the base backup, recovering from `repo` to the
    /// restore point and promoted there (archiving its own WAL into `repo` when
    /// `archive` is set). `configure` adapts it before it starts (repository
    /// arguments, restore_command options). Returns it running, once it accepts
    /// writes and holds exactly the data at the restore point.
    pub fn recover_to_target(
        &self,
        name: &str,
        repo: &Path,
        archive: bool,
        configure: impl FnOnce(&mut Cluster),
    ) -> Cluster {
        let mut pitr = Cluster::from_backup(
            name,
            &self.backup,
            &RestoreOptions {
                repo: repo.to_path_buf(),
                recovery: Recovery::promote(Some(&self.target), None),
                archive,
            },
        );
        configure(&mut pitr);
        pitr.start();
        pitr.wait_for("select pg_is_in_recovery()", "f");
        assert_eq!(
            pitr.psql(STATE_SQL),
            self.at_target,
            "{name}: the restored data equals the data at the restore point"
        );
        pitr
    }
}
