//! Sealed segments: encryption at rest to age X25519 recipients (docs/FORMAT.md, "Sealed
//! segments"). A host holding only public keys writes recordings it cannot read back.
//!
//! This module owns the keys (`keys`: recipients, identities, `recorder keygen`'s identity
//! file), the plain seal header, and turning one zstd frame into one sealed block and back. It does not
//! own framing or zstd: `writer` decides when a block ends (with its zstd frame), `reader`
//! walks blocks. The cryptography is the `age` crate's; nothing here is hand-rolled.
//!
//! Crash safety: age authenticates a stream only when it is finished, so each zstd frame
//! (≤ 1 s, ≤ 1 MiB of frames) is its own finished age file, `[u32 LE length][age file]`. A
//! killed writer loses the open block only, the same bound as an unsealed segment.

use std::{
    io::{self, Read, Write},
    str::FromStr,
};

use age::{stream::StreamWriter, x25519::Recipient};

/// Recipients, identities and the identity file.
mod keys;

pub use keys::{
    from_args, identity_file_text, parse_recipient, read_recipients_file, write_new_identity,
    KeyError, Keyring,
};

/// Preamble flag bit: the segment is sealed.
pub const FLAG_SEALED: u16 = 1;
/// Largest seal header a reader accepts (a few hundred bytes per recipient in practice).
pub const MAX_SEAL_HEADER_BYTES: u32 = 64 * 1024;
/// Largest sealed block a reader accepts: a 32 MiB zstd frame (the reader's limit) plus
/// age's 16 bytes per 64 KiB chunk and a header.
pub const MAX_BLOCK_BYTES: u32 = 34 * 1024 * 1024;
/// Bytes of the length prefix in front of each block; a length of 0 is the end marker.
pub const BLOCK_LEN_BYTES: usize = 4;
/// Bytes of the block index at the start of each block's plaintext.
pub(crate) const BLOCK_INDEX_BYTES: usize = 4;
/// First line of the seal header: names the scheme, so a later one gets a new name.
const SEAL_HEADER_MAGIC: &str = "recorder-seal/v1 age-x25519";
const RECIPIENT_PREFIX: &str = "age1";
const IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// The recipients every segment of a recording is sealed to (`recorderd --seal-to`).
#[derive(Clone, Debug)]
pub struct Seal {
    recipients: Vec<Recipient>,
}

impl Seal {
    /// `None` for no recipients (an unsealed recording); duplicates are dropped.
    pub fn new(recipients: Vec<Recipient>) -> Option<Seal> {
        let mut unique: Vec<Recipient> = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            if !unique.contains(&recipient) {
                unique.push(recipient);
            }
        }
        (!unique.is_empty()).then_some(Seal { recipients: unique })
    }

    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Starts block `index`: a fresh age file (new file key, one stanza per recipient) whose
    /// plaintext begins with the block index. The caller writes one zstd frame into it.
    pub fn open_block(&self, index: u32) -> io::Result<StreamWriter<Vec<u8>>> {
        let recipients = self.recipients.iter().map(|r| r as &dyn age::Recipient);
        let encryptor = age::Encryptor::with_recipients(recipients)
            .map_err(|error| io::Error::other(error.to_string()))?;
        let mut block = encryptor.wrap_output(Vec::with_capacity(64 * 1024))?;
        block.write_all(&index.to_le_bytes())?;
        Ok(block)
    }
}

/// Ends a block: finishes the age stream and writes `[u32 LE length][age file]` to `out`.
/// Returns the bytes written.
pub fn write_block(block: StreamWriter<Vec<u8>>, out: &mut impl Write) -> io::Result<u64> {
    let sealed = block.finish()?;
    let len = u32::try_from(sealed.len())
        .ok()
        .filter(|&len| len > 0 && len <= MAX_BLOCK_BYTES)
        .ok_or_else(|| io::Error::other("sealed block larger than the format allows"))?;
    // One buffer, one write: a block's length never reaches the disk without its bytes
    // having been handed over in the same call.
    let mut framed = Vec::with_capacity(BLOCK_LEN_BYTES + sealed.len());
    framed.extend_from_slice(&len.to_le_bytes());
    framed.extend_from_slice(&sealed);
    out.write_all(&framed)?;
    Ok(framed.len() as u64)
}

/// The end marker: a zero block length, written after the block holding the Trailer.
pub fn write_end_marker(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&0u32.to_le_bytes())
}

/// What a sealed segment says in the clear. Nothing from the Header frame beyond the
/// recording id, the segment number and the start time (docs/SECURITY.md says why).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealHeader {
    pub recording_id: String,
    pub segment_seq: u32,
    /// Wall-clock start of the segment, ns since the Unix epoch.
    pub started_realtime_ns: i64,
    /// The recipients (`age1…`) the segment is sealed to, in `--seal-to` order.
    pub recipients: Vec<String>,
}

impl SealHeader {
    /// `[u32 LE length][UTF-8 text]`, one `key value` line each.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!(
            "{SEAL_HEADER_MAGIC}\nrecording {}\nsegment {}\nstarted {}\n",
            self.recording_id, self.segment_seq, self.started_realtime_ns
        );
        for recipient in &self.recipients {
            text.push_str(&format!("recipient {recipient}\n"));
        }
        let mut bytes = (text.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    /// Parses the text of a seal header (after its length). Unknown keys are skipped.
    pub fn parse(text: &[u8]) -> Result<SealHeader, String> {
        let text = std::str::from_utf8(text).map_err(|_| "seal header is not UTF-8")?;
        let mut lines = text.lines();
        if lines.next() != Some(SEAL_HEADER_MAGIC) {
            return Err(format!(
                "seal header does not start with `{SEAL_HEADER_MAGIC}`"
            ));
        }
        let mut header = SealHeader::default();
        let (mut id, mut seq, mut started) = (false, false, false);
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let bad = |what: &str| format!("seal header has a bad {what} line");
            match key {
                "recording" if !id => {
                    id = true;
                    header.recording_id = value.to_owned();
                }
                "segment" if !seq => {
                    seq = true;
                    header.segment_seq = value.parse().map_err(|_| bad("segment"))?;
                }
                "started" if !started => {
                    started = true;
                    header.started_realtime_ns = value.parse().map_err(|_| bad("started"))?;
                }
                "recipient" => {
                    Recipient::from_str(value).map_err(|_| bad("recipient"))?;
                    header.recipients.push(value.to_owned());
                }
                "recording" | "segment" | "started" => return Err(bad(key)),
                _ => {}
            }
        }
        if !(id && seq && started) || header.recipients.is_empty() {
            return Err("seal header lacks recording, segment, started or recipient".to_owned());
        }
        Ok(header)
    }
}

/// How the blocks of a sealed segment end, seen without a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockWalk {
    pub blocks: u64,
    /// The writer wrote the end marker (it finished the segment). Unauthenticated: a hint
    /// for `recorder list`; only a reader with a key sees the Trailer itself.
    pub ended: bool,
    /// File offset of a torn or oversized block, or of bytes after the end marker.
    pub damage_offset: Option<u64>,
}

/// Reads the seal header of the file after its preamble: `Ok(None)` at a torn header.
pub fn read_seal_header(file: &mut impl Read) -> Result<Option<SealHeader>, String> {
    let mut len = [0u8; 4];
    if read_full(file, &mut len).map_err(|e| e.to_string())? < len.len() {
        return Ok(None);
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_SEAL_HEADER_BYTES {
        return Err(format!(
            "seal header length {len} exceeds the {MAX_SEAL_HEADER_BYTES}-byte limit"
        ));
    }
    let mut text = vec![0u8; len as usize];
    if read_full(file, &mut text).map_err(|e| e.to_string())? < text.len() {
        return Ok(None);
    }
    SealHeader::parse(&text).map(Some)
}

/// Walks the block lengths of a sealed segment without decrypting (for `recorder list`).
/// `file` is positioned just after the seal header, at byte `offset`.
pub fn walk_blocks(file: &mut (impl Read + io::Seek), mut offset: u64) -> io::Result<BlockWalk> {
    let end = file.seek(io::SeekFrom::End(0))?;
    let mut walk = BlockWalk::default();
    loop {
        file.seek(io::SeekFrom::Start(offset))?;
        let mut len = [0u8; BLOCK_LEN_BYTES];
        match read_full(file, &mut len)? {
            0 => return Ok(walk),
            BLOCK_LEN_BYTES => {}
            _ => {
                walk.damage_offset = Some(offset);
                return Ok(walk);
            }
        }
        let len = u32::from_le_bytes(len);
        let next = offset + BLOCK_LEN_BYTES as u64 + u64::from(len);
        if len == 0 {
            if next == end {
                walk.ended = true;
            } else {
                walk.damage_offset = Some(offset);
            }
            return Ok(walk);
        }
        if len > MAX_BLOCK_BYTES || next > end {
            walk.damage_offset = Some(offset);
            return Ok(walk);
        }
        walk.blocks += 1;
        offset = next;
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use age::{secrecy::ExposeSecret, x25519::Identity};

    use super::*;

    #[test]
    fn seal_header_round_trip_and_rejections() {
        let header = SealHeader {
            recording_id: "ab".repeat(16),
            segment_seq: 3,
            started_realtime_ns: 1_795_000_000_000_000_000,
            recipients: vec![Identity::generate().to_public().to_string()],
        };
        let bytes = header.encode();
        assert_eq!(
            read_seal_header(&mut bytes.as_slice()).unwrap(),
            Some(header.clone())
        );
        assert_eq!(read_seal_header(&mut &bytes[..bytes.len() - 1]), Ok(None));
        let mut extra = String::from_utf8(bytes[4..].to_vec()).unwrap();
        extra.push_str("future-key whatever\n");
        assert_eq!(SealHeader::parse(extra.as_bytes()), Ok(header));
        assert!(SealHeader::parse(b"recorder-seal/v1 age-x25519\nrecording x\n").is_err());
        assert!(SealHeader::parse(b"something else\n").is_err());
    }

    #[test]
    fn recipients_parse_and_secrets_are_never_echoed() {
        let identity = Identity::generate();
        let public = identity.to_public().to_string();
        assert_eq!(parse_recipient(&public).unwrap().to_string(), public);
        let secret = identity.to_string().expose_secret().to_owned();
        let error = parse_recipient(&secret).unwrap_err().to_string();
        assert!(!error.contains(&secret[20..]), "{error}");
        assert!(error.contains("secret identity"), "{error}");
        let error = parse_recipient("age1nope").unwrap_err().to_string();
        assert!(error.contains("not an age X25519 recipient"), "{error}");
    }

    #[test]
    fn recipients_file_skips_comments_and_names_bad_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("recipients.txt");
        let (a, b) = (Identity::generate(), Identity::generate());
        std::fs::write(
            &path,
            format!("# team\n{}\n\n  {}  \n", a.to_public(), b.to_public()),
        )
        .unwrap();
        assert_eq!(read_recipients_file(&path).unwrap().len(), 2);
        std::fs::write(&path, format!("{}\nage1bad\n", a.to_public())).unwrap();
        let error = read_recipients_file(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            read_recipients_file(&path),
            Err(KeyError::NoRecipients { .. })
        ));
    }

    #[test]
    fn keygen_writes_0600_once_and_the_keyring_loads_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.txt");
        let recipient = write_new_identity(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            write_new_identity(&path),
            Err(KeyError::Exists { .. })
        ));
        let keyring = Keyring::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(keyring.len(), 1);
        assert!(keyring.opens(&[recipient.to_string()]));
        let public = tmp.path().join("public.txt");
        std::fs::write(&public, format!("{recipient}\n")).unwrap();
        assert!(matches!(
            Keyring::load(&[public]),
            Err(KeyError::RecipientAsIdentity { line: 1, .. })
        ));
    }

    #[test]
    fn a_block_opens_with_its_index_and_not_elsewhere() {
        let identity = Identity::generate();
        let seal = Seal::new(vec![identity.to_public()]).unwrap();
        let mut block = seal.open_block(7).unwrap();
        block.write_all(b"zstd frame bytes").unwrap();
        let mut framed = Vec::new();
        write_block(block, &mut framed).unwrap();
        let len = u32::from_le_bytes(framed[..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, framed.len());
        let mut keyring = Keyring::default();
        keyring.add(identity);
        assert_eq!(
            keyring.open_block(&framed[4..], 7).unwrap(),
            b"zstd frame bytes"
        );
        assert!(keyring
            .open_block(&framed[4..], 8)
            .unwrap_err()
            .contains("reordered"));
        let mut stranger = Keyring::default();
        stranger.add(Identity::generate());
        assert!(stranger
            .open_block(&framed[4..], 7)
            .unwrap_err()
            .contains("no given identity"));
    }
}
