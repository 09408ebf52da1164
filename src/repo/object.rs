//! A repository in any `object_store` store (S3, Azure, GCS; in-memory in tests).
//!
//! The commands are short-lived processes, so the async store is driven by a
//! current-thread tokio runtime that lives here and nowhere else. Every storage
//! operation runs under the command's overall deadline. Every object is sent as
//! one `PutMode::Create` request: multipart uploads complete with an overwrite,
//! so they are never used for archive objects. A get sends the request and
//! leaves the body unread until the caller reads it, so the stored-object reader
//! can refuse an object from its length first.

use std::collections::HashSet;
use std::future::Future;
use std::io::{self, Cursor};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use tokio::runtime::Runtime;

use super::{Backend, Listed, Object, PutOutcome, Staged};

pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
    /// [`WHOLE_BODY_MAX`], smaller in tests.
    whole_body_max: u64,
}

struct Shared {
    runtime: Runtime,
    location: String,
    prefix: String,
    /// The whole command's storage work ends by then (`StoreOptions::deadline`);
    /// a worker starts it again for each of its independent fetches.
    deadline: std::sync::Mutex<Instant>,
    budget: Duration,
}

impl Shared {
    /// Runs one storage operation within the command's deadline. The outer error
    /// is the deadline passing; the inner result is the store's own answer.
    fn block<T>(
        &self,
        op: impl Future<Output = object_store::Result<T>>,
    ) -> io::Result<object_store::Result<T>> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let left = deadline.saturating_duration_since(Instant::now());
        self.runtime
            .block_on(async { tokio::time::timeout(left, op).await })
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer within the deadline of {} s",
                        self.budget.as_secs()
                    ),
                )
            })
    }
}

impl ObjectStoreBackend {
    /// `location` is what messages show (never with credentials); `prefix` is the
    /// key prefix inside the store; `deadline` bounds all the work of this command.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        location: &str,
        prefix: &str,
        deadline: Duration,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Shared {
            runtime,
            location: location.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            deadline: std::sync::Mutex::new(Instant::now() + deadline),
            budget: deadline,
        };
        Ok(ObjectStoreBackend {
            store,
            shared: Arc::new(shared),
            whole_body_max: WHOLE_BODY_MAX,
        })
    }

    fn path(&self, key: &str) -> Path {
        Path::from(if self.shared.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.shared.prefix)
        })
    }
}

/// Maps a store error to I/O, keeping what the caller must distinguish.
fn to_io(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// The same failure for each of `n` requests sent together.
fn each_failed<T>(n: usize, e: &io::Error) -> Vec<io::Result<T>> {
    (0..n)
        .map(|_| Err(io::Error::new(e.kind(), e.to_string())))
        .collect()
}

/// Bodies up to this size are downloaded whole when first read or sought (a
/// 16 MiB segment with its trailer: one request). A larger body is streamed
/// in ranges as it is consumed, so a reader holds one chunk of it at a time
/// whatever the segment size.
const WHOLE_BODY_MAX: u64 = 64 << 20;

/// The body of a fetched object, read (within the deadline) only when it is
/// first read or sought: a reader that refuses an object from its announced
/// length ([`Object::len`]) never downloads it, so an implausibly large object
/// costs neither the transfer nor the memory.
struct Body {
    shared: Arc<Shared>,
    pending: Option<object_store::GetResult>,
    bytes: Cursor<bytes::Bytes>,
    /// Set for a body over [`WHOLE_BODY_MAX`]: read in ranges instead.
    ranged: Option<Ranged>,
}

/// A large body, read as a stream from wherever the reader is: a seek
/// elsewhere starts a new range request. Every range is asked of the same
/// version of the object (`If-Match` its entity tag, when the store gives one).
struct Ranged {
    store: Arc<dyn ObjectStore>,
    path: Path,
    len: u64,
    e_tag: Option<String>,
    /// Where the next read starts.
    pos: u64,
    /// The open range, and the offset of its next byte.
    stream: Option<(BoxStream<'static, object_store::Result<bytes::Bytes>>, u64)>,
    /// The stream's last chunk, ending at the stream's offset: kept whole, so
    /// that a reader going back within it (the stored-object reader looks at
    /// an object's first bytes twice) needs no new request.
    chunk: bytes::Bytes,
}

impl Ranged {
    /// Whether the open stream can serve `pos`: from its last chunk, or as its
    /// next byte.
    fn serves(&self, pos: u64) -> bool {
        self.stream.as_ref().is_some_and(|(_, next)| {
            next.checked_sub(self.chunk.len() as u64)
                .is_some_and(|start| start <= pos && pos <= *next)
        })
    }

    fn read(
        &mut self,
        shared: &Shared,
        pending: &mut Option<object_store::GetResult>,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if !self.serves(self.pos) {
            self.chunk = bytes::Bytes::new();
            let stream = match pending.take() {
                // The first response streams from the start.
                Some(first) if self.pos == 0 => first.into_stream(),
                _ => {
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(self.pos..self.len)),
                        if_match: self.e_tag.clone(),
                        ..GetOptions::default()
                    };
                    shared
                        .block(self.store.get_opts(&self.path, options))?
                        .map_err(to_io)?
                        .into_stream()
                }
            };
            self.stream = Some((stream, self.pos));
        }
        loop {
            let Some((stream, next)) = self.stream.as_mut() else {
                return Ok(0);
            };
            if self.pos < *next {
                break;
            }
            match shared.block(stream.try_next())?.map_err(to_io)? {
                Some(chunk) if *next + chunk.len() as u64 <= self.len => {
                    *next += chunk.len() as u64;
                    self.chunk = chunk;
                }
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("body is longer than the {} bytes announced", self.len),
                    ))
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body ends at {next} bytes, {} announced", self.len),
                    ))
                }
            }
        }
        let start = self.stream.as_ref().map_or(self.pos, |(_, next)| {
            next.saturating_sub(self.chunk.len() as u64)
        });
        let from = self
            .pos
            .checked_sub(start)
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| io::Error::other("ranged read lost its place"))?;
        let rest = self.chunk.get(from..).unwrap_or_default();
        let n = buf.len().min(rest.len());
        buf.iter_mut()
            .zip(rest.iter())
            .for_each(|(out, b)| *out = *b);
        self.pos += n as u64;
        Ok(n)
    }

    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let target = match pos {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

impl Body {
    fn load(&mut self) -> io::Result<()> {
        if let Some(result) = self.pending.take() {
            let announced = result.meta.size;
            let bytes = self.shared.block(result.bytes())?.map_err(to_io)?;
            if bytes.len() as u64 != announced {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body is {} bytes, {announced} announced", bytes.len()),
                ));
            }
            self.bytes = Cursor::new(bytes);
        }
        Ok(())
    }
}

impl io::Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(ranged) = self.ranged.as_mut() {
            return ranged.read(&self.shared, &mut self.pending, buf);
        }
        self.load()?;
        self.bytes.read(buf)
    }
}

impl io::Seek for Body {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        if let Some(ranged) = self.ranged.as_mut() {
            return ranged.seek(pos);
        }
        self.load()?;
        self.bytes.seek(pos)
    }
}

struct ObjectStaged {
    store: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
    path: Path,
    body: Vec<u8>,
}

impl io::Write for ObjectStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staged for ObjectStaged {
    fn publish(self: Box<Self>) -> io::Result<PutOutcome> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload = PutPayload::from(self.body);
        match self
            .shared
            .block(self.store.put_opts(&self.path, payload, opts))?
        {
            Ok(_) => Ok(PutOutcome::Created),
            // Also what a retried create whose first attempt landed returns: the
            // caller compares content, so that case is a success there.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(to_io(e)),
        }
    }
}

impl Backend for ObjectStoreBackend {
    fn describe(&self) -> String {
        self.shared.location.clone()
    }

    fn restart_deadline(&self) {
        *self
            .shared
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now() + self.shared.budget;
    }

    fn stage(&self, key: &str) -> io::Result<Box<dyn Staged>> {
        Ok(Box::new(ObjectStaged {
            store: self.store.clone(),
            shared: self.shared.clone(),
            path: self.path(key),
            body: Vec::new(),
        }))
    }

    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        let path = self.path(key);
        // The request only: the body is downloaded when first read (see [`Body`]).
        match self.shared.block(self.store.get(&path))? {
            Ok(result) => {
                let len = result.meta.size;
                let ranged = (len > self.whole_body_max).then(|| Ranged {
                    store: self.store.clone(),
                    path: path.clone(),
                    len,
                    e_tag: result.meta.e_tag.clone(),
                    pos: 0,
                    stream: None,
                    chunk: bytes::Bytes::new(),
                });
                Ok(Some(Object {
                    len,
                    reader: Box::new(Body {
                        shared: self.shared.clone(),
                        pending: Some(result),
                        bytes: Cursor::new(bytes::Bytes::new()),
                        ranged,
                    }),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    fn stat(&self, key: &str) -> io::Result<Option<u64>> {
        let path = self.path(key);
        match self.shared.block(self.store.head(&path))? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    fn read_small(&self, keys: &[&str], max: u64) -> Vec<io::Result<Option<super::Small>>> {
        let read = |key: &str| {
            let path = self.path(key);
            async move {
                let result = match self.store.get(&path).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let len = result.meta.size;
                // Refused from its announced length, before its body is read.
                if len > max {
                    return Ok(Some((len, Vec::new())));
                }
                Ok(Some((len, result.bytes().await?.to_vec())))
            }
        };
        let all = futures::future::join_all(keys.iter().map(|key| read(key)));
        let results = match self
            .shared
            .block(async { Ok::<_, object_store::Error>(all.await) })
        {
            Ok(Ok(results)) => results,
            Ok(Err(e)) => return each_failed(keys.len(), &to_io(e)),
            Err(deadline) => return each_failed(keys.len(), &deadline),
        };
        results.into_iter().map(|r| r.map_err(to_io)).collect()
    }

    fn make_durable(&self, _key: &str) -> io::Result<()> {
        // An acknowledged put on an object store is durable.
        Ok(())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        let root =
            (!self.shared.prefix.is_empty()).then(|| Path::from(self.shared.prefix.as_str()));
        let strip = if self.shared.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.shared.prefix)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .shared
            .block(self.store.list(root.as_ref()).try_collect())?
            .map_err(to_io)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&strip)?.to_owned();
                key.starts_with(prefix).then(|| Listed {
                    key,
                    size: m.size,
                    modified: Some(std::time::SystemTime::from(m.last_modified)),
                })
            })
            .collect())
    }

    fn delete(&self, keys: &[String]) -> Vec<io::Result<()>> {
        // The store's bulk delete where it has one (S3 DeleteObjects), in batches.
        let paths: Vec<object_store::Result<Path>> =
            keys.iter().map(|k| Ok(self.path(k))).collect();
        let stream = self
            .store
            .delete_stream(futures::stream::iter(paths).boxed());
        let outcomes = match self
            .shared
            .block(async { Ok(stream.collect::<Vec<_>>().await) })
        {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(e)) => vec![Err(e)],
            Err(deadline) => return each_failed(keys.len(), &deadline),
        };
        let mut deleted = HashSet::new();
        let mut errors = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(p) => {
                    deleted.insert(p);
                }
                // Already gone (Azure answers 404 for that): what deleting wanted.
                Err(object_store::Error::NotFound { path, .. }) => {
                    deleted.insert(Path::from(path));
                }
                Err(e) => errors.push(e),
            }
        }
        let mut errors = errors.into_iter();
        keys.iter()
            .map(|k| {
                if deleted.contains(&self.path(k)) {
                    Ok(())
                } else {
                    Err(errors
                        .next()
                        .map(to_io)
                        .unwrap_or_else(|| io::Error::other("not deleted")))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::{Read, Seek, SeekFrom};
    use object_store::memory::InMemory;

    /// A backend over an in-memory store whose bodies over `whole` bytes are ranged.
    fn backend(whole: u64) -> (ObjectStoreBackend, Arc<InMemory>) {
        let store = Arc::new(InMemory::new());
        let mut backend =
            ObjectStoreBackend::new(store.clone(), "memory://", "p", Duration::from_secs(60))
                .unwrap();
        backend.whole_body_max = whole;
        (backend, store)
    }

    fn put(backend: &ObjectStoreBackend, store: &InMemory, key: &str, bytes: Vec<u8>) {
        backend
            .shared
            .block(store.put(&backend.path(key), PutPayload::from(bytes)))
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_large_body_reads_the_same_in_ranges_as_a_small_one_whole() {
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for whole in [u64::MAX, 1024] {
            let (backend, store) = backend(whole);
            put(&backend, &store, "k", content.clone());
            let mut body = backend.get("k").unwrap().unwrap().reader;
            // The stored-object reader's pattern: the magic, the trailer, then all.
            let mut magic = [0u8; 4];
            body.read_exact(&mut magic).unwrap();
            assert_eq!(magic, content[..4]);
            body.seek(SeekFrom::End(-124)).unwrap();
            let mut tail = Vec::new();
            body.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, content[content.len() - 124..]);
            body.seek(SeekFrom::Start(0)).unwrap();
            let mut all = Vec::new();
            body.read_to_end(&mut all).unwrap();
            assert!(all == content, "whole body max {whole}");
            body.seek(SeekFrom::Start(1_000_000)).unwrap();
            let mut some = vec![0u8; 10];
            body.read_exact(&mut some).unwrap();
            assert_eq!(some, content[1_000_000..1_000_010]);
        }
    }

    #[test]
    fn a_large_object_replaced_while_read_in_ranges_fails() {
        let (backend, store) = backend(1024);
        put(&backend, &store, "k", vec![1u8; 100_000]);
        let mut body = backend.get("k").unwrap().unwrap().reader;
        put(&backend, &store, "k", vec![2u8; 100_000]);
        // The tail is a new range: asked of the first version, which is gone.
        body.seek(SeekFrom::End(-10)).unwrap();
        let mut tail = Vec::new();
        assert!(body.read_to_end(&mut tail).is_err(), "read {tail:?}");
    }
}
