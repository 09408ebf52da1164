//! The metrics file (`--metrics-file`, `metrics_file`; docs/metrics.md): after
//! each run of each command the file is read back with a real Prometheus
//! text-format parser (the `prometheus-client` Python package, which
//! scripts/install-deps installs), and its series are checked against what the
//! run did.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{segment, Ran, Site, MIB, SYSID};

const CLEANUP: &str = env!("CARGO_BIN_EXE_uxwal-cleanup");
const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

const SEG1: &str = "000000010000000000000001";
const SEG2: &str = "000000010000000000000002";
const SEG3: &str = "000000010000000000000003";

/// One sample: its series name and labels.
type Key = (String, BTreeMap<String, String>);

/// Every sample of the metrics file at `path` as the `prometheus_client`
/// parser reads it, and each family's type. Fails the test when the parser
/// rejects the file.
fn parse(path: &Path) -> (BTreeMap<Key, f64>, BTreeMap<String, String>) {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = [], {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps({"samples": samples, "types": types}))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Prometheus parser rejects {} (is prometheus-client installed? \
         scripts/install-deps installs it): {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(path).unwrap_or_default()
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut samples = BTreeMap::new();
    for s in parsed["samples"].as_array().unwrap() {
        let labels = s[1]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let key = (s[0].as_str().unwrap().to_owned(), labels);
        assert!(
            samples.insert(key, s[2].as_f64().unwrap()).is_none(),
            "a sample twice"
        );
    }
    let types = parsed["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (samples, types)
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (name.to_owned(), labels)
}

/// The value of one sample, failing with the whole file when it is absent.
fn value(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted = key(name, labels);
    *samples
        .get(&wanted)
        .unwrap_or_else(|| panic!("no sample {wanted:?} in {samples:#?}"))
}

fn run_tool(site: &Site, bin: &str, args: &[&str]) -> Ran {
    Command::new(bin)
        .args(args)
        .current_dir(&site.data)
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into()
}

/// Bytes of the stored object of `name` in the site's repository.
fn stored_size(site: &Site, name: &str) -> f64 {
    let found = site.archived(name);
    assert_eq!(found.len(), 1, "{found:?}");
    fs::metadata(&found[0]).unwrap().len() as f64
}

#[test]
fn every_command_updates_a_file_the_prometheus_parser_reads() {
    let site = Site::new();
    let metrics_dir = site.dir.path().join("textfile");
    fs::create_dir(&metrics_dir).unwrap();
    let metrics = metrics_dir.join("uxwal.prom");
    let flag = format!("--metrics-file {}", metrics.display());
    let repo = site.location.as_str();
    let status = site.data.join("pg_wal/archive_status");
    fs::create_dir(&status).unwrap();
    for (i, name) in [SEG1, SEG2, SEG3].into_iter().enumerate() {
        site.write_wal(name, &segment(name, MIB, SYSID, i as u64));
        fs::write(status.join(format!("{name}.ready")), "").unwrap();
    }

    // Archive: a success per file, the bytes, the ready files (its own included).
    let ran = site.archive(SEG1, &flag);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stderr, "", "no warning");
    fs::remove_file(status.join(format!("{SEG1}.ready"))).unwrap();
    let ran = site.archive(SEG2, &flag);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (samples, types) = parse(&metrics);
    let archive = [("command", "archive"), ("repository", repo)];
    let success = [archive[0], archive[1], ("result", "success")];
    assert_eq!(value(&samples, "uxwal_runs_total", &success), 2.0);
    assert_eq!(types["uxwal_runs"], "counter");
    assert_eq!(types["uxwal_last_success_timestamp_seconds"], "gauge");
    assert_eq!(
        value(&samples, "uxwal_original_bytes_total", &archive),
        2.0 * MIB as f64
    );
    let stored = stored_size(&site, SEG1) + stored_size(&site, SEG2);
    assert_eq!(
        value(&samples, "uxwal_stored_bytes_total", &archive),
        stored
    );
    assert_eq!(value(&samples, "uxwal_archive_ready_files", &[]), 2.0);
    assert!(value(&samples, "uxwal_archive_oldest_ready_age_seconds", &[]) >= 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = value(&samples, "uxwal_last_success_timestamp_seconds", &archive);
    assert!(last > now - 3600.0 && last <= now, "{last} vs {now}");
    assert!(value(&samples, "uxwal_last_duration_seconds", &archive) >= 0.0);
    assert!(!samples.contains_key(&key("uxwal_last_failure_timestamp_seconds", &archive)));

    // A failed archive (a file whose header is not a segment's) is a failure.
    site.write_wal(SEG3, &vec![0u8; MIB as usize]);
    let ran = site.archive(SEG3, &flag);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let (samples, _) = parse(&metrics);
    let failure = [archive[0], archive[1], ("result", "failure")];
    assert_eq!(value(&samples, "uxwal_runs_total", &failure), 1.0);
    assert_eq!(value(&samples, "uxwal_runs_total", &success), 2.0, "kept");
    assert!(value(&samples, "uxwal_last_failure_timestamp_seconds", &archive) > 0.0);

    // Restore, through the configuration file's metrics_file: a success with
    // the bytes restored and read; the end of the archive is "not found".
    let config = site.dir.path().join("uxwal.toml");
    fs::write(
        &config,
        format!("metrics_file = {:?}\n", metrics.display().to_string()),
    )
    .unwrap();
    let with_config = format!("--config {}", config.display());
    let ran = site.restore(SEG1, &with_config);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ran = site.restore(SEG3, &with_config);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let (samples, _) = parse(&metrics);
    let restore = [("command", "restore"), ("repository", repo)];
    let ok = [restore[0], restore[1], ("result", "success")];
    let missing = [restore[0], restore[1], ("result", "not_found")];
    assert_eq!(value(&samples, "uxwal_runs_total", &ok), 1.0);
    assert_eq!(value(&samples, "uxwal_runs_total", &missing), 1.0);
    assert_eq!(
        value(&samples, "uxwal_original_bytes_total", &restore),
        MIB as f64
    );
    assert_eq!(
        value(&samples, "uxwal_stored_bytes_total", &restore),
        stored_size(&site, SEG1)
    );
    assert!(
        !samples.contains_key(&key("uxwal_last_failure_timestamp_seconds", &restore)),
        "not found is not a failure"
    );
    assert_eq!(
        value(&samples, "uxwal_runs_total", &success),
        2.0,
        "archive's kept"
    );

    // Verify: clean, no backups.
    let ran = run_tool(
        &site,
        VERIFY,
        &[
            "--repo",
            repo,
            "--metrics-file",
            &metrics.display().to_string(),
            "-q",
        ],
    );
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let (samples, _) = parse(&metrics);
    let verify = [("repository", repo)];
    let verified = [
        ("command", "verify"),
        ("repository", repo),
        ("result", "success"),
    ];
    assert_eq!(value(&samples, "uxwal_runs_total", &verified), 1.0);
    assert_eq!(value(&samples, "uxwal_verify_problems", &verify), 0.0);
    assert_eq!(value(&samples, "uxwal_verify_gaps", &verify), 0.0);
    assert_eq!(
        value(&samples, "uxwal_verify_missing_segments", &verify),
        0.0
    );
    assert_eq!(value(&samples, "uxwal_verify_backups", &verify), 0.0);
    assert_eq!(
        value(&samples, "uxwal_verify_restorable_backups", &verify),
        0.0
    );

    // Cleanup keeping SEG2: SEG1 is removed; a dry run records nothing.
    let metrics_arg = metrics.display().to_string();
    let args = ["--metrics-file", metrics_arg.as_str(), repo, SEG2];
    let before = fs::read(&metrics).unwrap();
    let ran = run_tool(&site, CLEANUP, &[&["-n"][..], &args].concat());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read(&metrics).unwrap(),
        before,
        "a dry run is not recorded"
    );
    let ran = run_tool(&site, CLEANUP, &args);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (samples, _) = parse(&metrics);
    let cleaned = [
        ("command", "cleanup"),
        ("repository", repo),
        ("result", "success"),
    ];
    assert_eq!(value(&samples, "uxwal_runs_total", &cleaned), 1.0);
    assert_eq!(
        value(&samples, "uxwal_cleanup_removed_files_total", &verify),
        1.0
    );
    assert!(site.archived(SEG1).is_empty());

    // Only the file and the locks are left in the directory: no staging file.
    let mut left: Vec<String> = fs::read_dir(&metrics_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".lock", "uxwal.prom", "uxwal.prom.lock"]);
    let mode = fs::metadata(&metrics).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "readable by the collector");
}

#[test]
fn a_metrics_file_that_cannot_be_written_costs_a_warning_only() {
    let site = Site::new();
    let open = site.dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    for (name, metrics, why) in [
        (
            SEG1,
            site.dir.path().join("absent/uxwal.prom"),
            "No such file",
        ),
        (SEG2, open.join("uxwal.prom"), "writable by every user"),
    ] {
        site.write_wal(name, &segment(name, MIB, SYSID, 1));
        let ran = site.archive(name, &format!("--metrics-file {}", metrics.display()));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        let expected = format!("{name}: metrics file {} not updated", metrics.display());
        assert!(
            ran.stderr.starts_with("uxwal-archive: warning: ")
                && ran.stderr.contains(&expected)
                && ran.stderr.contains(why),
            "{}",
            ran.stderr
        );
        assert!(!metrics.exists());
        assert_eq!(site.archived(name).len(), 1, "archived all the same");
    }
    assert_eq!(
        fs::read_dir(&open).unwrap().count(),
        0,
        "nothing created there"
    );
}
