//! The plain bytes at the start of every segment file, and segment file names.

/// First 8 bytes of a segment: the \x89 and line endings catch text-mode mangling, as PNG's do.
pub const MAGIC: [u8; 8] = *b"\x89RCDSEG\n";
/// The format version this code writes and the highest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Magic, version (u16 LE), flags (u16 LE), reserved (u32): then the zstd stream (or, in a
/// sealed segment, the seal header and sealed blocks).
pub const PREAMBLE_LEN: usize = 16;
/// Largest protobuf frame a reader accepts; a length prefix above it means corruption.
pub const MAX_FRAME_BYTES: u64 = 16 * 1024 * 1024;
/// File name extension of segment files.
pub const EXTENSION: &str = "rcd";

/// Flag bits this version knows; a reader refuses a segment with any other bit set.
pub const KNOWN_FLAGS: u16 = super::seal::FLAG_SEALED;

pub fn preamble() -> [u8; PREAMBLE_LEN] {
    preamble_with_flags(0)
}

pub fn preamble_with_flags(flags: u16) -> [u8; PREAMBLE_LEN] {
    let mut bytes = [0u8; PREAMBLE_LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[10..12].copy_from_slice(&flags.to_le_bytes());
    bytes
}

/// What a preamble says, or why it is not one of ours.
#[derive(Debug, PartialEq, Eq)]
pub enum Preamble {
    Valid { version: u16, flags: u16 },
    NotARecording,
    FutureVersion { version: u16 },
    UnknownFlags { flags: u16 },
}

pub fn check_preamble(bytes: &[u8]) -> Preamble {
    if bytes.len() < PREAMBLE_LEN || bytes[..8] != MAGIC {
        return Preamble::NotARecording;
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    if version > FORMAT_VERSION || version == 0 {
        Preamble::FutureVersion { version }
    } else if flags & !KNOWN_FLAGS != 0 {
        Preamble::UnknownFlags { flags }
    } else {
        Preamble::Valid { version, flags }
    }
}

/// `20261122T131502Z-<first 12 hex digits of the id>-<seq>.rcd`: sorts by start time.
pub fn file_name(started: std::time::SystemTime, recording_id: &str, seq: u32) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(started)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let short_id = recording_id.get(..12).unwrap_or(recording_id);
    format!("{stamp}-{short_id}-{seq:04}.{EXTENSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_round_trip_and_rejections() {
        assert_eq!(
            check_preamble(&preamble()),
            Preamble::Valid {
                version: 1,
                flags: 0
            }
        );
        assert_eq!(
            check_preamble(&preamble_with_flags(1)),
            Preamble::Valid {
                version: 1,
                flags: 1
            }
        );
        assert_eq!(
            check_preamble(&preamble_with_flags(6)),
            Preamble::UnknownFlags { flags: 6 }
        );
        assert_eq!(
            check_preamble(b"hello world, not ours"),
            Preamble::NotARecording
        );
        assert_eq!(check_preamble(&MAGIC), Preamble::NotARecording);
        let mut future = preamble();
        future[8] = 9;
        assert_eq!(
            check_preamble(&future),
            Preamble::FutureVersion { version: 9 }
        );
    }

    #[test]
    fn file_names_sort_by_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let name = file_name(at, "0123456789abcdef0123456789abcdef", 0);
        assert_eq!(name, "20261118T110640Z-0123456789ab-0000.rcd");
    }
}
