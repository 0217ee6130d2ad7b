//! Moving one segment: into the bucket (one PUT, or parts), and checking what the bucket
//! holds against the local file.

use std::path::Path;

use object_store::{
    aws::AmazonS3, path::Path as Key, Attribute, Attributes, GetOptions, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};
use sha2::{Digest, Sha256};

use crate::{describe, queue::Entry};

/// The object metadata key holding the segment's SHA-256.
const SHA256_METADATA: &str = "sha256";

/// Uploads the segment file at `path` to `entry.key`: one PUT up to `part_size`, parts of
/// `part_size` above it (`progress` hears each part sent). A failed multipart upload is
/// aborted. Returns the number of parts.
pub async fn send(
    store: &AmazonS3,
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
pub async fn holds(store: &AmazonS3, entry: &Entry) -> Result<bool, String> {
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
        Err(error) => Err(describe(&error)),
    }
}

/// Whether the object's bytes, read back in full, hash to the segment's SHA-256.
pub async fn read_back_matches(store: &AmazonS3, entry: &Entry) -> Result<bool, String> {
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
