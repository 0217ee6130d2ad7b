//! Names the frames of recorded stacks. The probes give each frame as a module's build id and
//! a file offset (or, in anonymous memory, a bare address); this crate finds the module's file
//! by its build id, names the function (ELF symbols, DWARF file and line through blazesym,
//! with separate debug files found the way debuggers find them) and names JIT code from the
//! perf map a runtime writes. The daemon uses it as it records; `recorder inspect --symbols
//! DIR` uses it later, on a machine with the debug files.

/// ELF program headers: where code is, and file offsets as ELF addresses.
mod elf;
/// Which file has which build id.
mod modules;
/// `/tmp/perf-PID.map`: JIT code's names.
mod perf_map;
/// The caller a frame-pointer walk misses, from the word at the top of the stack.
mod stack_top;

use std::path::{Path, PathBuf};

use blazesym::symbolize::{source, Input, Symbolized, Symbolizer};
use recorder_proto::v1::StackFrame;

pub use modules::Modules;
pub use perf_map::PerfMap;
pub use stack_top::{Placed, StackTop};

/// Where a frame's name came from (`StackFrame::named_by`).
pub const NAMED_BY_SYMTAB: &str = "symtab";
pub const NAMED_BY_DWARF: &str = "dwarf";
pub const NAMED_BY_PERF_MAP: &str = "perf-map";

/// Names frames: finds their modules, then their functions and lines.
pub struct Symbols {
    symbolizer: Symbolizer,
    modules: Modules,
    perf_maps: std::collections::HashMap<u32, Option<PerfMap>>,
    perf_map_dir: PathBuf,
}

impl Symbols {
    /// `debug_dirs`: where separate debug files are looked for, by build id
    /// (`DIR/.build-id/xx/rest.debug`) and by debug link, after the system's own
    /// (`/usr/lib/debug`). `perf_map_dir`: where runtimes write `perf-PID.map` (`/tmp`).
    pub fn new(debug_dirs: Vec<PathBuf>, perf_map_dir: PathBuf) -> Self {
        let mut dirs = debug_dirs.clone();
        dirs.extend(["/usr/lib/debug", "/lib/debug"].map(PathBuf::from));
        Symbols {
            symbolizer: Symbolizer::builder()
                .set_debug_dirs(Some(&dirs))
                .enable_code_info(true)
                .build(),
            modules: Modules::new(dirs),
            perf_maps: Default::default(),
            perf_map_dir,
        }
    }

    pub fn modules(&mut self) -> &mut Modules {
        &mut self.modules
    }

    /// Fills in what can be found of `frame`: its module's path, function, file and line.
    /// `pid` names the perf map that JIT frames are looked up in. `is_return_address`: the
    /// frame's address is where a call returns to, so the call itself is one byte before (the
    /// line is the call's, not the next statement's).
    pub fn name(&mut self, frame: &mut StackFrame, pid: u32, is_return_address: bool) {
        if frame.function.is_empty() && !frame.build_id.is_empty() {
            let Some(path) = self.modules.find(&frame.build_id) else {
                return;
            };
            if frame.module.is_empty() {
                frame.module = path.display().to_string();
            }
            if frame.elf_address == 0 {
                frame.elf_address = elf::address_of(&path, frame.file_offset).unwrap_or(0);
            }
            // A return address: the call is the instruction before it.
            let back = u64::from(is_return_address);
            let input = if frame.elf_address != 0 {
                Input::VirtOffset(frame.elf_address.saturating_sub(back))
            } else {
                Input::FileOffset(frame.file_offset.saturating_sub(back))
            };
            self.name_in_file(frame, &path, input);
        } else if frame.function.is_empty() && frame.address != 0 {
            self.name_from_perf_map(frame, pid);
        }
    }

    fn name_in_file(&self, frame: &mut StackFrame, path: &Path, input: Input<u64>) {
        let elf = source::Source::Elf(source::Elf::new(path));
        let Ok(Symbolized::Sym(sym)) = self.symbolizer.symbolize_single(&elf, input) else {
            return;
        };
        frame.function = sym.name.into_owned();
        frame.named_by = NAMED_BY_SYMTAB.to_owned();
        if let Some(code) = sym.code_info {
            frame.file = match &code.dir {
                Some(dir) => dir.join(&*code.file).display().to_string(),
                None => Path::new(&*code.file).display().to_string(),
            };
            frame.line = code.line.unwrap_or(0);
            frame.named_by = NAMED_BY_DWARF.to_owned();
        }
    }

    fn name_from_perf_map(&mut self, frame: &mut StackFrame, pid: u32) {
        let dir = &self.perf_map_dir;
        let map = self
            .perf_maps
            .entry(pid)
            .or_insert_with(|| PerfMap::read(&dir.join(format!("perf-{pid}.map"))));
        if let Some(name) = map.as_ref().and_then(|map| map.name(frame.address)) {
            frame.function = name.to_owned();
            frame.named_by = NAMED_BY_PERF_MAP.to_owned();
        }
    }

    /// Forgets `pid`'s perf map, so that the next JIT frame reads it again (it grows as the
    /// runtime compiles).
    pub fn reload_perf_map(&mut self, pid: u32) {
        self.perf_maps.remove(&pid);
    }
}
