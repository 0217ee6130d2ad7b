//! What each file descriptor of each recorded process refers to, kept true by the events
//! themselves (each syscall's `Effect` in recorder-syscalls' table) and seeded from /proc
//! the first time a process is seen, so fds opened before the attach name their file, or
//! their socket's family, type and addresses. A forked child starts with its parent's table.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use procfs::process::{FDTarget, Process};
use recorder_proto::v1::{resource::Kind, Event, Resource, SocketAddress};
use recorder_syscalls::Effect;
use rustc_hash::FxHashMap;

use super::{effect_of, spare::Spare};

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
            event.resource = Some(unknown());
            return;
        };
        // What a syscall makes is named by what it made, whenever it began.
        let resource = match made_fds(event).any(|fd| fd == event.fd) {
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

/// The descriptors `event` made: their numbers no longer refer to what they did before.
pub fn made_fds(event: &Event) -> impl Iterator<Item = i64> + '_ {
    let succeeded = event.ret >= 0 && (event.fd >= 0 || !event.new_fds.is_empty());
    let (pair, one): (&[i64], _) = match effect_of(event) {
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

fn is_inet(address: Option<&SocketAddress>) -> bool {
    address.is_some_and(|a| a.family == libc::AF_INET as u32 || a.family == libc::AF_INET6 as u32)
}

fn has_port(address: Option<&SocketAddress>) -> bool {
    address.is_some_and(|a| a.port != 0)
}

/// The local address the kernel gave `pid`'s inet socket `fd` (after connect, or bind to
/// port 0). The socket itself answers, borrowed with pidfd_getfd (CAP_SYS_PTRACE, which
/// recorderd keeps after attach) for getsockname: the only way to see a TCP socket that is
/// bound but not listening yet. Where that is refused (Yama's ptrace_scope 3), /proc's
/// tables by the fd's inode. `None` when the socket is already closed; and when the
/// descriptor now names another socket (closed and reused since the event: its bound IP or
/// its peer differs), so a port is never guessed.
fn bound_address(
    pid: u32,
    fd: i64,
    socket_type: u32,
    bound: Option<&SocketAddress>,
    peer: Option<&SocketAddress>,
) -> Option<SocketAddress> {
    let fd = i32::try_from(fd).ok()?;
    let (local, actual_peer) = match borrowed_socket_names(pid, fd) {
        Some(names) => names,
        None => (proc_local_address(pid, fd, socket_type)?, None),
    };
    let local = inet_address(local)?;
    let same_ip =
        |expected: &SocketAddress| expected.ip.iter().all(|&b| b == 0) || expected.ip == local.ip;
    let same_peer = |expected: &SocketAddress| {
        actual_peer
            .and_then(inet_address)
            .is_none_or(|actual| actual.ip == expected.ip && actual.port == expected.port)
    };
    (bound.is_none_or(same_ip) && peer.is_none_or(same_peer)).then_some(local)
}

/// getsockname and getpeername of `pid`'s descriptor `fd`, through a duplicate of it.
fn borrowed_socket_names(pid: u32, fd: i32) -> Option<(SocketAddr, Option<SocketAddr>)> {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let pidfd = pidfd_open(Pid::from_raw(pid as i32)?, PidfdFlags::empty()).ok()?;
    let socket = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).ok()?;
    let local = SocketAddr::try_from(rustix::net::getsockname(&socket).ok()?).ok()?;
    // Not connected yet (a non-blocking connect in progress) is not a different peer.
    let peer = rustix::net::getpeername(&socket)
        .ok()
        .flatten()
        .and_then(|peer| SocketAddr::try_from(peer).ok());
    Some((local, peer))
}

/// The local address of `pid`'s socket `fd` from /proc/PID/net/{tcp,udp}{,6} (only those of
/// the socket's type, when known), found by the fd's inode.
fn proc_local_address(pid: u32, fd: i32, socket_type: u32) -> Option<SocketAddr> {
    let process = Process::new(pid as i32).ok()?;
    let FDTarget::Socket(inode) = process.fd_from_fd(fd).ok()?.target else {
        return None;
    };
    let stream = || {
        let tables = [process.tcp(), process.tcp6()];
        let entries = tables.into_iter().flatten().flatten();
        entries
            .map(|e| (e.inode, e.local_address))
            .collect::<Vec<_>>()
    };
    let datagram = || {
        let tables = [process.udp(), process.udp6()];
        let entries = tables.into_iter().flatten().flatten();
        entries
            .map(|e| (e.inode, e.local_address))
            .collect::<Vec<_>>()
    };
    let local_of = |entries: Vec<(u64, SocketAddr)>| {
        entries
            .into_iter()
            .find_map(|(entry, local)| (entry == inode).then_some(local))
    };
    match socket_type as i32 {
        libc::SOCK_DGRAM => local_of(datagram()),
        libc::SOCK_STREAM => local_of(stream()),
        _ => local_of(stream()).or_else(|| local_of(datagram())),
    }
}

/// Socket inode → what it is, from the process's /proc/PID/net/{tcp,tcp6,udp,udp6,unix}.
fn proc_sockets(process: &Process) -> HashMap<u64, Resource> {
    let mut sockets = HashMap::new();
    let inet = [process.tcp(), process.tcp6()];
    for entry in inet.into_iter().flatten().flatten() {
        let resource = inet_socket(libc::SOCK_STREAM, entry.local_address, entry.remote_address);
        sockets.insert(entry.inode, resource);
    }
    for entry in [process.udp(), process.udp6()]
        .into_iter()
        .flatten()
        .flatten()
    {
        let resource = inet_socket(libc::SOCK_DGRAM, entry.local_address, entry.remote_address);
        sockets.insert(entry.inode, resource);
    }
    for entry in process.unix().into_iter().flatten() {
        let mut resource = socket(None);
        resource.socket_family = libc::AF_UNIX as u32;
        resource.socket_type = entry.socket_type.into();
        resource.local = entry.path.map(|path| SocketAddress {
            family: libc::AF_UNIX as u32,
            unix_path: path.to_string_lossy().into_owned(),
            ..Default::default()
        });
        sockets.insert(entry.inode, resource);
    }
    sockets
}

fn inet_socket(socket_type: i32, local: SocketAddr, remote: SocketAddr) -> Resource {
    let mut resource = socket(inet_address(remote).filter(|peer| peer.port != 0));
    resource.socket_family = inet_address(local).map_or(0, |a| a.family);
    resource.socket_type = socket_type as u32;
    resource.local = inet_address(local);
    resource
}

fn inet_address(address: SocketAddr) -> Option<SocketAddress> {
    let (family, ip) = match address.ip() {
        IpAddr::V4(ip) => (libc::AF_INET, ip.octets().to_vec()),
        IpAddr::V6(ip) => (libc::AF_INET6, ip.octets().to_vec()),
    };
    Some(SocketAddress {
        family: family as u32,
        ip,
        port: address.port().into(),
        ..Default::default()
    })
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
mod tests {
    use super::*;

    fn event(syscall: &str, fd: i64, ret: i64) -> Event {
        Event {
            pid: 1,
            syscall: syscall.to_owned(),
            syscall_nr: recorder_syscalls::by_name(syscall).map_or(u32::MAX, |row| row.nr as u32),
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
        table.apply(&mut open, &mut Spare::default());
        let mut write = event("write", 3, 5);
        table.apply(&mut write, &mut Spare::default());
        assert_eq!(write.resource.unwrap().name, "/tmp/a");
        let mut close = event("close", 3, 0);
        table.apply(&mut close, &mut Spare::default());
        assert_eq!(close.resource.unwrap().name, "/tmp/a");
        let mut stale = event("read", 3, -9);
        table.apply(&mut stale, &mut Spare::default());
        assert_eq!(stale.resource.unwrap().kind(), Kind::Unknown);
    }

    /// `event`, begun at `entered_ns` and ended at `ended_ns` by thread `tid`.
    fn timed(event: Event, tid: u32, entered_ns: u64, ended_ns: u64) -> Event {
        Event {
            tid,
            mono_ns: ended_ns,
            duration_ns: ended_ns - entered_ns,
            ..event
        }
    }

    /// Thread 2 closes a socket on fd 4 from t=20 to t=40; thread 1 opens a file as fd 4 at
    /// t=25..30 and writes to it. The close's event comes last, as it ended last.
    #[test]
    fn a_close_seen_after_the_number_was_reused_closes_what_it_began_on() {
        let mut table = FdTable::default();
        let mut apply = |event: Event| {
            let mut event = event;
            table.apply(&mut event, &mut Spare::default());
            event.resource.unwrap().name
        };
        let file = |event: Event| Event {
            path: "/tmp/a".into(),
            ..event
        };
        assert_eq!(apply(timed(event("socket", 4, 4), 2, 1, 2)), "socket");
        // Thread 2's read began before the close and ended after the reuse.
        let blocked_read = timed(event("read", 4, 0), 2, 15, 35);
        assert_eq!(
            apply(timed(file(event("openat", 4, 4)), 1, 25, 30)),
            "/tmp/a"
        );
        assert_eq!(apply(timed(event("write", 4, 5), 1, 31, 32)), "/tmp/a");
        assert_eq!(apply(blocked_read), "socket");
        assert_eq!(apply(timed(event("close", 4, 0), 2, 20, 40)), "socket");
        assert_eq!(apply(timed(event("write", 4, 5), 1, 41, 42)), "/tmp/a");
        assert_eq!(apply(timed(event("close", 4, 0), 1, 43, 44)), "/tmp/a");
        assert_eq!(apply(timed(event("write", 4, -9), 1, 45, 46)), "");
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
        table.apply(&mut connect, &mut Spare::default());
        assert_eq!(connect.resource.unwrap().peer, Some(peer));

        let file = tempfile::tempfile().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        table.seed(std::process::id());
        let mut read = Event {
            pid: std::process::id(),
            ..event("read", fd.into(), 0)
        };
        table.apply(&mut read, &mut Spare::default());
        assert_eq!(read.resource.unwrap().kind(), Kind::File);
    }

    fn loopback(port: u16) -> SocketAddress {
        SocketAddress {
            family: libc::AF_INET as u32,
            ip: vec![127, 0, 0, 1],
            port: port.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bind_to_port_zero_and_connect_learn_the_port_the_kernel_chose() {
        use std::os::fd::AsRawFd;
        let mut table = FdTable::default();
        let pid = std::process::id();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut bind = Event {
            pid,
            address: Some(loopback(0)),
            ..event("bind", listener.as_raw_fd().into(), 0)
        };
        table.apply(&mut bind, &mut Spare::default());
        let chosen = listener.local_addr().unwrap().port();
        assert_eq!(bind.resource.unwrap().local, Some(loopback(chosen)));

        let client = std::net::TcpStream::connect(("127.0.0.1", chosen)).unwrap();
        let mut connect = Event {
            pid,
            address: Some(loopback(chosen)),
            ..event("connect", client.as_raw_fd().into(), 0)
        };
        table.apply(&mut connect, &mut Spare::default());
        let resource = connect.resource.unwrap();
        assert_eq!(resource.peer, Some(loopback(chosen)));
        let local_port = client.local_addr().unwrap().port();
        assert_eq!(resource.local, Some(loopback(local_port)));
    }

    #[test]
    fn a_bound_socket_not_yet_listening_names_its_port_and_a_reused_fd_is_not_guessed() {
        use rustix::net::{bind, getsockname, socket, AddressFamily, SocketType};
        use std::os::fd::AsRawFd;
        let bound = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        bind(&bound, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let port = std::net::SocketAddr::try_from(getsockname(&bound).unwrap())
            .unwrap()
            .port();
        let pid = std::process::id();
        let fd = i64::from(bound.as_raw_fd());
        let mut table = FdTable::default();
        let mut bind_event = Event {
            pid,
            address: Some(loopback(0)),
            ..event("bind", fd, 0)
        };
        table.apply(&mut bind_event, &mut Spare::default());
        assert_eq!(bind_event.resource.unwrap().local, Some(loopback(port)));

        // The event says 127.0.0.2, the descriptor now holds a socket bound elsewhere.
        let elsewhere = SocketAddress {
            ip: vec![127, 0, 0, 2],
            ..loopback(0)
        };
        let mut stale = Event {
            pid,
            address: Some(elsewhere.clone()),
            ..event("bind", fd, 0)
        };
        table.apply(&mut stale, &mut Spare::default());
        assert_eq!(stale.resource.unwrap().local, Some(elsewhere));
    }
}
