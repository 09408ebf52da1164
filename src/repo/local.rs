//! A repository in a local (or NFS-mounted) directory.
//!
//! All writes go through [`crate::durable`]: staging files in `<root>/tmp/`,
//! published with a no-replace link and fsynced with their directory.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::{Backend, Object, PutOutcome, Staged};
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

    fn make_durable(&self, key: &str) -> io::Result<()> {
        let path = self.root.join(key);
        File::open(&path)?.sync_all()?;
        durable::sync_dir(path.parent().unwrap_or(&self.root))
    }
}
