//! uxwal-verify against archives made by the real uxwal-archive: intact ones
//! exit 0; each kind of damage, one at a time, exits 1 and is named exactly.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{segment, Ran, Site, MIB, SYSID};
use serde_json::Value;

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

fn verify(repo: &Path, args: &[&str]) -> (Ran, Option<Value>) {
    let ran: Ran = Command::new(VERIFY)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into();
    let json = args.contains(&"--json").then(|| {
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
    });
    (ran, json)
}

fn archive(site: &Site, name: &str, bytes: &[u8]) {
    site.write_wal(name, bytes);
    let r = site.archive(name, "");
    assert_eq!(r.code, 0, "archive {name}: {}", r.stderr);
}

/// Timeline 1 segments 3..=6, timeline 2 forked at 0/6000100 (inside segment 6)
/// with segments 6..=9, a `.partial` of timeline 1's segment 6, and a base
/// backup starting in segment 4. 1 MiB segments.
fn two_timelines() -> Site {
    let site = Site::new();
    for s in 3..=6 {
        let name = format!("0000000100000000000000{s:02X}");
        archive(&site, &name, &segment(&name, MIB, SYSID, s));
    }
    archive(
        &site,
        "000000010000000000000004.00000028.backup",
        b"START WAL LOCATION: 0/400028 (file 000000010000000000000004)\n\
STOP WAL LOCATION: 0/400100 (file 000000010000000000000004)\nCHECKPOINT LOCATION: 0/400060\n\
BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-01-01 00:00:00 UTC\n\
LABEL: nightly\nSTART TIMELINE: 1\nSTOP TIME: 2025-01-01 00:00:01 UTC\nSTOP TIMELINE: 1\n",
    );
    archive(
        &site,
        "00000002.history",
        b"1\t0/600100\tno recovery target specified\n",
    );
    let partial = "000000010000000000000006.partial";
    archive(&site, partial, &segment(partial, MIB, SYSID, 99));
    for s in 6..=9 {
        let name = format!("0000000200000000000000{s:02X}");
        archive(&site, &name, &segment(&name, MIB, SYSID, 100 + s));
    }
    site
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn key(name: &str) -> String {
    format!("wal/{}/{name}", &name[..16])
}

/// Checks `report` against docs/verify.schema.json: required fields, types,
/// enums, recursively (a small subset of JSON Schema, enough for ours).
fn check_schema(schema: &Value, v: &Value, at: &str) {
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
            _ => panic!("bad schema type at {at}"),
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => panic!("unknown type {other}"),
        });
        assert!(ok, "{at}: {v} is not of type {types:?}");
    }
    if let (Some(e), false) = (schema.get("enum"), v.is_null()) {
        assert!(e.as_array().unwrap().contains(v), "{at}: {v} not in {e}");
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(obj.contains_key(r.as_str().unwrap()), "{at}: missing {r}");
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                if let Some(x) = obj.get(k) {
                    check_schema(sub, x, &format!("{at}.{k}"));
                }
            }
            for k in obj.keys() {
                assert!(props.contains_key(k), "{at}: {k} is not in the schema");
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check_schema(items, x, &format!("{at}[{i}]"));
        }
    }
}

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify.schema.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// (kind, file or first missing name) of every problem.
fn problems(v: &Value) -> Vec<(String, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let what = p["file"].as_str().or(p["first"].as_str()).unwrap_or("");
            (p["kind"].as_str().unwrap().to_string(), what.to_string())
        })
        .collect()
}

#[test]
fn intact_archive_exits_0_with_a_report_that_matches_the_schema() {
    let site = two_timelines();
    let (ran, v) = verify(&site.repo, &["--json"]);
    let v = v.unwrap();
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    check_schema(&schema(), &v, "$");
    assert_eq!(v["ok"], true);
    assert_eq!(v["summary"]["files_checked"], 11);
    let t = &v["timelines"];
    assert_eq!(t[0]["first_segment"], "000000010000000000000003");
    assert_eq!(t[0]["partial"][0], "000000010000000000000006.partial");
    assert_eq!(t[1]["parent"], 1);
    assert_eq!(t[1]["switch_lsn"], "0/600100");
    let b = &v["backups"][0];
    assert_eq!(b["label"], "nightly");
    assert_eq!(b["restorable_to_latest"], true);
    assert_eq!(b["latest_segment"], "000000020000000000000009");

    let (human, _) = verify(&site.repo, &[]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("restorable to latest"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("OK: nothing is wrong"));
    let (quick, v) = verify(&site.repo, &["--quick", "--json"]);
    assert_eq!(quick.code, 0, "{}", quick.stdout);
    check_schema(&schema(), &v.unwrap(), "$");
}

#[test]
fn each_damage_is_named_exactly_and_exits_1() {
    let base = two_timelines();
    // A segment of another cluster, archived by the real uxwal-archive elsewhere.
    let other = Site::new();
    let foreign = "000000020000000000000008";
    archive(&other, foreign, &segment(foreign, MIB, SYSID + 1, 8));

    type Damage = Box<dyn Fn(&Path)>;
    let seg = |n: &str| key(n);
    let cases: Vec<(&str, Damage, &str, String)> = vec![
        (
            "flip a byte",
            Box::new(move |r: &Path| {
                let p = r.join(key("000000020000000000000007"));
                let mut b = fs::read(&p).unwrap();
                let i = b.len() / 2;
                b[i] ^= 0x40;
                fs::write(&p, b).unwrap();
            }),
            "corrupt|checksum_mismatch",
            seg("000000020000000000000007"),
        ),
        (
            "truncate",
            Box::new(|r: &Path| {
                let p = r.join(key("000000010000000000000005"));
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
            "truncated",
            seg("000000010000000000000005"),
        ),
        (
            "delete a segment in the middle",
            Box::new(|r: &Path| {
                fs::remove_file(r.join(key("000000020000000000000007"))).unwrap();
            }),
            "missing_segments",
            "000000020000000000000007".into(),
        ),
        (
            "segment of another cluster",
            Box::new(move |r: &Path| {
                fs::copy(other.repo.join(key(foreign)), r.join(key(foreign))).unwrap();
            }),
            "wrong_cluster",
            seg(foreign),
        ),
        (
            "bad header (another segment's content under this name)",
            Box::new(|r: &Path| {
                fs::copy(
                    r.join(key("000000020000000000000007")),
                    r.join(key("000000020000000000000008")),
                )
                .unwrap();
            }),
            "bad_header",
            seg("000000020000000000000008"),
        ),
        (
            "stray temp file",
            Box::new(|r: &Path| {
                let p = r.join("tmp/000000010000000000000007.123.456.uxwal-tmp");
                fs::write(&p, b"x").unwrap();
                let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
                fs::File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }),
            "stray_temp_file",
            "tmp/000000010000000000000007.123.456.uxwal-tmp".into(),
        ),
        (
            "unknown file",
            Box::new(|r: &Path| {
                fs::write(r.join("wal/0000000100000000/notes.txt"), b"hello").unwrap();
            }),
            "unknown_file",
            "wal/0000000100000000/notes.txt".into(),
        ),
        (
            "missing history file",
            Box::new(|r: &Path| {
                fs::remove_file(r.join("history/00000002.history")).unwrap();
            }),
            "missing_history",
            "00000002.history".into(),
        ),
    ];
    for (what, damage, kinds, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        copy_dir(&base.repo, &repo);
        damage(&repo);
        let (ran, v) = verify(&repo, &["--json"]);
        let v = v.unwrap();
        check_schema(&schema(), &v, "$");
        assert_eq!(ran.code, 1, "{what}: {}\n{}", ran.stdout, ran.stderr);
        let found = problems(&v);
        let kinds: Vec<&str> = kinds.split('|').collect();
        assert!(
            found
                .iter()
                .any(|(k, f)| kinds.contains(&k.as_str()) && *f == named),
            "{what}: expected {kinds:?} naming {named}, got {found:?}"
        );
        // Nothing else is blamed: only the damaged file, or the backup whose
        // restore it breaks (which names the same segment).
        let base_name = named.rsplit('/').next().unwrap().to_string();
        for (k, f) in &found {
            assert!(
                *f == named
                    || (k == "not_restorable"
                        && v["problems"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["first"] == base_name.as_str()))
                    || k == "not_restorable" && what == "missing history file",
                "{what}: unexpected problem {k} {f}; all: {found:?}"
            );
        }
        // The human summary names it too.
        let (human, _) = verify(&repo, &[]);
        assert_eq!(human.code, 1);
        assert!(
            human.stdout.contains(&base_name),
            "{what}: {}",
            human.stdout
        );
    }
}

#[test]
fn partial_is_no_substitute_for_a_full_segment() {
    let site = two_timelines();
    // Timeline 1 goes on after its .partial (the old primary kept running)...
    let name = "000000010000000000000007";
    archive(&site, name, &segment(name, MIB, SYSID, 7));
    let (ran, _) = verify(&site.repo, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stdout);
    // ... so its full segment 6 is needed, and the .partial does not count.
    fs::remove_file(site.repo.join(key("000000010000000000000006"))).unwrap();
    let (ran, v) = verify(&site.repo, &["--json"]);
    assert_eq!(ran.code, 1);
    let found = problems(&v.unwrap());
    assert_eq!(
        found,
        vec![(
            "missing_segments".to_string(),
            "000000010000000000000006".to_string()
        )]
    );
}

#[test]
fn scope_options_and_quick_mode() {
    let site = two_timelines();
    let p = site.repo.join(key("000000020000000000000008"));
    let mut b = fs::read(&p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 1;
    fs::write(&p, b).unwrap();
    assert_eq!(verify(&site.repo, &["--timeline", "1"]).0.code, 0);
    assert_eq!(verify(&site.repo, &["--timeline", "2"]).0.code, 1);
    assert_eq!(
        verify(&site.repo, &["--to", "000000000000000000000007"])
            .0
            .code,
        0
    );
    assert_eq!(
        verify(&site.repo, &["--from", "000000020000000000000008"])
            .0
            .code,
        1
    );
    let (ran, v) = verify(&site.repo, &["--backup", "newest", "--json"]);
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    let v = v.unwrap();
    assert_eq!(v["backups"][0]["first_missing"], "000000020000000000000008");
    assert_eq!(verify(&site.repo, &["--backup", "nightly"]).0.code, 1);
    // --quick reads no segment: a flipped byte is not seen, a missing one is.
    assert_eq!(verify(&site.repo, &["--quick"]).0.code, 0);
    fs::remove_file(site.repo.join(key("000000010000000000000004"))).unwrap();
    let (ran, v) = verify(&site.repo, &["--quick", "--json"]);
    assert_eq!(ran.code, 1);
    assert!(problems(&v.unwrap()).contains(&(
        "missing_segments".to_string(),
        "000000010000000000000004".to_string()
    )));
}

#[test]
fn unreadable_repositories_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing: PathBuf = dir.path().join("nope");
    let (ran, _) = verify(&missing, &[]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    let (ran, _) = verify(dir.path(), &[]);
    assert_eq!(ran.code, 2, "an empty directory is not a repository");
    assert!(
        ran.stderr.contains("not a uxwal repository"),
        "{}",
        ran.stderr
    );
    let site = two_timelines();
    assert_eq!(verify(&site.repo, &["--from", "banana"]).0.code, 2);
    assert_eq!(verify(&site.repo, &["--backup", "no such label"]).0.code, 2);
    assert_eq!(verify(&site.repo, &["--timeline", "0"]).0.code, 2);
    assert_eq!(verify(&site.repo, &["--bogus"]).0.code, 2);
}
