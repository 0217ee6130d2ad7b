//! The output directory: created 0700 (or 0750 for a reader group), refused when others could
//! tamper with it or when it is reached through a symlink, and the only way segment files are
//! created (0600 or 0640, O_EXCL | O_NOFOLLOW, relative to its fd, flock-ed while written).

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::fd::{AsFd, OwnedFd},
    path::{Component, Path, PathBuf},
};

use rustix::{
    fs::{self as fsys, AtFlags, FileType, FlockOperation, Gid, Mode, OFlags, Stat, CWD},
    io::Errno,
    process::geteuid,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DirError {
    #[error("cannot create output directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot open output directory {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("output directory {path} is reached through the symlink {link}: pass the real path (`realpath {path}`)")]
    Symlink { path: PathBuf, link: PathBuf },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("output directory {path} is writable by group or others (mode {mode:o}): run `chmod {wanted:o} {path}`")]
    Writable {
        path: PathBuf,
        mode: u32,
        wanted: u32,
    },
    #[error("output directory {path} belongs to uid {owner}, not to this user (uid {euid}): pick a directory of your own, or `chown {euid} {path}`")]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("cannot give {path} to group {gid} (is this user a member of it?): {source}")]
    Chown {
        path: PathBuf,
        gid: u32,
        source: io::Error,
    },
    #[error("cannot set the mode of {path}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("reader group `{group}` does not exist: create it (`groupadd {group}`) or fix `reader_group` in [storage]")]
    UnknownGroup { group: String },
    #[error("cannot create {name} in {dir}: {source}")]
    CreateFile {
        dir: PathBuf,
        name: String,
        source: io::Error,
    },
}

/// Who may read recordings besides their owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Members of this group may read (directory 0750, files 0640); `None`: owner only.
    pub group: Option<u32>,
}

impl Access {
    pub fn dir_mode(&self) -> u32 {
        if self.group.is_some() {
            0o750
        } else {
            0o700
        }
    }

    pub fn file_mode(&self) -> u32 {
        if self.group.is_some() {
            0o640
        } else {
            0o600
        }
    }
}

/// The segment files in `dir`, by name: regular files ending in `.rcd`, with their metadata.
/// A symlink is never followed. Listing, sweeping and resolving ids all start here.
pub fn segment_files(dir: &Path) -> io::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path
            .extension()
            .is_none_or(|ext| ext != crate::segment::EXTENSION)
        {
            continue;
        }
        // DirEntry::metadata does not follow symlinks.
        match entry.metadata() {
            Ok(meta) if meta.is_file() => files.push((path, meta)),
            _ => {}
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The gid of group `name`.
pub fn group_id(name: &str) -> Result<u32, DirError> {
    crate::accounts::group_id(name).ok_or_else(|| DirError::UnknownGroup {
        group: name.to_owned(),
    })
}

/// An opened, checked output directory.
pub struct OutputDir {
    path: PathBuf,
    fd: OwnedFd,
    access: Access,
}

impl OutputDir {
    /// Creates `path` (and missing parents) 0700, or checks the existing directory.
    pub fn open_or_create(path: &Path) -> Result<Self, DirError> {
        Self::open_or_create_with(path, &Access::default())
    }

    /// Creates `path` (and missing parents) with `access`, or checks the existing directory
    /// and gives it the wanted group and mode.
    pub fn open_or_create_with(path: &Path, access: &Access) -> Result<Self, DirError> {
        let fd = walk(path, Some(access))?;
        let stat = fsys::fstat(&fd).map_err(|errno| DirError::Open {
            path: path.to_owned(),
            source: errno.into(),
        })?;
        check_safe(path, &stat, access.dir_mode())?;
        if let Some(gid) = access.group.filter(|&gid| gid != stat.st_gid) {
            tracing::info!(path = %path.display(), from = stat.st_gid, to = gid, "Output directory given to the reader group.");
        }
        if stat.st_mode & 0o7777 != access.dir_mode() {
            tracing::info!(path = %path.display(), from = format!("{:o}", stat.st_mode & 0o7777), to = format!("{:o}", access.dir_mode()), "Output directory mode fixed.");
        }
        apply_access(&fd, access, access.dir_mode(), path)?;
        Ok(OutputDir {
            path: path.to_owned(),
            fd,
            access: *access,
        })
    }

    /// Opens an existing directory (never creating it) with the checks of
    /// `open_or_create_with`; files created in it get the group its mode lets read.
    pub fn open_existing(path: &Path) -> Result<Self, DirError> {
        let fd = walk(path, None)?;
        let stat = fsys::fstat(&fd).map_err(|errno| DirError::Open {
            path: path.to_owned(),
            source: errno.into(),
        })?;
        let access = Access {
            group: (stat.st_mode & 0o050 != 0).then_some(stat.st_gid),
        };
        check_safe(path, &stat, access.dir_mode())?;
        Ok(OutputDir {
            path: path.to_owned(),
            fd,
            access,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// Creates a new file (0600, or 0640 for the reader group) in this directory; never
    /// follows a symlink or reuses a name. The file is flock-ed exclusively for as long as
    /// the returned `File` (or a clone of its descriptor) is open: that is how the retention
    /// sweeper tells a recording being written (`is_locked`).
    pub fn create_file(&self, name: &str) -> Result<File, DirError> {
        let error = |source| DirError::CreateFile {
            dir: self.path.clone(),
            name: name.to_owned(),
            source,
        };
        let mode = self.access.file_mode();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = File::from(
            fsys::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
                .map_err(|errno| error(errno.into()))?,
        );
        // Blocking, not LOCK_NB: the only other holder of a lock on a file this new is the
        // sweeper's momentary probe, which lets go at once.
        let locked = apply_access(&file, &self.access, mode, &self.path.join(name))
            .map_err(|e| error(io::Error::other(e.to_string())))
            .and_then(|()| {
                fsys::flock(&file, FlockOperation::LockExclusive)
                    .map_err(|errno| error(errno.into()))
            });
        if let Err(error) = locked {
            let _ = self.remove_file(name);
            return Err(error);
        }
        Ok(file)
    }

    /// Removes `name` from this directory (never following a symlink to elsewhere).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        Ok(fsys::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Makes created and renamed entries durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(fsys::fsync(&self.fd)?)
    }
}

/// Whether some process holds a lock on the file at `path`: for a segment, whether its
/// writer is still writing it (`OutputDir::create_file`). A writer that died holds none.
pub fn is_locked(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    match fsys::flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            fsys::flock(&file, FlockOperation::Unlock)?;
            Ok(false)
        }
        Err(Errno::WOULDBLOCK) => Ok(true),
        Err(errno) => Err(errno.into()),
    }
}

/// Refuses a directory others could tamper with: not ours, or writable by group or others.
fn check_safe(path: &Path, stat: &Stat, wanted_mode: u32) -> Result<(), DirError> {
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(DirError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let euid = geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(DirError::Owner {
            path: path.to_owned(),
            owner: stat.st_uid,
            euid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DirError::Writable {
            path: path.to_owned(),
            mode,
            wanted: wanted_mode,
        });
    }
    Ok(())
}

/// Gives `fd` the access's group and exactly `mode`. Done on the descriptor, after creation:
/// the mode passed to mkdirat/openat is cut by the umask (a service runs with 0077).
fn apply_access(fd: impl AsFd, access: &Access, mode: u32, path: &Path) -> Result<(), DirError> {
    if let Some(gid) = access.group {
        // No uid: the owner stays.
        fsys::fchown(&fd, None, Some(Gid::from_raw(gid))).map_err(|errno| DirError::Chown {
            path: path.to_owned(),
            gid,
            source: errno.into(),
        })?;
    }
    fsys::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|errno| DirError::Chmod {
        path: path.to_owned(),
        source: errno.into(),
    })
}

/// Opens `path` one component at a time with O_NOFOLLOW, so a symlink anywhere on the way is
/// refused (not only in the last component). With `create`, missing components are made
/// with that access.
fn walk(path: &Path, create: Option<&Access>) -> Result<OwnedFd, DirError> {
    let open_error = |at: &Path, source| DirError::Open {
        path: at.to_owned(),
        source,
    };
    let start = if path.is_absolute() { "/" } else { "." };
    let mut current = open_dir_at(CWD, start.as_ref()).map_err(|e| open_error(path, e))?;
    let mut so_far = PathBuf::from(if path.is_absolute() { "/" } else { "" });
    for component in path.components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::ParentDir => "..".as_ref(),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        so_far.push(name);
        current = match open_dir_at(&current, name) {
            Ok(fd) => fd,
            Err(error) if error.kind() == io::ErrorKind::NotFound && create.is_some() => {
                let access = create.expect("checked by the guard");
                make_dir_at(&current, name).map_err(|source| DirError::Create {
                    path: so_far.clone(),
                    source,
                })?;
                let fd = open_dir_at(&current, name).map_err(|e| open_error(&so_far, e))?;
                apply_access(&fd, access, access.dir_mode(), &so_far)?;
                fd
            }
            Err(error)
                if matches!(
                    Errno::from_io_error(&error),
                    Some(Errno::LOOP | Errno::NOTDIR)
                ) =>
            {
                return Err(if is_symlink_at(&current, name) {
                    DirError::Symlink {
                        path: path.to_owned(),
                        link: so_far,
                    }
                } else {
                    DirError::NotADirectory { path: so_far }
                });
            }
            Err(error) => return Err(open_error(&so_far, error)),
        };
    }
    Ok(current)
}

fn open_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(fsys::openat(dir, name, flags, Mode::empty())?)
}

fn make_dir_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    // 0700 until `apply_access` sets the wanted mode, so it is never wider than wanted.
    match fsys::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        // Someone made it in between: it is checked like any existing directory.
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

fn is_symlink_at(dir: &OwnedFd, name: &OsStr) -> bool {
    fsys::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn gid(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().gid()
    }

    /// Changing owners and groups needs root; CI runs unit tests as root.
    fn is_root() -> bool {
        let root = geteuid().is_root();
        if !root {
            eprintln!("SKIPPED: this test changes file owners and needs root");
        }
        root
    }

    #[test]
    fn creates_0700_directories_and_0600_files() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("a/b");
        let dir = OutputDir::open_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&base.path().join("a")), 0o700, "parents we make too");
        dir.create_file("x.rcd").unwrap();
        assert_eq!(mode(&path.join("x.rcd")), 0o600);
        assert!(matches!(
            dir.create_file("x.rcd"),
            Err(DirError::CreateFile { .. })
        ));
    }

    #[test]
    fn a_reader_group_gets_0750_and_0640() {
        if !is_root() {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("r");
        let access = Access { group: Some(65534) };
        let dir = OutputDir::open_or_create_with(&path, &access).unwrap();
        assert_eq!((mode(&path), gid(&path)), (0o750, 65534));
        dir.create_file("x.rcd").unwrap();
        assert_eq!(
            (mode(&path.join("x.rcd")), gid(&path.join("x.rcd"))),
            (0o640, 65534)
        );
        // Opened again without it, it is made private again; open_existing keeps the group.
        let existing = OutputDir::open_existing(&path).unwrap();
        assert_eq!(existing.access(), access);
        OutputDir::open_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
    }

    #[test]
    fn an_existing_directory_with_a_wider_mode_is_narrowed() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("r");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        OutputDir::open_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
    }

    #[test]
    fn refuses_writable_directories_and_symlinks_anywhere_on_the_path() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = OutputDir::open_or_create(&open).err().unwrap();
        assert!(matches!(error, DirError::Writable { .. }), "{error}");
        assert!(error.to_string().contains("chmod 700"), "{error}");
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for path in [link.clone(), link.join("rec"), link.join("rec/deeper")] {
            match OutputDir::open_or_create(&path) {
                Err(DirError::Symlink { link: at, .. }) => assert_eq!(at, link),
                other => panic!("{path:?}: {:?}", other.err()),
            }
        }
        assert_eq!(
            std::fs::read_dir(&real).unwrap().count(),
            0,
            "nothing made through the link"
        );
        let file = base.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            OutputDir::open_or_create(&file.join("r")),
            Err(DirError::NotADirectory { .. })
        ));
    }

    #[test]
    fn refuses_a_directory_owned_by_someone_else() {
        if !is_root() {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("theirs");
        std::fs::create_dir(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let error = OutputDir::open_or_create(&path).err().unwrap();
        assert!(
            matches!(error, DirError::Owner { owner: 65534, .. }),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
    }

    #[test]
    fn a_created_file_is_locked_while_open() {
        let base = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&base.path().join("r")).unwrap();
        let file = dir.create_file("s.rcd").unwrap();
        let path = base.path().join("r/s.rcd");
        assert!(is_locked(&path).unwrap());
        // The probe leaves nothing behind: still locked, and unlocked once closed.
        assert!(is_locked(&path).unwrap());
        drop(file);
        assert!(!is_locked(&path).unwrap());
        dir.remove_file("s.rcd").unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn reader_groups_resolve_by_name() {
        assert_eq!(group_id("root").unwrap(), 0);
        let error = group_id("no-such-group-here").unwrap_err().to_string();
        assert!(
            error.contains("`no-such-group-here` does not exist"),
            "{error}"
        );
    }
}
