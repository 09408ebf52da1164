//! The one SHA-256 pump: reads a source in chunks, hands each chunk to the
//! caller and, at the same time, to a second thread that hashes it. On two cores
//! SHA-256 then costs no wall time next to compressing, decompressing or
//! writing. Archive (hash while compressing), the stored-object reader (hash
//! while decoding) and push-ahead's confirmation (hash a local file) all use it,
//! so "the SHA-256 of these bytes" is computed one way everywhere.

use std::io::{self, Read};
use std::sync::{mpsc, Arc};

use sha2::{Digest, Sha256};

/// Bytes read, hashed and handed on at a time.
pub const CHUNK: usize = 1 << 20;

/// Which side of a [`hash_alongside`] pass failed.
#[derive(Debug)]
pub enum PumpError<E> {
    /// Reading the source (or the hashing thread stopping).
    Read(io::Error),
    /// The consumer, with its own error.
    Consume(E),
}

/// Reads `source` to the end, starting with the `first` bytes the caller has
/// already read from it, handing each chunk to `consume` while a second thread
/// hashes it. Returns the SHA-256 and the number of bytes read (`first` included).
pub fn hash_alongside<E>(
    source: &mut dyn Read,
    first: Vec<u8>,
    consume: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<([u8; 32], u64), PumpError<E>> {
    std::thread::scope(|scope| {
        let (to_hasher, chunks) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
        let (give_back, returned) = mpsc::channel::<Arc<Vec<u8>>>();
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn_scoped(scope, move || {
                let mut h = Sha256::new();
                for chunk in chunks {
                    h.update(chunk.as_slice());
                    // The reader may reuse the buffer once it has dropped its own handle too.
                    let _ = give_back.send(chunk);
                }
                <[u8; 32]>::from(h.finalize())
            });
        // No thread to be had (a process limit): the same pass on this thread,
        // slower but with the same result.
        let hasher = match spawned {
            Ok(hasher) => hasher,
            Err(e) => {
                tracing::debug!("hashing on the calling thread: cannot start one ({e})");
                return hash_inline(source, first, consume);
            }
        };
        let mut total = 0u64;
        let mut pending = (!first.is_empty()).then_some(first);
        let outcome = loop {
            let chunk = match pending.take() {
                Some(first) => first,
                None => {
                    // Reuse a buffer the hasher is done with, else take a new one.
                    let mut next = returned
                        .try_iter()
                        .find_map(|c| Arc::try_unwrap(c).ok())
                        .unwrap_or_default();
                    next.resize(CHUNK, 0);
                    match read_full(source, &mut next) {
                        Ok(n) => next.truncate(n),
                        Err(e) => break Err(PumpError::Read(e)),
                    }
                    next
                }
            };
            if chunk.is_empty() {
                break Ok(());
            }
            total += chunk.len() as u64;
            let chunk = Arc::new(chunk);
            if to_hasher.send(chunk.clone()).is_err() {
                break Err(PumpError::Read(io::Error::other("hashing thread stopped")));
            }
            if let Err(e) = consume(&chunk) {
                break Err(PumpError::Consume(e));
            }
        };
        drop(to_hasher);
        let sha = hasher
            .join()
            .map_err(|_| PumpError::Read(io::Error::other("hashing thread failed")))?;
        outcome.map(|()| (sha, total))
    })
}

/// [`hash_alongside`] on the calling thread alone.
fn hash_inline<E>(
    source: &mut dyn Read,
    first: Vec<u8>,
    consume: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<([u8; 32], u64), PumpError<E>> {
    let mut h = Sha256::new();
    let mut total = first.len() as u64;
    if !first.is_empty() {
        h.update(&first);
        consume(&first).map_err(PumpError::Consume)?;
    }
    let mut block = vec![0u8; CHUNK];
    loop {
        let n = read_full(source, &mut block).map_err(PumpError::Read)?;
        let Some(chunk) = block.get(..n).filter(|c| !c.is_empty()) else {
            return Ok((h.finalize().into(), total));
        };
        h.update(chunk);
        consume(chunk).map_err(PumpError::Consume)?;
        total += n as u64;
    }
}

/// The SHA-256 and length of everything `source` yields.
pub fn hash_reader(source: &mut dyn Read) -> io::Result<([u8; 32], u64)> {
    hash_alongside::<std::convert::Infallible>(source, Vec::new(), &mut |_| Ok(())).map_err(|e| {
        match e {
            PumpError::Read(e) => e,
            PumpError::Consume(never) => match never {},
        }
    })
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Both passes (two threads, and the calling thread alone when no
        /// thread can be had) give the same answer.
        #[test]
        fn hashes_and_hands_on_every_byte_once(data in proptest::collection::vec(any::<u8>(), 0..3 * CHUNK), head in any::<prop::sample::Index>(), inline in any::<bool>()) {
            let split = head.index(data.len() + 1);
            let mut rest = &data[split..];
            let mut seen = Vec::new();
            let pass = if inline { hash_inline::<()> } else { hash_alongside::<()> };
            let (sha, n) = pass(&mut rest, data[..split].to_vec(), &mut |c| {
                seen.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
            prop_assert_eq!(n, data.len() as u64);
            prop_assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
            prop_assert_eq!(seen, data);
        }
    }

    #[test]
    fn the_consumer_and_the_source_fail_apart() {
        let data = vec![7u8; 3 * CHUNK];
        let mut calls = 0;
        let r = hash_alongside(&mut data.as_slice(), Vec::new(), &mut |_| {
            calls += 1;
            if calls == 2 {
                Err("full")
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(PumpError::Consume("full"))));
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("EIO"))
            }
        }
        let r = hash_alongside::<()>(&mut Broken, Vec::new(), &mut |_| Ok(()));
        assert!(matches!(r, Err(PumpError::Read(_))));
        assert_eq!(hash_reader(&mut &b""[..]).unwrap().1, 0);
    }
}
