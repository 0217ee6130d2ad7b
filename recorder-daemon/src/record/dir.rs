//! The output directory: created 0700, refused when others could tamper with it, and the
//! only way segment files are created (0600, O_EXCL | O_NOFOLLOW, relative to its fd).

use std::{
    ffi::CString,
    fs::{DirBuilder, File},
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::DirBuilderExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DirError {
    #[error("cannot create output directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open output directory {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("output directory {path} is a symlink: pass the real directory")]
    Symlink { path: PathBuf },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("output directory {path} is writable by group or others (mode {mode:o}): run `chmod 700 {path}`")]
    Writable { path: PathBuf, mode: u32 },
    #[error("output directory {path} belongs to uid {owner}, not to this user: pick a directory of your own")]
    Owner { path: PathBuf, owner: u32 },
    #[error("cannot create {name} in {dir}: {source}")]
    CreateFile {
        dir: PathBuf,
        name: String,
        source: io::Error,
    },
}

/// An opened, checked output directory.
pub struct OutputDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl OutputDir {
    /// Creates `path` (and missing parents) with mode 0700, or checks the existing directory.
    pub fn open_or_create(path: &Path) -> Result<Self, DirError> {
        match std::fs::symlink_metadata(path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(|source| DirError::Create {
                        path: path.to_owned(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(DirError::Open {
                    path: path.to_owned(),
                    source,
                })
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(DirError::Symlink {
                    path: path.to_owned(),
                })
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(DirError::NotADirectory {
                    path: path.to_owned(),
                })
            }
            Ok(_) => {}
        }
        let fd = open_dir(path)?;
        let meta = File::from(fd.try_clone().map_err(|source| DirError::Open {
            path: path.to_owned(),
            source,
        })?)
        .metadata()
        .map_err(|source| DirError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(DirError::Writable {
                path: path.to_owned(),
                mode,
            });
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(DirError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
            });
        }
        Ok(OutputDir {
            path: path.to_owned(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new file 0600 in this directory; never follows a symlink or reuses a name.
    pub fn create_file(&self, name: &str) -> Result<File, DirError> {
        let error = |source| DirError::CreateFile {
            dir: self.path.clone(),
            name: name.to_owned(),
            source,
        };
        let c_name = CString::new(name).map_err(|_| error(io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: the directory fd is open for our lifetime and the name is NUL-terminated.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c_name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(error(io::Error::last_os_error()));
        }
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Makes created and renamed entries durable.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: the fd is a valid open directory.
        if unsafe { libc::fsync(self.fd.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, DirError> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| DirError::Open {
        path: path.to_owned(),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    // SAFETY: the path is NUL-terminated; O_NOFOLLOW refuses a symlink swapped in after the check.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(DirError::Open {
            path: path.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_0700_directories_and_0600_files() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("a/b");
        let dir = OutputDir::open_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        dir.create_file("x.rcd").unwrap();
        let mode = std::fs::metadata(path.join("x.rcd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            dir.create_file("x.rcd"),
            Err(DirError::CreateFile { .. })
        ));
    }

    #[test]
    fn refuses_writable_directories_and_symlinks() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            OutputDir::open_or_create(&open),
            Err(DirError::Writable { .. })
        ));
        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).unwrap();
        assert!(matches!(
            OutputDir::open_or_create(&link),
            Err(DirError::Symlink { .. })
        ));
    }
}
