//! What each file descriptor of each recorded process refers to, kept true by the events
//! themselves (each syscall's `Effect` in recorder-syscalls' table) and seeded from /proc
//! the first time a process is seen, so fds opened before the attach name their file, or
//! their socket's family, type and addresses. A forked child starts with its parent's table.

use std::collections::HashMap;

use procfs::process::{FDTarget, Process};
use recorder_proto::v1::{resource::Kind, Event, Resource, SocketAddress};
use recorder_syscalls::Effect;
use rustc_hash::FxHashMap;

use self::sockets::{bound_address, has_port, is_inet, proc_sockets};
use super::{effect_of, spare::Spare};

mod sockets;

type Fds = FxHashMap<i64, Descriptor>;

/// What one descriptor number refers to. Events come in the order they end, but a close
/// frees its number when it begins: another thread's open can reuse the number, and have
/// its event seen, before that close's event is. So the table keeps the number's previous
/// resource until that close is seen, and names each event by what the number referred to
/// when the event began.
#[derive(Clone)]
struct Descriptor {
    resource: Resource,
    /// When the syscall that made it ended (CLOCK_MONOTONIC); 0 when read from /proc.
    opened_ns: u64,
    /// What the number referred to before, while no close of it has been seen.
    earlier: Option<Resource>,
}

impl Descriptor {
    fn new(resource: Resource) -> Self {
        Descriptor {
            resource,
            opened_ns: 0,
            earlier: None,
        }
    }

    /// What the number referred to for a syscall that began at `entered_ns`.
    fn at(&self, entered_ns: u64) -> &Resource {
        match &self.earlier {
            Some(earlier) if entered_ns < self.opened_ns => earlier,
            _ => &self.resource,
        }
    }
}

/// `fd` now refers to `resource`, made by a syscall that ended at `opened_ns`.
fn install(fds: &mut Fds, fd: i64, resource: Resource, opened_ns: u64) {
    let earlier = fds.remove(&fd).map(|replaced| replaced.resource);
    fds.insert(
        fd,
        Descriptor {
            resource,
            opened_ns,
            earlier,
        },
    );
}

#[derive(Default)]
pub struct FdTable {
    processes: FxHashMap<u32, Fds>,
}

impl FdTable {
    /// Records what `pid`'s descriptors refer to right now. A process that is gone seeds an
    /// empty table: its fds are then "unknown", never guessed.
    pub fn seed(&mut self, pid: u32) {
        self.processes.insert(pid, read_proc(pid));
    }

    /// A new process starts with a copy of its parent's descriptors.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let fds = self.processes.get(&parent).cloned().unwrap_or_default();
        self.processes.insert(child, fds);
    }

    /// The process ended; its descriptors with it.
    pub fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
    }

    /// Names the resource behind `event.fd`, then applies what the event did to the table
    /// (its row's `Effect`).
    pub fn apply(&mut self, event: &mut Event, spare: &mut Spare) {
        if !self.processes.contains_key(&event.pid) {
            // First sight of a process recorded by cgroup: read what it has open.
            self.seed(event.pid);
        }
        let fds = self.processes.entry(event.pid).or_default();
        let effect = effect_of(event);
        let succeeded = event.ret >= 0;
        let (entered_ns, ended_ns) = (entered_ns(event), event.mono_ns);
        match effect {
            Effect::MakesPipe | Effect::MakesSocketPair if succeeded => {
                for (i, &fd) in event.new_fds.iter().enumerate() {
                    install(fds, fd, new_pair_end(event, effect, i), ended_ns);
                }
                return;
            }
            _ if event.fd < 0 => return,
            Effect::Opens if succeeded => {
                install(fds, event.fd, file(event.path.clone()), ended_ns);
            }
            Effect::NewSocket if succeeded => {
                let mut socket = socket(None);
                socket.socket_family = event.args.first().map_or(0, |&a| a as u32);
                socket.socket_type = event.args.get(1).map_or(0, |&t| t as u32 & SOCK_TYPE_MASK);
                install(fds, event.fd, socket, ended_ns);
            }
            Effect::Accepts if succeeded => {
                // The new connection shares the listener's family, type and local address.
                let listener = event
                    .args
                    .first()
                    .and_then(|&fd| fds.get(&(fd as i32).into()))
                    .map(|listener| listener.at(entered_ns));
                let mut connection = socket(event.address.clone());
                if let Some(listener) = listener {
                    connection.local = listener.local.clone();
                    connection.socket_family = listener.socket_family;
                    connection.socket_type = listener.socket_type;
                }
                install(fds, event.fd, connection, ended_ns);
            }
            // The new descriptor refers to what the old one did.
            Effect::Dups if succeeded => duplicate(fds, event.fd, event.ret, entered_ns, ended_ns),
            Effect::DupsOnDupfd if succeeded && is_dupfd(event.args.get(1)) => {
                duplicate(fds, event.fd, event.ret, entered_ns, ended_ns)
            }
            _ => {}
        }
        let entry = || Descriptor::new(socket(None));
        match effect {
            Effect::Connects if succeeded || event.ret == -i64::from(libc::EINPROGRESS) => {
                let entry = &mut fds.entry(event.fd).or_insert_with(entry).resource;
                entry.kind = Kind::Socket.into();
                entry.peer = event.address.clone();
                if !has_port(entry.local.as_ref()) && is_inet(event.address.as_ref()) {
                    // The kernel chose the local port; only the socket knows it.
                    let peer = event.address.as_ref();
                    entry.local = bound_address(event.pid, event.fd, entry.socket_type, None, peer)
                        .or(entry.local.take());
                }
            }
            // What the kernel says of the socket, as the program asked it.
            Effect::NamesLocal | Effect::NamesPeer
                if succeeded && is_inet(event.address.as_ref()) =>
            {
                let entry = &mut fds.entry(event.fd).or_insert_with(entry).resource;
                entry.kind = Kind::Socket.into();
                if effect == Effect::NamesLocal {
                    entry.local = event.address.clone();
                } else {
                    entry.peer = event.address.clone();
                }
            }
            Effect::Binds if succeeded => {
                let entry = &mut fds.entry(event.fd).or_insert_with(entry).resource;
                entry.kind = Kind::Socket.into();
                entry.local = event.address.clone();
                if !has_port(entry.local.as_ref()) && is_inet(event.address.as_ref()) {
                    // bind(…:0): the kernel chose the port.
                    let bound = event.address.as_ref();
                    entry.local =
                        bound_address(event.pid, event.fd, entry.socket_type, bound, None)
                            .or(entry.local.take());
                }
            }
            _ => {}
        }
        let Some(descriptor) = fds.get_mut(&event.fd) else {
            event.resource = Some(spare.resource(&unknown()));
            return;
        };
        // What a syscall makes is named by what it made, whenever it began.
        let resource = match made_fds(event, effect).any(|fd| fd == event.fd) {
            true => &descriptor.resource,
            false => descriptor.at(entered_ns),
        };
        event.resource = Some(spare.resource(resource));
        if effect == Effect::Closes {
            if entered_ns < descriptor.opened_ns && descriptor.earlier.is_some() {
                // This close was of the number's earlier resource: the one it has now stays.
                descriptor.earlier = None;
            } else {
                fds.remove(&event.fd);
            }
        }
    }
}

/// When `event`'s syscall began (CLOCK_MONOTONIC).
pub fn entered_ns(event: &Event) -> u64 {
    event.mono_ns.saturating_sub(event.duration_ns)
}

/// The descriptors `event` (whose row's effect is `effect`) made: their numbers no longer
/// refer to what they did before.
pub fn made_fds(event: &Event, effect: Effect) -> impl Iterator<Item = i64> + '_ {
    let succeeded = event.ret >= 0 && (event.fd >= 0 || !event.new_fds.is_empty());
    let (pair, one): (&[i64], _) = match effect {
        Effect::MakesPipe | Effect::MakesSocketPair if succeeded => (&event.new_fds, None),
        Effect::Opens | Effect::NewSocket | Effect::Accepts if succeeded => (&[], Some(event.fd)),
        // dup2(fd, fd) does nothing and returns fd.
        Effect::Dups if succeeded && event.ret != event.fd => (&[], Some(event.ret)),
        Effect::DupsOnDupfd if succeeded && is_dupfd(event.args.get(1)) => (&[], Some(event.ret)),
        _ => (&[], None),
    };
    pair.iter().copied().chain(one)
}

/// `SOCK_NONBLOCK` and `SOCK_CLOEXEC` share socket(2)'s type argument; the type is below them.
const SOCK_TYPE_MASK: u32 = 0xf;

fn duplicate(fds: &mut Fds, old: i64, new: i64, entered_ns: u64, ended_ns: u64) {
    let resource = fds
        .get(&old)
        .map_or_else(unknown, |old| old.at(entered_ns).clone());
    install(fds, new, resource, ended_ns);
}

fn is_dupfd(cmd: Option<&u64>) -> bool {
    cmd.is_some_and(|&cmd| cmd as i32 == libc::F_DUPFD || cmd as i32 == libc::F_DUPFD_CLOEXEC)
}

/// One end of a new pipe (read end first) or socket pair.
fn new_pair_end(event: &Event, effect: Effect, index: usize) -> Resource {
    if effect == Effect::MakesSocketPair {
        let mut end = socket(None);
        end.name = "socketpair".to_owned();
        end.socket_family = event.args.first().map_or(0, |&a| a as u32);
        end.socket_type = event.args.get(1).map_or(0, |&t| t as u32 & SOCK_TYPE_MASK);
        end
    } else {
        let end = if index == 0 { "read end" } else { "write end" };
        other(Kind::Pipe, format!("pipe ({end})"))
    }
}

/// The process's descriptors as /proc shows them; sockets are looked up by inode in the
/// process's network namespace tables.
fn read_proc(pid: u32) -> Fds {
    let Ok(process) = Process::new(pid as i32) else {
        return Fds::default();
    };
    let Ok(fds) = process.fd() else {
        return Fds::default();
    };
    let mut sockets: Option<HashMap<u64, Resource>> = None;
    fds.flatten()
        .map(|fd| {
            let resource = match fd.target {
                FDTarget::Path(path) => file(path.to_string_lossy().into_owned()),
                FDTarget::Socket(inode) => sockets
                    .get_or_insert_with(|| proc_sockets(&process))
                    .get(&inode)
                    .cloned()
                    .unwrap_or_else(|| other(Kind::Socket, format!("socket:[{inode}]"))),
                FDTarget::Pipe(inode) => other(Kind::Pipe, format!("pipe:[{inode}]")),
                FDTarget::AnonInode(name) => other(Kind::Other, format!("anon_inode:{name}")),
                FDTarget::MemFD(name) => other(Kind::Other, format!("memfd:{name}")),
                FDTarget::Net(inode) => other(Kind::Other, format!("net:[{inode}]")),
                FDTarget::Other(kind, inode) => other(Kind::Other, format!("{kind}:[{inode}]")),
                FDTarget::Unknown(kind, inode) => other(Kind::Other, format!("{kind}:[{inode}]")),
            };
            (i64::from(fd.fd), Descriptor::new(resource))
        })
        .collect()
}

fn file(path: String) -> Resource {
    Resource {
        kind: Kind::File.into(),
        name: path,
        ..Resource::default()
    }
}

fn socket(peer: Option<SocketAddress>) -> Resource {
    Resource {
        kind: Kind::Socket.into(),
        name: "socket".to_owned(),
        peer,
        ..Resource::default()
    }
}

fn other(kind: Kind, name: String) -> Resource {
    Resource {
        kind: kind.into(),
        name,
        ..Resource::default()
    }
}

fn unknown() -> Resource {
    Resource::default()
}

#[cfg(test)]
mod tests;
