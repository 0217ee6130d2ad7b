//! The control socket: created 0660 for the configured group (0600 without one), replacing
//! a stale socket but never a live one, and the peer check made on every connection.

use std::{
    io,
    os::{
        fd::AsRawFd,
        unix::fs::{FileTypeExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use thiserror::Error;
use tokio::net::{UnixListener, UnixStream};

/// SO_PEERGROUPS from asm-generic/socket.h (x86_64 and arm64 alike); libc lacks it.
const SO_PEERGROUPS: libc::c_int = 59;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("another recorderd is already listening on {path}: stop it first (`systemctl stop recorderd`)")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket: move it away or set [control] socket")]
    NotASocket { path: PathBuf },
    #[error("cannot create the control socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Who is on the other end of a control connection, as the kernel vouches for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// Listens on `path`: mode 0660 and group `group` when set, else 0600 (root only).
pub fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, SocketError> {
    let bind_error = |source| SocketError::Bind {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(SocketError::NotASocket {
                path: path.to_owned(),
            })
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_owned(),
                });
            }
            // Left by a recorderd that did not stop cleanly.
            std::fs::remove_file(path).map_err(bind_error)?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(bind_error(error)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        // Members must pass through to the socket; nobody but root may list the directory.
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(parent)
            .map_err(bind_error)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711))
            .map_err(bind_error)?;
    }
    // The service's umask is 0077, so the socket is born 0600 and only then opened up.
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(bind_error)?;
    }
    Ok(listener)
}

/// Lets in root and members of `group` (by primary or supplementary gid); says why not.
pub fn authorize(stream: &UnixStream, group: Option<u32>) -> Result<Peer, String> {
    let cred = stream
        .peer_cred()
        .map_err(|error| format!("cannot read the peer's credentials: {error}"))?;
    let peer = Peer {
        uid: cred.uid(),
        pid: cred.pid(),
    };
    if peer.uid == 0 {
        return Ok(peer);
    }
    let Some(gid) = group else {
        return Err("the control socket is for root only (no [control] group is set)".to_owned());
    };
    if cred.gid() == gid || peer_groups(stream).is_ok_and(|groups| groups.contains(&gid)) {
        return Ok(peer);
    }
    Err(format!(
        "{} is not in the control group (gid {gid})",
        recorder_store::accounts::describe_user(peer.uid)
    ))
}

/// The supplementary groups the peer had when it connected. (Neither rustix nor nix wraps
/// SO_PEERGROUPS, hence the raw getsockopt.)
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: the buffer is `len` bytes long and the fd is a connected unix socket.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    Ok(groups)
}
