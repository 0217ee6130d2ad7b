//! What the fd table learns of a socket from the kernel rather than from the events: the
//! port the kernel chose, and the sockets a process had open before it was seen.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use procfs::process::{FDTarget, Process};
use recorder_proto::v1::{Resource, SocketAddress};

use super::socket;

pub(super) fn is_inet(address: Option<&SocketAddress>) -> bool {
    address.is_some_and(|a| a.family == libc::AF_INET as u32 || a.family == libc::AF_INET6 as u32)
}

pub(super) fn has_port(address: Option<&SocketAddress>) -> bool {
    address.is_some_and(|a| a.port != 0)
}

/// The local address the kernel gave `pid`'s inet socket `fd` (after connect, or bind to
/// port 0). The socket itself answers, borrowed with pidfd_getfd (CAP_SYS_PTRACE, which
/// recorderd keeps after attach) for getsockname: the only way to see a TCP socket that is
/// bound but not listening yet. Where that is refused (Yama's ptrace_scope 3), /proc's
/// tables by the fd's inode. `None` when the socket is already closed; and when the
/// descriptor now names another socket (closed and reused since the event: its bound IP or
/// its peer differs), so a port is never guessed.
pub(super) fn bound_address(
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
pub(super) fn proc_sockets(process: &Process) -> HashMap<u64, Resource> {
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
