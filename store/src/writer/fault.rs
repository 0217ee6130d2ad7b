//! Segment writes that fail on purpose, as on a full disk (tests only).

use std::{cell::Cell, fs::File, io, io::Write};

thread_local! {
    static FAILING_WRITES: Cell<u32> = const { Cell::new(0) };
    static TORN: Cell<bool> = const { Cell::new(false) };
}

/// The next `count` writes to segment files on this thread fail with ENOSPC. The first
/// of them writes half its bytes before failing, as a write that fills the disk does.
pub fn fail_next_writes(count: u32) {
    FAILING_WRITES.set(count);
    TORN.set(count > 0);
}

pub(super) fn intercept(file: &mut File, buf: &[u8]) -> Option<io::Result<usize>> {
    if FAILING_WRITES.get() == 0 {
        return None;
    }
    if TORN.replace(false) && buf.len() > 1 {
        return Some(file.write(&buf[..buf.len() / 2]));
    }
    FAILING_WRITES.set(FAILING_WRITES.get() - 1);
    Some(Err(io::Error::from_raw_os_error(libc::ENOSPC)))
}
