//! Moving one segment: into the bucket (one PUT, or parts), and checking what the bucket
//! holds against the local file.

use std::path::Path;

use object_store::{
    path::Path as Key, Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, TagSet,
};
use sha2::{Digest, Sha256};

use crate::{describe, queue::Entry};

/// The object metadata key holding the segment's SHA-256.
const SHA256_METADATA: &str = "sha256";

/// The tag every object recorderd writes carries: `recorderd=segment` or `recorderd=audit`,
/// for lifecycle rules that keep the two for different times (docs/OPERATIONS.md, "Fleet").
pub const KIND_TAG: &str = "recorderd";

/// The tag set naming what an object holds.
pub fn kind_tags(kind: &str) -> TagSet {
    let mut tags = TagSet::default();
    tags.push(KIND_TAG, kind);
    tags
}

/// Uploads the segment file at `path` to `entry.key`: one PUT up to `part_size`, parts of
/// `part_size` above it (`progress` hears each part sent). A failed multipart upload is
/// aborted. Returns the number of parts.
pub async fn send(
    store: &dyn ObjectStore,
    path: &Path,
    entry: &Entry,
    part_size: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<usize, String> {
    let key = Key::from(entry.key.as_str());
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::Metadata(SHA256_METADATA.into()),
        entry.sha256.clone().into(),
    );
    if entry.bytes <= part_size {
        let bytes = read_range(path, 0, entry.bytes).await?;
        let options = PutOptions {
            attributes,
            tags: kind_tags("segment"),
            ..PutOptions::default()
        };
        store
            .put_opts(&key, PutPayload::from(bytes), options)
            .await
            .map_err(|e| describe(&e))?;
        return Ok(1);
    }
    let options = PutMultipartOptions {
        attributes,
        tags: kind_tags("segment"),
        ..PutMultipartOptions::default()
    };
    let mut upload = store
        .put_multipart_opts(&key, options)
        .await
        .map_err(|e| describe(&e))?;
    let mut offset = 0;
    let mut parts = 0;
    while offset < entry.bytes {
        let len = part_size.min(entry.bytes - offset);
        let sent = match read_range(path, offset, len).await {
            Ok(bytes) => upload
                .put_part(PutPayload::from(bytes))
                .await
                .map_err(|e| describe(&e)),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            let _ = upload.abort().await;
            return Err(error);
        }
        offset += len;
        parts += 1;
        progress(parts);
    }
    if let Err(error) = upload.complete().await {
        let _ = upload.abort().await;
        return Err(describe(&error));
    }
    Ok(parts)
}

/// Whether the object at `entry.key` is this segment: its size and recorded SHA-256.
pub async fn holds(store: &dyn ObjectStore, entry: &Entry) -> Result<bool, String> {
    head_matches(store, entry).await.map_err(|e| describe(&e))
}

/// [`holds`] before an upload: a role that may not list the bucket gets 403, not 404, for a
/// key that does not exist (AWS's rule), so a refusal here only means "not known to be
/// there"; credentials that are really wrong fail the upload itself.
pub async fn already_holds(store: &dyn ObjectStore, entry: &Entry) -> Result<bool, String> {
    match head_matches(store, entry).await {
        Err(object_store::Error::PermissionDenied { .. }) => Ok(false),
        other => other.map_err(|e| describe(&e)),
    }
}

async fn head_matches(store: &dyn ObjectStore, entry: &Entry) -> object_store::Result<bool> {
    let options = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match store
        .get_opts(&Key::from(entry.key.as_str()), options)
        .await
    {
        Ok(found) => {
            let sha256 = found
                .attributes
                .get(&Attribute::Metadata(SHA256_METADATA.into()))
                .map(|value| value.as_ref().to_owned());
            Ok(found.meta.size == entry.bytes && sha256.as_deref() == Some(&entry.sha256))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether the object's bytes, read back in full, hash to the segment's SHA-256.
pub async fn read_back_matches(store: &dyn ObjectStore, entry: &Entry) -> Result<bool, String> {
    use futures::StreamExt;
    let got = store
        .get(&Key::from(entry.key.as_str()))
        .await
        .map_err(|e| describe(&e))?;
    let mut stream = got.into_stream();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.map_err(|e| describe(&e))?);
    }
    Ok(hex::encode(hasher.finalize()) == entry.sha256)
}

/// The size and SHA-256 (hex) of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// `len` bytes of the file at `path` from `offset`, read off the runtime's thread.
async fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&owned)?;
        let mut bytes = vec![0; len as usize];
        file.read_exact_at(&mut bytes, offset)?;
        Ok::<_, std::io::Error>(bytes)
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| format!("cannot read {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn segment(dir: &Path, bytes: &[u8]) -> (std::path::PathBuf, Entry) {
        let path = dir.join("s.rcd");
        std::fs::write(&path, bytes).unwrap();
        let (len, sha256) = hash_file(&path).unwrap();
        let entry = Entry {
            segment: "s.rcd".to_owned(),
            recording_id: "3f2a".to_owned(),
            key: "host/2026-12-04/3f2a/s.rcd".to_owned(),
            bytes: len,
            sha256,
            queued_at: 0,
        };
        (path, entry)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_segment_goes_up_whole_or_in_parts_and_is_then_held() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry) = segment(dir.path(), b"ten bytes!");
        for (part_size, parts) in [(64, 1), (4, 3)] {
            let store = InMemory::new();
            assert!(!already_holds(&store, &entry).await.unwrap());
            let sent = std::sync::Mutex::new(Vec::new());
            let progress = |part: usize| sent.lock().unwrap().push(part);
            let counted = send(&store, &path, &entry, part_size, &progress).await;
            assert_eq!(counted, Ok(parts));
            assert!(holds(&store, &entry).await.unwrap());
            assert!(read_back_matches(&store, &entry).await.unwrap());
            let got = store.get(&Key::from(entry.key.as_str())).await.unwrap();
            assert_eq!(got.bytes().await.unwrap().as_ref(), b"ten bytes!");
            if parts > 1 {
                assert_eq!(*sent.lock().unwrap(), vec![1, 2, 3]);
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_object_with_other_bytes_is_not_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry) = segment(dir.path(), b"ten bytes!");
        let store = InMemory::new();
        send(&store, &path, &entry, 64, &|_| {}).await.unwrap();
        let other = Entry {
            sha256: "00".repeat(32),
            ..entry.clone()
        };
        assert!(!holds(&store, &other).await.unwrap());
        assert!(!read_back_matches(&store, &other).await.unwrap());
    }
}
