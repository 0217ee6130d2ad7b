//! Raw `struct sockaddr` bytes, as a process passed them, into the recording's SocketAddress.

use std::net::{Ipv4Addr, Ipv6Addr};

use recorder_proto::v1::SocketAddress;

/// Parses the address families recorderd understands; anything else keeps only its family.
pub fn parse(bytes: &[u8]) -> Option<SocketAddress> {
    let family = u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?);
    let port = |bytes: &[u8]| -> Option<u32> {
        Some(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?).into())
    };
    let mut address = SocketAddress {
        family: family.into(),
        ..Default::default()
    };
    match i32::from(family) {
        libc::AF_INET => {
            address.port = port(bytes)?;
            address.ip = bytes.get(4..8)?.to_vec();
        }
        libc::AF_INET6 => {
            address.port = port(bytes)?;
            address.ip = bytes.get(8..24)?.to_vec();
        }
        libc::AF_UNIX => {
            let path = bytes.get(2..).unwrap_or_default();
            address.unix_path = match path.split_first() {
                // Abstract names start with a NUL and may contain more; show them as "@name".
                Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
                _ => {
                    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                    String::from_utf8_lossy(&path[..end]).into_owned()
                }
            };
        }
        _ => {}
    }
    Some(address)
}

/// `127.0.0.1:80`, `[::1]:80`, `unix:/run/x.sock`, or `family 17`.
pub fn display(address: &SocketAddress) -> String {
    match address.family as i32 {
        libc::AF_INET => match <[u8; 4]>::try_from(address.ip.as_slice()) {
            Ok(ip) => format!("{}:{}", Ipv4Addr::from(ip), address.port),
            Err(_) => "inet ?".to_owned(),
        },
        libc::AF_INET6 => match <[u8; 16]>::try_from(address.ip.as_slice()) {
            Ok(ip) => format!("[{}]:{}", Ipv6Addr::from(ip), address.port),
            Err(_) => "inet6 ?".to_owned(),
        },
        libc::AF_UNIX => format!("unix:{}", address.unix_path),
        family => format!("family {family}"),
    }
}

/// `AF_INET`, `AF_UNIX`, ... for a socket family number; `AF_<n>` for others.
pub fn family_name(family: u32) -> String {
    let name = match family as i32 {
        libc::AF_UNSPEC => "AF_UNSPEC",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_VSOCK => "AF_VSOCK",
        _ => return format!("AF_{family}"),
    };
    name.to_owned()
}

/// `SOCK_STREAM`, `SOCK_DGRAM`, ... for socket(2)'s type argument, with the
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags it may carry (`SOCK_STREAM|SOCK_CLOEXEC`).
pub fn type_name(socket_type: u32) -> String {
    let kind = socket_type & 0xf;
    let mut name = match kind as i32 {
        libc::SOCK_STREAM => "SOCK_STREAM".to_owned(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_owned(),
        libc::SOCK_RAW => "SOCK_RAW".to_owned(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_owned(),
        0 => "0".to_owned(),
        _ => format!("SOCK_{kind}"),
    };
    for (bit, flag) in [
        (libc::SOCK_NONBLOCK, "SOCK_NONBLOCK"),
        (libc::SOCK_CLOEXEC, "SOCK_CLOEXEC"),
    ] {
        if socket_type & bit as u32 != 0 {
            name.push('|');
            name.push_str(flag);
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_and_inet6() {
        let mut v4 = vec![0u8; 16];
        v4[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(display(&parse(&v4).unwrap()), "127.0.0.1:8080");

        let mut v6 = vec![0u8; 28];
        v6[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&443u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(display(&parse(&v6).unwrap()), "[::1]:443");
    }

    #[test]
    fn unix_paths_and_abstract_names() {
        let mut path = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        path.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(display(&parse(&path).unwrap()), "unix:/run/x.sock");
        let mut abstract_name = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        abstract_name.extend_from_slice(b"\0name");
        assert_eq!(display(&parse(&abstract_name).unwrap()), "unix:@name");
    }

    #[test]
    fn short_input_is_none() {
        assert!(parse(&[2]).is_none());
        let mut v4 = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        v4.extend_from_slice(&[0, 80]);
        assert!(parse(&v4).is_none());
    }

    #[test]
    fn families_and_types_have_names() {
        assert_eq!(family_name(libc::AF_INET6 as u32), "AF_INET6");
        assert_eq!(family_name(77), "AF_77");
        let nonblocking_stream = (libc::SOCK_STREAM | libc::SOCK_NONBLOCK) as u32;
        assert_eq!(type_name(nonblocking_stream), "SOCK_STREAM|SOCK_NONBLOCK");
        assert_eq!(type_name(libc::SOCK_DGRAM as u32), "SOCK_DGRAM");
    }
}
