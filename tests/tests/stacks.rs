//! `--stacks`: the user stack of every recorded syscall, stored once per segment and named
//! from symbols, DWARF, separate debug files and perf maps. See: issue #19.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use recorder_proto::v1::{Event, Stack, StackFrame};
use recorder_tests::{binary, require_privileges, segment_files, Recorder, Recording};

/// A program of ours: `deep OUT N` writes N records to OUT from a function three calls deep,
/// each record different (so that segments fill and rotate).
const DEEP_C: &str = r#"#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
static char record[512];
__attribute__((noinline)) void save_record(int fd) { write(fd, record, sizeof record); }
__attribute__((noinline)) void flush_journal(int fd) { save_record(fd); __asm__ volatile(""); }
__attribute__((noinline)) void handle_request(int fd) { flush_journal(fd); __asm__ volatile(""); }
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    unsigned state = 1;
    for (int n = atoi(argv[2]); n > 0; n--) {
        for (unsigned i = 0; i < sizeof record; i++) record[i] = (state = state * 1103515245u + 12345u) >> 16;
        handle_request(fd);
    }
    return close(fd);
}
"#;

/// The three functions on the way to the write, innermost first.
const CHAIN: [&str; 3] = ["save_record", "flush_journal", "handle_request"];

/// Compiles DEEP_C with debug info and frame pointers into `dir/deep`.
fn build_deep(dir: &Path) -> PathBuf {
    let source = dir.join("deep.c");
    std::fs::write(&source, DEEP_C).unwrap();
    let program = dir.join("deep");
    run(Command::new("gcc")
        .args(["-g", "-O1", "-fno-omit-frame-pointer", "-o"])
        .arg(&program)
        .arg(&source));
    program
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a tool the test needs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The line of DEEP_C that defines `function`.
fn line_of(function: &str) -> u32 {
    let at = DEEP_C
        .lines()
        .position(|line| line.contains(&format!("void {function}(")))
        .unwrap();
    at as u32 + 1
}

/// Every segment of the recording in `dir`, each read through the production reader.
fn segments(dir: &Path) -> Vec<Recording> {
    let files = segment_files(dir);
    assert!(!files.is_empty(), "no segments in {}", dir.display());
    files.iter().map(|path| Recording::read(path)).collect()
}

/// The writes of the record (512 bytes) to `out`.
fn writes_to<'a>(recording: &'a Recording, out: &Path) -> Vec<&'a Event> {
    let out = out.display().to_string();
    recording
        .events
        .iter()
        .filter(|e| e.syscall == "write" && e.ret == 512)
        .filter(|e| e.resource.as_ref().is_some_and(|r| r.name == out))
        .collect()
}

fn functions(stack: &Stack) -> Vec<&str> {
    stack.frames.iter().map(|f| f.function.as_str()).collect()
}

/// The frames of CHAIN, in the stack's order; fails unless all three are there, in order.
fn chain_frames(stack: &Stack) -> Vec<&StackFrame> {
    let found: Vec<&StackFrame> = stack
        .frames
        .iter()
        .filter(|frame| CHAIN.contains(&frame.function.as_str()))
        .collect();
    let names: Vec<&str> = found.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(names, CHAIN, "stack: {:#?}", stack.frames);
    found
}

/// Records `program OUT 3` with `options`; returns the recording and the stack of its first
/// write.
fn first_write_stack(
    options: &[&str],
    output: &Path,
    program: &Path,
    out: &Path,
) -> (PathBuf, Stack) {
    let mut args = options.to_vec();
    args.extend(["--output", output.to_str().unwrap(), "--"]);
    args.extend([program.to_str().unwrap(), out.to_str().unwrap(), "3"]);
    let path = Recorder::start(&args).finish();
    let recording = Recording::read(&path);
    let write = writes_to(&recording, out)[0];
    let stack = recording.stacks[&write.stack_id].clone();
    (path, stack)
}

#[test]
fn a_write_three_calls_deep_names_the_three_functions_once_per_segment() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = build_deep(work.path());
    let out = work.path().join("journal");
    let output = work.path().join("recordings");
    let writes = 3000;
    Recorder::start(&[
        "--stacks",
        "--segment-bytes",
        "64KiB",
        "--output",
        output.to_str().unwrap(),
        "--",
        program.to_str().unwrap(),
        out.to_str().unwrap(),
        &writes.to_string(),
    ])
    .finish();

    let segments = segments(&output);
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let mut ids = std::collections::HashSet::new();
    let mut recorded = 0;
    for segment in &segments {
        let limits = segment.header.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits.stack_depth, 32);
        assert_eq!(
            segment.stacks_used_before_written,
            Vec::<u32>::new(),
            "every stack is in the segment before the first event that uses it"
        );
        for write in writes_to(segment, &out) {
            assert!(!write.stack_lost);
            ids.insert(write.stack_id);
            let stack = &segment.stacks[&write.stack_id];
            // The innermost frame is libc's write; then the three functions of ours, with
            // the file and the line of each call.
            assert!(
                stack.frames[0].module.contains("libc"),
                "{:#?}",
                stack.frames
            );
            for frame in chain_frames(stack) {
                assert!(frame.file.ends_with("deep.c"), "{frame:?}");
                assert_eq!(frame.line, line_of(&frame.function), "{frame:?}");
                assert_eq!(frame.module, program.display().to_string());
                assert_eq!(frame.named_by, "dwarf");
            }
            assert!(functions(stack).contains(&"main"), "{:#?}", stack.frames);
            recorded += 1;
        }
        // One stack for thousands of writes: stored once, not per event.
        assert!(segment.stacks.len() < 20, "{} stacks", segment.stacks.len());
    }
    assert_eq!(recorded, writes);
    assert_eq!(ids.len(), 1, "every write came from the same code path");
}

#[test]
fn a_stripped_program_is_named_from_its_debug_file() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = build_deep(work.path());
    // As distributions ship programs: the debug info in its own file, found by build id, and
    // the program stripped of every symbol, with a debug link to that file.
    let debug = work.path().join("deep.debug");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&program)
        .arg(&debug));
    let stripped = work.path().join("deep-stripped");
    run(Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&program));
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&stripped));
    let build_id = build_id(&stripped);
    let symbols = work.path().join("symbols");
    let placed = symbols
        .join(".build-id")
        .join(&build_id[..2])
        .join(format!("{}.debug", &build_id[2..]));
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::rename(&debug, &placed).unwrap();

    // Recorded without the debug directory: the stripped program's frames have no names.
    let out = work.path().join("journal");
    let bare = work.path().join("bare");
    let (path, stack) = first_write_stack(&["--stacks"], &bare, &stripped, &out);
    let ours: Vec<&StackFrame> = stack
        .frames
        .iter()
        .filter(|frame| frame.module == stripped.display().to_string())
        .collect();
    assert!(ours.len() >= 3, "{:#?}", stack.frames);
    for frame in &ours {
        assert_eq!(frame.function, "", "{frame:?}");
        assert_eq!(hex(&frame.build_id), build_id);
    }

    // Named later, on a machine with the debug files: `recorder inspect --symbols DIR`.
    let shown = run(Command::new(binary("recorder"))
        .args(["inspect", "--symbols"])
        .arg(&symbols)
        .arg(&path));
    let under_write: Vec<&str> = shown
        .lines()
        .skip_while(|line| !line.contains("write ") || !line.contains("→ 512"))
        .skip(1)
        .take_while(|line| line.starts_with("      at "))
        .collect();
    let named: Vec<&str> = CHAIN
        .iter()
        .map(|function| {
            under_write
                .iter()
                .position(|line| line.contains(&format!("at {function} (")))
                .map(|at| under_write[at])
                .unwrap_or_else(|| panic!("{function} not under the write: {shown}"))
        })
        .collect();
    for (line, function) in named.iter().zip(CHAIN) {
        assert!(
            line.contains(&format!("deep.c:{})", line_of(function))),
            "{line}"
        );
    }

    // Named as it is recorded when the config names the debug directory.
    let config = work.path().join("recorderd.toml");
    std::fs::write(
        &config,
        format!(
            "[capture]\nstacks = true\ndebug_dirs = [\"{}\"]\n",
            symbols.display()
        ),
    )
    .unwrap();
    let named_dir = work.path().join("named");
    let options = ["--config", config.to_str().unwrap()];
    let (_, stack) = first_write_stack(&options, &named_dir, &stripped, &out);
    for frame in chain_frames(&stack) {
        assert_eq!(frame.line, line_of(&frame.function), "{frame:?}");
    }
}

#[test]
fn a_node_script_run_with_perf_basic_prof_shows_its_javascript_function() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("journal.js");
    std::fs::write(
        &script,
        "const fs = require('fs');\n\
         function writeTheJournal(fd, i) { fs.writeSync(fd, 'entry ' + i + '\\n'); }\n\
         const fd = fs.openSync(process.argv[2], 'w');\n\
         for (let i = 0; i < 2000; i++) writeTheJournal(fd, i);\n\
         fs.closeSync(fd);\n",
    )
    .unwrap();
    let out = work.path().join("journal");
    let output = work.path().join("recordings");
    // V8's log, which --perf-basic-prof turns on, goes with the rest, not into the
    // working directory (the source tree, under cargo test).
    let v8_log = format!("--logfile={}", work.path().join("v8.log").display());
    Recorder::start(&[
        "--stacks",
        "--output",
        output.to_str().unwrap(),
        "--",
        "node",
        "--perf-basic-prof",
        &v8_log,
        "--no-logfile-per-isolate",
        script.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .finish();
    let out = out.display().to_string();
    let mut seen = 0;
    for segment in segments(&output) {
        let last =
            segment.events.iter().rev().find(|e| {
                e.syscall == "write" && e.resource.as_ref().is_some_and(|r| r.name == out)
            });
        let Some(write) = last else { continue };
        let stack = &segment.stacks[&write.stack_id];
        let frame = stack
            .frames
            .iter()
            .find(|frame| frame.function.contains("writeTheJournal"))
            .unwrap_or_else(|| panic!("no JavaScript frame: {:#?}", stack.frames));
        assert_eq!(frame.named_by, "perf-map");
        assert!(frame.function.contains("journal.js:2"), "{frame:?}");
        seen += 1;
    }
    assert!(seen > 0, "no write to {out} was recorded");
}

/// The GNU build id of an ELF file, in hex, as `readelf -n` prints it.
fn build_id(path: &Path) -> String {
    let notes = run(Command::new("readelf").arg("-n").arg(path));
    notes
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build id in {}: {notes}", path.display()))
        .to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn bad_stack_options_are_one_line() {
    let output = Command::new(binary("recorderd"))
        .args(["--stack-depth", "65", "--pid", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not between 1 and 64"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let work = tempfile::tempdir().unwrap();
    let output = Command::new(binary("recorder"))
        .args(["inspect", "--symbols", "/no/such/dir"])
        .arg(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--symbols /no/such/dir: not a directory"),
        "{stderr}"
    );
}
