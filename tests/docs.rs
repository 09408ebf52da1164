//! The operator documentation against the code: the README's configuration
//! reference and `man/uxwal.7` must name exactly the keys the configuration
//! file accepts, and uxwal.7 every exit code of every command. A key added to
//! `ConfigFile` without documentation, or documentation of a key that does
//! not exist, fails here.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::{self, Deserialize, Visitor};
use uxwal::config::ConfigFile;
use uxwal::exit;

/// A deserializer that answers only one question: which field names does the
/// struct ask for? serde passes them to `deserialize_struct`; taking them from
/// there keeps the list in one place (`ConfigFile` itself) and follows
/// renames and new fields without a hand-kept copy.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only struct field names are recorded"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend_from_slice(fields);
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Every key of the configuration file, from `ConfigFile`'s own serde definition.
fn config_keys() -> BTreeSet<String> {
    let mut fields = Vec::new();
    let _ = ConfigFile::deserialize(FieldNames(&mut fields));
    assert!(
        !fields.is_empty(),
        "ConfigFile did not reveal its fields; is it still a struct?"
    );
    fields.into_iter().map(str::to_owned).collect()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The text between two marker lines, which must each occur exactly once.
fn between<'a>(text: &'a str, begin: &str, end: &str, what: &str) -> &'a str {
    assert_eq!(
        text.matches(begin).count(),
        1,
        "{what}: one {begin:?} marker"
    );
    assert_eq!(text.matches(end).count(), 1, "{what}: one {end:?} marker");
    let start = text.find(begin).unwrap() + begin.len();
    let stop = text.find(end).unwrap();
    assert!(start < stop, "{what}: {begin:?} must come before {end:?}");
    &text[start..stop]
}

/// The keys of the README's configuration reference: the first column of each
/// table row between the markers, written `` `key` `` or `` `[table]` ``.
fn readme_keys(readme: &str) -> BTreeSet<String> {
    let table = between(
        readme,
        "<!-- config-keys:begin -->",
        "<!-- config-keys:end -->",
        "README.md",
    );
    let mut keys = BTreeSet::new();
    for line in table.lines().map(str::trim) {
        let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            continue;
        };
        let first = first.trim();
        if first.is_empty() || first.starts_with("---") || first == "key" {
            continue;
        }
        let key = first
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or_else(|| panic!("README.md: key column {first:?} is not `key`"));
        let key = key.trim_start_matches('[').trim_end_matches(']');
        assert!(keys.insert(key.to_owned()), "README.md lists {key} twice");
    }
    keys
}

/// The keys of uxwal.7's CONFIGURATION FILE section: each `.TP` entry's tag,
/// `.B key` or `.B [table]`.
fn man_keys(page: &str) -> BTreeSet<String> {
    let section = between(
        page,
        ".SH CONFIGURATION FILE\n",
        ".SH ENVIRONMENT\n",
        "uxwal.7",
    );
    let lines: Vec<&str> = section.lines().collect();
    let mut keys = BTreeSet::new();
    for pair in lines.windows(2) {
        if pair[0] == ".TP" {
            let tag = pair[1]
                .strip_prefix(".B ")
                .unwrap_or_else(|| panic!("uxwal.7: .TP tag {:?} is not .B key", pair[1]));
            let key = tag.trim_start_matches('[').trim_end_matches(']');
            assert!(keys.insert(key.to_owned()), "uxwal.7 lists {key} twice");
        }
    }
    keys
}

fn assert_same_keys(documented: &BTreeSet<String>, where_: &str) {
    let code = config_keys();
    let undocumented: Vec<_> = code.difference(documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{where_}: keys of ConfigFile not documented: {undocumented:?}; \
         documented keys ConfigFile does not have: {unknown:?}"
    );
}

#[test]
fn readme_reference_lists_exactly_the_config_keys() {
    assert_same_keys(&readme_keys(&read("README.md")), "README.md");
}

#[test]
fn man_page_lists_exactly_the_config_keys() {
    assert_same_keys(&man_keys(&read("man/uxwal.7")), "man/uxwal.7");
}

#[test]
fn example_config_mentions_every_scalar_key() {
    // packaging/uxwal.toml is installed as /etc/uxwal/uxwal.toml: every plain
    // key appears there (commented out); the store tables are described in
    // the README instead of being shown empty.
    let example = read("packaging/uxwal.toml");
    for key in config_keys() {
        if ["s3", "azure", "gcs"].contains(&key.as_str()) {
            assert!(
                example.contains(&format!("#[{key}]")),
                "packaging/uxwal.toml lacks #[{key}]"
            );
        } else {
            assert!(
                example.contains(&format!("#{key} = ")),
                "packaging/uxwal.toml lacks #{key} = ..."
            );
        }
    }
}

#[test]
fn the_key_check_can_fail() {
    let mut short = config_keys();
    short.remove("repo");
    let result = std::panic::catch_unwind(|| assert_same_keys(&short, "test"));
    assert!(result.is_err(), "a missing key must be reported");
    let mut long = config_keys();
    long.insert("repository".into());
    let result = std::panic::catch_unwind(|| assert_same_keys(&long, "test"));
    assert!(result.is_err(), "an unknown key must be reported");
}

#[test]
fn man_page_gives_every_exit_code_of_every_command() {
    let page = read("man/uxwal.7");
    let section = between(
        &page,
        ".SH EXIT STATUS\n",
        ".SH DATABASE CONFIGURATION\n",
        "uxwal.7",
    );
    let common = [exit::SUCCESS, exit::FAILURE, exit::USAGE];
    for (command, extra) in [
        ("uxwal\\-archive", None),
        ("uxwal\\-restore", Some(exit::ABORT_RECOVERY)),
        ("uxwal\\-cleanup", None),
        ("uxwal\\-verify", None),
        ("uxwal\\-sync", None),
    ] {
        let start = section
            .find(&format!(".SS {command}\n"))
            .unwrap_or_else(|| panic!("uxwal.7 EXIT STATUS lacks .SS {command}"));
        let rest = &section[start + 4..];
        let subsection = &rest[..rest.find(".SS ").unwrap_or(rest.len())];
        let codes: Vec<u8> = subsection
            .lines()
            .filter_map(|l| l.strip_prefix(".B "))
            .map(|c| c.parse().expect("exit code"))
            .collect();
        let expected: Vec<u8> = common.iter().copied().chain(extra).collect();
        assert_eq!(codes, expected, "uxwal.7 exit codes of {command}");
    }
}

#[test]
fn man_page_and_readme_name_the_format_version_and_release() {
    let page = read("man/uxwal.7");
    let format = uxwal::repo::FORMAT_VERSION;
    assert!(
        page.contains(&format!("format version {format}")),
        "uxwal.7 must name format version {format}"
    );
    assert!(
        page.contains(&format!("\"uxwal {}\"", env!("CARGO_PKG_VERSION"))),
        "uxwal.7's .TH line must name release {}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        read("README.md").contains(&format!("format version {format}")),
        "README.md must name format version {format}"
    );
}

#[test]
fn readme_documents_every_environment_variable() {
    let readme = read("README.md");
    for var in [
        "UXWAL_REPO",
        "UXWAL_CONFIG",
        uxwal::commands::restore::LINGER_ENV,
        "AWS_",
        "AZURE_",
        "GOOGLE_",
    ] {
        assert!(readme.contains(var), "README.md does not mention {var}");
    }
}
