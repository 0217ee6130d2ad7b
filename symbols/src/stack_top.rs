//! The frame a frame-pointer walk misses. A function that sets up no frame of its own (most
//! libc syscall wrappers) makes its syscall with its caller's return address at the top of
//! the stack, while the frame pointer still holds its caller's frame: the walk goes from the
//! wrapper straight to the caller's caller. The probe keeps the word at the top of the stack;
//! it is taken as the missing caller only when it lands, in a module the walk already placed
//! in memory, inside executable code, just after a call instruction.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{elf::executable_segments, Modules};

/// Answers kept per module and per return address; past it they are forgotten and read again.
const MAX_REMEMBERED: usize = 65_536;

/// A walked frame: its raw address (0 when unknown) and where it is in its module.
#[derive(Clone, Copy)]
pub struct Placed<'a> {
    pub address: u64,
    pub build_id: &'a [u8],
    pub file_offset: u64,
}

/// The missing caller, found as the module file's bytes tell; remembers what it read, so a
/// stack seen again costs arithmetic and lookups.
#[derive(Default)]
pub struct StackTop {
    /// Per module (build id): the file ranges of its executable segments (empty when the
    /// module's file is not found).
    executable: HashMap<Vec<u8>, Vec<Range<u64>>>,
    /// Per module: file offsets known to follow a call instruction, or not.
    calls: HashMap<Vec<u8>, HashMap<u64, bool>>,
}

impl StackTop {
    /// The module (build id) and file offset of `top`, the word at the stack pointer, if it
    /// is a return address: placed in memory by one of the first two walked frames, or else
    /// by the live process's memory map.
    pub fn caller(
        &mut self,
        modules: &mut Modules,
        walked: [Option<Placed<'_>>; 2],
        top: u64,
        pid: u32,
    ) -> Option<(Vec<u8>, u64)> {
        if top == 0 || walked[1].is_some_and(|frame| frame.address == top) {
            return None;
        }
        for frame in walked.into_iter().flatten() {
            if frame.address == 0 || frame.build_id.is_empty() || frame.address < frame.file_offset
            {
                continue;
            }
            // Where the walked frame's module sits: its address less its file offset.
            let bias = frame.address - frame.file_offset;
            let Some(offset) = top.checked_sub(bias) else {
                continue;
            };
            if self.is_return_address(modules, frame.build_id, offset) {
                return Some((frame.build_id.to_vec(), offset));
            }
        }
        let (build_id, offset) = modules.place(pid, top)?;
        self.is_return_address(modules, &build_id, offset)
            .then_some((build_id, offset))
    }

    /// Whether `offset` is in executable code of the module; `None` when its file is not
    /// found.
    pub fn is_code(&mut self, modules: &mut Modules, build_id: &[u8], offset: u64) -> Option<bool> {
        if self.executable.len() >= MAX_REMEMBERED {
            self.executable.clear();
        }
        if !self.executable.contains_key(build_id) {
            let ranges = modules
                .find(build_id)
                .map(|path| executable_segments(&path))
                .unwrap_or_default();
            self.executable.insert(build_id.to_vec(), ranges);
        }
        let ranges = &self.executable[build_id];
        (!ranges.is_empty()).then(|| ranges.iter().any(|range| range.contains(&offset)))
    }

    fn is_return_address(&mut self, modules: &mut Modules, build_id: &[u8], offset: u64) -> bool {
        if self.is_code(modules, build_id, offset) != Some(true) {
            return false;
        }
        if let Some(&known) = self
            .calls
            .get(build_id)
            .and_then(|calls| calls.get(&offset))
        {
            return known;
        }
        let answer = modules
            .find(build_id)
            .is_some_and(|path| follows_call(&path, offset));
        if self.calls.values().map(HashMap::len).sum::<usize>() >= MAX_REMEMBERED {
            self.calls.clear();
        }
        self.calls
            .entry(build_id.to_vec())
            .or_default()
            .insert(offset, answer);
        answer
    }
}

/// Whether the bytes before `offset` end with an x86-64 call instruction: `call rel32`,
/// `call *disp32(%rip)`, `call *%reg` and `call *disp(%reg)`.
fn follows_call(path: &Path, offset: u64) -> bool {
    let Some(start) = offset.checked_sub(7) else {
        return false;
    };
    let mut before = [0u8; 7];
    let Ok(file) = File::open(path) else {
        return false;
    };
    if file.read_exact_at(&mut before, start).is_err() {
        return false;
    }
    is_call_before(&before)
}

/// `before`: the 7 bytes just before a return address.
fn is_call_before(before: &[u8; 7]) -> bool {
    let modrm_call = |byte: u8, mode: u8| byte >> 6 == mode && (byte >> 3) & 7 == 2;
    before[2] == 0xe8
        || (before[1] == 0xff && before[2] == 0x15)
        || (before[1] == 0xff && modrm_call(before[2], 0b10) && before[2] & 7 != 4)
        || (before[4] == 0xff && modrm_call(before[5], 0b01) && before[5] & 7 != 4)
        || (before[5] == 0xff && modrm_call(before[6], 0b11))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_calls_that_end_just_before_a_return_address() {
        // call rel32
        assert!(is_call_before(&[0, 0, 0xe8, 1, 2, 3, 4]));
        // call *0x10(%rip)
        assert!(is_call_before(&[0, 0xff, 0x15, 0x10, 0, 0, 0]));
        // call *%rax
        assert!(is_call_before(&[0, 0, 0, 0, 0, 0xff, 0xd0]));
        // call *0x18(%rax)
        assert!(is_call_before(&[0, 0, 0, 0, 0xff, 0x50, 0x18]));
        // mov %rsp,%rbp; ret — no call
        assert!(!is_call_before(&[0x90, 0x90, 0x90, 0x48, 0x89, 0xe5, 0xc3]));
        // jmp *%rax (ff /4) is not a call
        assert!(!is_call_before(&[0, 0, 0, 0, 0, 0xff, 0xe0]));
    }
}
