//! A repository in a local (or NFS-mounted) directory.
//!
//! All writes go through the private `durable` module: staging files in `<root>/tmp/`,
//! published with a no-replace link and fsynced with their directory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{Backend, Listed, Object, PutOutcome, Staged};
use crate::durable::{self, Publish, StagedFile};

pub struct LocalDirectory {
    root: PathBuf,
}

impl LocalDirectory {
    pub fn new(root: PathBuf) -> Self {
        LocalDirectory { root }
    }
}

struct LocalStaged {
    file: StagedFile,
    target: PathBuf,
}

impl io::Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Staged for LocalStaged {
    fn publish(self: Box<Self>) -> io::Result<PutOutcome> {
        Ok(match self.file.publish_no_replace(&self.target)? {
            Publish::Created => PutOutcome::Created,
            Publish::AlreadyExists => PutOutcome::AlreadyExists,
        })
    }
}

impl Backend for LocalDirectory {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn create_refusal_is_local(&self) -> bool {
        true
    }

    fn stage(&self, key: &str) -> io::Result<Box<dyn Staged>> {
        let target = self.root.join(key);
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object")
            .to_owned();
        let file = StagedFile::create(&self.root.join("tmp"), &name)?;
        Ok(Box::new(LocalStaged { file, target }))
    }

    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        match File::open(self.root.join(key)) {
            Ok(f) => {
                let meta = f.metadata()?;
                if !meta.is_file() {
                    return Err(io::Error::other("not a regular file"));
                }
                Ok(Some(Object {
                    len: meta.len(),
                    reader: Box::new(f),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn stat(&self, key: &str) -> io::Result<Option<u64>> {
        match fs::metadata(self.root.join(key)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(io::Error::other("not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn make_durable(&self, key: &str) -> io::Result<()> {
        let path = self.root.join(key);
        File::open(&path)?.sync_all()?;
        durable::sync_dir(path.parent().unwrap_or(&self.root))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        fs::metadata(&self.root)?;
        let mut out = Vec::new();
        walk(&self.root, "", &mut |key, meta| {
            if key.starts_with(prefix) {
                out.push(Listed {
                    key,
                    size: meta.len(),
                    modified: meta.modified().ok(),
                });
            }
        })?;
        Ok(out)
    }

    fn delete(&self, keys: &[String]) -> Vec<io::Result<()>> {
        let mut dirs = BTreeSet::new();
        let mut results: Vec<io::Result<()>> = keys
            .iter()
            .map(|key| {
                let path = self.root.join(key);
                match fs::remove_file(&path) {
                    Ok(()) => {
                        dirs.insert(path.parent().unwrap_or(&self.root).to_path_buf());
                        Ok(())
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .collect();
        // Make the removals durable once per directory, not once per file.
        for dir in dirs {
            if let Err(e) = durable::sync_dir(&dir) {
                let kind = e.kind();
                for (key, r) in keys.iter().zip(results.iter_mut()) {
                    if r.is_ok() && self.root.join(key).parent() == Some(dir.as_path()) {
                        *r = Err(io::Error::new(
                            kind,
                            format!("removed, but syncing {} failed: {e}", dir.display()),
                        ));
                    }
                }
            }
        }
        results
    }
}

/// Calls `f` with the `/`-separated key and metadata of every file below `dir`.
fn walk(dir: &Path, prefix: &str, f: &mut dyn FnMut(String, fs::Metadata)) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = format!("{prefix}{name}");
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), &format!("{key}/"), f)?;
        } else {
            f(key, meta);
        }
    }
    Ok(())
}
