//! What each file descriptor of each recorded process refers to, kept true by the events
//! themselves (open, socket, accept, connect, close) and seeded from /proc at attach time.

use std::collections::HashMap;

use procfs::process::{FDTarget, Process};
use recorder_proto::v1::{resource::Kind, Event, Resource, SocketAddress};

#[derive(Default)]
pub struct FdTable {
    fds: HashMap<(u32, i64), Resource>,
}

impl FdTable {
    /// Records what `pid`'s descriptors refer to right now, so events on fds opened before the
    /// attach name their file or socket. A process that is gone seeds nothing.
    pub fn seed(&mut self, pid: u32) {
        let Ok(fds) = Process::new(pid as i32).and_then(|process| process.fd()) else {
            return;
        };
        for fd in fds.flatten() {
            let resource = match fd.target {
                FDTarget::Path(path) => file(path.to_string_lossy().into_owned()),
                FDTarget::Socket(inode) => other(Kind::Socket, format!("socket:[{inode}]")),
                FDTarget::Pipe(inode) => other(Kind::Pipe, format!("pipe:[{inode}]")),
                FDTarget::AnonInode(name) => other(Kind::Other, format!("anon_inode:{name}")),
                FDTarget::MemFD(name) => other(Kind::Other, format!("memfd:{name}")),
                FDTarget::Net(inode) => other(Kind::Other, format!("net:[{inode}]")),
                FDTarget::Other(kind, inode) => other(Kind::Other, format!("{kind}:[{inode}]")),
                FDTarget::Unknown(kind, inode) => other(Kind::Other, format!("{kind}:[{inode}]")),
            };
            self.fds.insert((pid, i64::from(fd.fd)), resource);
        }
    }

    /// Names the resource behind `event.fd`, then applies what the event did to the table.
    pub fn apply(&mut self, event: &mut Event) {
        if event.fd < 0 {
            return;
        }
        let key = (event.pid, event.fd);
        let succeeded = event.ret >= 0;
        match event.syscall.as_str() {
            "open" | "openat" | "openat2" | "creat" if succeeded => {
                self.fds.insert(key, file(event.path.clone()));
            }
            "socket" if succeeded => {
                self.fds
                    .insert(key, other(Kind::Socket, "socket".to_owned()));
            }
            "accept" | "accept4" if succeeded => {
                self.fds.insert(key, socket(event.address.clone()));
            }
            // The new descriptor refers to what the old one did.
            "dup" | "dup2" | "dup3" if succeeded => self.duplicate(event.pid, event.fd, event.ret),
            "fcntl" if succeeded && is_dupfd(event.args.get(1)) => {
                self.duplicate(event.pid, event.fd, event.ret)
            }
            "connect" if succeeded || event.ret == -i64::from(libc::EINPROGRESS) => {
                let entry = self.fds.entry(key).or_insert_with(|| socket(None));
                entry.kind = Kind::Socket.into();
                entry.peer = event.address.clone();
            }
            _ => {}
        }
        event.resource = Some(self.fds.get(&key).cloned().unwrap_or_else(unknown));
        if event.syscall == "close" {
            self.fds.remove(&key);
        }
    }
}

impl FdTable {
    fn duplicate(&mut self, pid: u32, old: i64, new: i64) {
        let resource = self.fds.get(&(pid, old)).cloned().unwrap_or_else(unknown);
        self.fds.insert((pid, new), resource);
    }
}

fn is_dupfd(cmd: Option<&u64>) -> bool {
    cmd.is_some_and(|&cmd| cmd as i32 == libc::F_DUPFD || cmd as i32 == libc::F_DUPFD_CLOEXEC)
}

fn file(path: String) -> Resource {
    Resource {
        kind: Kind::File.into(),
        name: path,
        peer: None,
    }
}

fn socket(peer: Option<SocketAddress>) -> Resource {
    Resource {
        kind: Kind::Socket.into(),
        name: "socket".to_owned(),
        peer,
    }
}

fn other(kind: Kind, name: String) -> Resource {
    Resource {
        kind: kind.into(),
        name,
        peer: None,
    }
}

fn unknown() -> Resource {
    Resource {
        kind: Kind::Unknown.into(),
        name: String::new(),
        peer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(syscall: &str, fd: i64, ret: i64) -> Event {
        Event {
            pid: 1,
            syscall: syscall.to_owned(),
            fd,
            ret,
            ..Event::default()
        }
    }

    #[test]
    fn open_names_the_fd_until_close() {
        let mut table = FdTable::default();
        let mut open = Event {
            path: "/tmp/a".into(),
            ..event("openat", 3, 3)
        };
        table.apply(&mut open);
        let mut write = event("write", 3, 5);
        table.apply(&mut write);
        assert_eq!(write.resource.unwrap().name, "/tmp/a");
        let mut close = event("close", 3, 0);
        table.apply(&mut close);
        assert_eq!(close.resource.unwrap().name, "/tmp/a");
        let mut stale = event("read", 3, -9);
        table.apply(&mut stale);
        assert_eq!(stale.resource.unwrap().kind(), Kind::Unknown);
    }

    #[test]
    fn connect_sets_the_peer_and_seed_reads_proc() {
        let mut table = FdTable::default();
        let peer = SocketAddress {
            family: 2,
            ip: vec![127, 0, 0, 1],
            port: 80,
            ..Default::default()
        };
        let mut connect = Event {
            address: Some(peer.clone()),
            ..event("connect", 4, 0)
        };
        table.apply(&mut connect);
        assert_eq!(connect.resource.unwrap().peer, Some(peer));

        let file = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        table.seed(std::process::id());
        let mut read = Event {
            pid: std::process::id(),
            ..event("read", fd.into(), 0)
        };
        table.apply(&mut read);
        assert_eq!(read.resource.unwrap().kind(), Kind::File);
    }
}
