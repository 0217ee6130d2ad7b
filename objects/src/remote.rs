//! Reading recordings from a bucket: `recorder list s3://bucket/prefix`, the other
//! commands on `s3://bucket/prefix/ID`, and `recorder audit verify s3://…`. A segment is
//! read through [`RangeReader`] with range requests that start at 64 KiB (enough for a
//! segment's first frame or seal header) and double up to 4 MiB, so nothing is downloaded
//! whole and nothing is written to the local disk.

use std::{
    collections::HashMap,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use object_store::{path::Path as Key, ObjectStore, ObjectStoreExt};
use recorder_store::{reader::SegmentSource, segment};

use crate::{connect::Settings, describe};

/// The first range request of a reader...
const FIRST_FETCH: u64 = 64 * 1024;
/// ...and each next one twice the last, up to this. (Starting small after a seek was
/// measured and dropped: listing a sealed 20 MiB segment without its key fetched 2.6 MB
/// instead of 21 MB, but in 41 requests instead of 6, and took 0.44 s instead of 0.15 s on
/// loopback; request latency is what a remote bucket costs most.)
const MAX_FETCH: u64 = 4 * 1024 * 1024;

/// `s3://bucket/key…`, as the reader's commands take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub bucket: String,
    /// The key or key prefix after the bucket, without a leading `/`.
    pub key: String,
}

impl Address {
    /// Whether an argument names a bucket rather than a local file, directory or id.
    pub fn is_remote(text: &str) -> bool {
        text.starts_with("s3://")
    }

    pub fn parse(text: &str) -> Result<Address, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{text}` is not an s3:// address"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "`{text}` names no bucket: write s3://BUCKET/PREFIX"
            ));
        }
        Ok(Address {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn to_path(&self) -> PathBuf {
        PathBuf::from(format!("s3://{}/{}", self.bucket, self.key))
    }
}

/// `--endpoint`, set once by the reader before any bucket is used.
static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();

/// Overrides the endpoint the environment names (`recorder --endpoint URL`).
pub fn set_endpoint(endpoint: Option<String>) {
    let _ = ENDPOINT.set(endpoint);
}

/// One bucket, connected, with the sizes of the objects listed so far.
pub struct Remote {
    runtime: Arc<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    sizes: Mutex<HashMap<String, u64>>,
}

impl Remote {
    /// The bucket's connection, made once per process.
    pub fn for_bucket(bucket: &str) -> Result<Arc<Remote>, String> {
        static REMOTES: OnceLock<Mutex<HashMap<String, Arc<Remote>>>> = OnceLock::new();
        let mut remotes = REMOTES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(remote) = remotes.get(bucket) {
            return Ok(remote.clone());
        }
        let mut settings = Settings::from_environment(None);
        if let Some(Some(endpoint)) = ENDPOINT.get() {
            settings.endpoint = Some(endpoint.clone());
        }
        let store = settings.connect(bucket).map_err(|e| e.to_string())?;
        let remote = Arc::new(Remote::new(bucket, store)?);
        remotes.insert(bucket.to_owned(), remote.clone());
        Ok(remote)
    }

    /// `bucket` through `store`, with a runtime of its own for the blocking reader.
    pub fn new(bucket: &str, store: Arc<dyn ObjectStore>) -> Result<Remote, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the S3 client: {error}"))?;
        Ok(Remote {
            runtime: Arc::new(runtime),
            store,
            bucket: bucket.to_owned(),
            sizes: Mutex::default(),
        })
    }

    /// Every object whose key starts with `prefix`, as (key, size), in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, String> {
        use futures::TryStreamExt;
        // object_store lists by whole path segments; a prefix that ends inside one (an id's
        // first digits) is listed from its folder and filtered here.
        let folder = match prefix.rfind('/') {
            Some(slash) => &prefix[..slash],
            None => "",
        };
        let listed: Vec<_> = self
            .runtime
            .block_on(
                self.store
                    .list(Some(&Key::from(folder)))
                    .try_collect::<Vec<_>>(),
            )
            .map_err(|error| self.failure("list", prefix, &error))?;
        let mut objects: Vec<(String, u64)> = listed
            .into_iter()
            .map(|meta| (meta.location.to_string(), meta.size))
            .filter(|(key, _)| key.starts_with(prefix))
            .collect();
        objects.sort();
        let mut sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        sizes.extend(objects.iter().cloned());
        Ok(objects)
    }

    /// The segments (`.rcd` objects) under `prefix`, as `s3://` paths in key order.
    pub fn segments(&self, prefix: &str) -> Result<Vec<PathBuf>, String> {
        let suffix = format!(".{}", segment::EXTENSION);
        Ok(self
            .list(prefix)?
            .into_iter()
            .filter(|(key, _)| key.ends_with(&suffix))
            .map(|(key, _)| {
                Address {
                    bucket: self.bucket.clone(),
                    key,
                }
                .to_path()
            })
            .collect())
    }

    /// A whole (small) object: a piece of the audit log.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let store = self.store.clone();
        let path = Key::from(key);
        self.runtime
            .block_on(async move { store.get(&path).await?.bytes().await })
            .map(|bytes| bytes.to_vec())
            .map_err(|error| self.failure("read", key, &error))
    }

    /// The object at `key`, read by ranges.
    pub fn reader(self: &Arc<Self>, key: &str) -> io::Result<RangeReader> {
        let known = self
            .sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied();
        let size = match known {
            Some(size) => size,
            None => {
                let path = Key::from(key);
                self.runtime
                    .block_on(self.store.head(&path))
                    .map_err(|error| io::Error::other(self.failure("read", key, &error)))?
                    .size
            }
        };
        Ok(RangeReader {
            remote: self.clone(),
            key: Key::from(key),
            size,
            position: 0,
            chunk: Chunk::default(),
            next_fetch: FIRST_FETCH,
            fetched: 0,
        })
    }

    fn failure(&self, what: &str, key: &str, error: &object_store::Error) -> String {
        format!(
            "cannot {what} s3://{}/{key}: {}",
            self.bucket,
            describe(error)
        )
    }
}

/// Opens the segment an `s3://` path names (catalog's `Opener` for remote recordings).
pub fn open(path: &Path) -> io::Result<Box<dyn SegmentSource>> {
    let text = path.to_string_lossy();
    let address = Address::parse(&text).map_err(io::Error::other)?;
    let remote = Remote::for_bucket(&address.bucket).map_err(io::Error::other)?;
    Ok(Box::new(remote.reader(&address.key)?))
}

/// The bytes of the last range fetched.
#[derive(Default)]
struct Chunk {
    start: u64,
    bytes: Vec<u8>,
}

impl Chunk {
    /// The fetched bytes from `position` on, if `position` is inside them.
    fn at(&self, position: u64) -> Option<&[u8]> {
        let offset = usize::try_from(position.checked_sub(self.start)?).ok()?;
        (offset < self.bytes.len()).then(|| &self.bytes[offset..])
    }
}

/// An object read a chunk at a time with range requests; seeking is free until the next
/// read outside the chunk held.
pub struct RangeReader {
    remote: Arc<Remote>,
    key: Key,
    size: u64,
    position: u64,
    chunk: Chunk,
    /// How much the next range request asks for.
    next_fetch: u64,
    /// Bytes fetched so far.
    fetched: u64,
}

impl RangeReader {
    /// Bytes fetched from the bucket so far.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }
}

impl Drop for RangeReader {
    fn drop(&mut self) {
        tracing::debug!(key = %self.key, size = self.size, fetched = self.fetched, "object read");
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if self.chunk.at(self.position).is_none() {
            let end = self.size.min(self.position + self.next_fetch);
            self.next_fetch = (self.next_fetch * 2).min(MAX_FETCH);
            let remote = &self.remote;
            let bytes = remote
                .runtime
                .block_on(remote.store.get_range(&self.key, self.position..end))
                .map_err(|error| {
                    io::Error::other(remote.failure("read", self.key.as_ref(), &error))
                })?;
            if bytes.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "s3://{}/{} ended before its listed size",
                        remote.bucket, self.key
                    ),
                ));
            }
            self.fetched += bytes.len() as u64;
            self.chunk = Chunk {
                start: self.position,
                bytes: bytes.to_vec(),
            };
        }
        let available = self.chunk.at(self.position).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the object's start",
            )
        })?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse("s3://fleet/stage-1/2026-12-04/3f2a").unwrap(),
            Address {
                bucket: "fleet".to_owned(),
                key: "stage-1/2026-12-04/3f2a".to_owned()
            }
        );
        assert_eq!(Address::parse("s3://fleet").unwrap().key, "");
        assert!(Address::parse("s3:///x")
            .unwrap_err()
            .contains("names no bucket"));
        assert!(Address::is_remote("s3://fleet/x") && !Address::is_remote("/var/lib/x"));
    }

    /// An object of `len` bytes (each byte its offset mod 251) in an in-memory store.
    fn object(len: usize) -> (Arc<Remote>, Vec<u8>) {
        use object_store::memory::InMemory;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let store = Arc::new(InMemory::new());
        let remote = Arc::new(Remote::new("test", store.clone()).unwrap());
        let key = Key::from("k");
        remote
            .runtime
            .block_on(store.put(&key, bytes.clone().into()))
            .unwrap();
        (remote, bytes)
    }

    #[test]
    fn reads_and_seeks_give_the_objects_bytes_in_growing_requests() {
        let (remote, bytes) = object(9 << 20);
        let mut reader = remote.reader("k").unwrap();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert!(all == bytes, "the bytes read in order are the object's");
        // Each byte once: 64 KiB, 128 KiB, … 4 MiB, then 4 MiB at a time.
        assert_eq!(reader.fetched(), 9 << 20);

        // A walk of 4-byte headers 1 MiB apart, then the end.
        let mut walker = remote.reader("k").unwrap();
        for block in 0..8u64 {
            walker.seek(SeekFrom::Start(block << 20)).unwrap();
            let mut header = [0u8; 4];
            walker.read_exact(&mut header).unwrap();
            let at = (block << 20) as usize;
            assert_eq!(header, bytes[at..at + 4]);
        }
        assert!(walker.fetched() <= bytes.len() as u64);
        walker.seek(SeekFrom::End(-2)).unwrap();
        let mut tail = Vec::new();
        walker.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, bytes[bytes.len() - 2..]);
    }

    #[test]
    fn a_chunk_serves_only_positions_inside_it() {
        let chunk = Chunk {
            start: 10,
            bytes: vec![1, 2, 3],
        };
        assert_eq!(chunk.at(9), None);
        assert_eq!(chunk.at(10), Some(&[1, 2, 3][..]));
        assert_eq!(chunk.at(12), Some(&[3][..]));
        assert_eq!(chunk.at(13), None);
    }
}
