//! The TLS plaintext probes: which library files to probe, and attaching the entry and return
//! programs of recorder-ebpf's `tls` module to each function `recorder_common::tls` lists.
//!
//! A uprobe is set on a file (by inode), and then fires in every process that maps it, now
//! or later; the programs drop processes that are not recorded. So the libraries in the
//! dynamic loader's directories are probed at load, which covers every process that uses the
//! system's OpenSSL or GnuTLS, including children, spawned commands and `--comm` matches;
//! and a recorded process's own copy (a virtualenv's, one inside a container) is probed when
//! [`TlsProbes::probe_process`] reads its maps at attach.

use std::{collections::HashSet, os::unix::fs::MetadataExt, path::Path};

use aya::{
    programs::{uprobe::UProbeScope, ProgramError, UProbe},
    Ebpf,
};
use recorder_common::tls::{FUNCTIONS, HANDSHAKES};

use crate::CaptureError;

/// File-name prefixes of the libraries probed, and the library each is.
const LIBRARIES: [(&str, &str); 2] = [("libssl.so.", "openssl"), ("libgnutls.so.", "gnutls")];

/// Where the dynamic loader finds system libraries (Debian's multiarch directories, the
/// traditional ones, and /usr/local).
const SYSTEM_DIRS: [&str; 9] = [
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// The return program, attached to every read and write function.
const RETURN_PROGRAM: &str = "tls_return";
/// The programs attached to every handshake function.
const HANDSHAKE_PROGRAM: &str = "tls_handshake";
const HANDSHAKE_RETURN_PROGRAM: &str = "tls_handshake_return";

/// Which library a file name is, if it is one of those probed.
fn library_of(file_name: &str) -> Option<&'static str> {
    LIBRARIES
        .iter()
        .find(|(prefix, _)| file_name.starts_with(prefix))
        .map(|(_, library)| *library)
}

/// The entry program for a function: `tls_` and its name in lower case.
fn entry_program(function: &str) -> String {
    format!("tls_{}", function.to_ascii_lowercase())
}

/// The library files probed so far.
#[derive(Default)]
pub struct TlsProbes {
    /// (device, inode) of each file probed: one file reached by several paths is probed once.
    files: HashSet<(u64, u64)>,
    /// "openssl /usr/lib/x86_64-linux-gnu/libssl.so.3" for each, in the order probed.
    libraries: Vec<String>,
}

impl TlsProbes {
    /// Loads the programs and probes the system's libraries.
    pub fn load(ebpf: &mut Ebpf) -> Result<Self, CaptureError> {
        let names = FUNCTIONS
            .iter()
            .map(|f| entry_program(f.name))
            .chain([RETURN_PROGRAM, HANDSHAKE_PROGRAM, HANDSHAKE_RETURN_PROGRAM].map(String::from));
        for name in names {
            let program = uprobe(ebpf, &name)?;
            program.load().map_err(|source| CaptureError::Program {
                program: "tls",
                source,
            })?;
        }
        let mut probes = TlsProbes::default();
        for dir in SYSTEM_DIRS {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                probes.probe_file(ebpf, &path)?;
            }
        }
        Ok(probes)
    }

    /// Probes the libraries process `pid` has mapped that are not probed yet. A process
    /// that is gone, or whose maps cannot be read, has nothing more to probe.
    pub fn probe_process(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<(), CaptureError> {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return Ok(());
        };
        let mut seen = HashSet::new();
        for line in maps.lines() {
            // address perms offset dev inode path
            let mut fields = line.split_whitespace();
            let (Some(inode), Some(path)) = (fields.nth(4), fields.next()) else {
                continue;
            };
            if !path.starts_with('/') || !seen.insert(path) {
                continue;
            }
            let Some(name) = Path::new(path).file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if library_of(name).is_none() {
                continue;
            }
            // The path as the process sees it; through its root when that is another file
            // here (a container's mount namespace).
            let same = std::fs::metadata(path).is_ok_and(|m| m.ino().to_string() == inode);
            let path = if same {
                path.to_string()
            } else {
                format!("/proc/{pid}/root{path}")
            };
            self.probe_file(ebpf, Path::new(&path))?;
        }
        Ok(())
    }

    /// The libraries probed: "openssl /usr/lib/x86_64-linux-gnu/libssl.so.3", ...
    pub fn libraries(&self) -> &[String] {
        &self.libraries
    }

    /// Probes one file if it is a library of [`LIBRARIES`] not probed yet. A function the
    /// library does not export (`SSL_write_ex` before OpenSSL 1.1.1) is skipped; a file with
    /// none of them is not counted as probed.
    fn probe_file(&mut self, ebpf: &mut Ebpf, path: &Path) -> Result<(), CaptureError> {
        let Some(library) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(library_of)
        else {
            return Ok(());
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        if !meta.is_file() || !self.files.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let mut attached = 0;
        for function in FUNCTIONS.iter().filter(|f| f.library == library) {
            let entry = entry_program(function.name);
            if attach_function(ebpf, function.name, path, &entry, RETURN_PROGRAM)? {
                attached += 1;
            }
        }
        if attached == 0 {
            return Ok(());
        }
        for (function, _) in HANDSHAKES.iter().filter(|(_, l)| *l == library) {
            let programs = (HANDSHAKE_PROGRAM, HANDSHAKE_RETURN_PROGRAM);
            attach_function(ebpf, function, path, programs.0, programs.1)?;
        }
        self.libraries.push(format!("{library} {}", path.display()));
        tracing::debug!(library, path = %path.display(), attached, "TLS library probed.");
        Ok(())
    }
}

/// Attaches the `entry` and `exit` programs to `function` in the file at `path`; false if the
/// file does not export it.
fn attach_function(
    ebpf: &mut Ebpf,
    function: &str,
    path: &Path,
    entry: &str,
    exit: &str,
) -> Result<bool, CaptureError> {
    let error = |source| CaptureError::Attach {
        program: "tls",
        hook: format!("uprobe {}:{function}", path.display()),
        source,
    };
    let id = match uprobe(ebpf, entry)?.attach(function, path, UProbeScope::AllProcesses) {
        Ok(id) => id,
        Err(ProgramError::UProbeError(aya::programs::uprobe::UProbeError::SymbolError {
            ..
        })) => return Ok(false),
        Err(source) => return Err(error(source)),
    };
    let returned = uprobe(ebpf, exit)?.attach(function, path, UProbeScope::AllProcesses);
    if let Err(source) = returned {
        // An entry without its return would only fill TLS_CALLS.
        let _ = uprobe(ebpf, entry)?.detach(id);
        return Err(error(source));
    }
    Ok(true)
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut UProbe, CaptureError> {
    let missing = CaptureError::Missing { name: "tls" };
    ebpf.program_mut(name)
        .ok_or(missing)?
        .try_into()
        .map_err(|source| CaptureError::Program {
            program: "tls",
            source,
        })
}
