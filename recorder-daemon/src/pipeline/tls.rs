//! TLS connections as the pipeline sees them.
//!
//! - Which descriptor each is on. The probes name the descriptor of the first payload
//!   syscall a thread makes inside a TLS call; a call that makes none (a read served from
//!   the library's buffer) gets the one its connection object (`SSL *`, GnuTLS session) was
//!   last seen with in that process.
//! - Which were recorded as ciphertext only: a socket payload that looks like TLS records
//!   but that no probed library call moved (the probes mark those they did) belongs to a
//!   program doing TLS some other way, so its plaintext is not in the recording. Such
//!   payloads are marked, and the stop line names the processes.

use recorder_common::{tls, SyscallRecord};
use recorder_proto::v1::{resource::Kind, Event};
use rustc_hash::{FxHashMap, FxHashSet};

/// The largest TLS record: 2^14 bytes of plaintext plus what encryption may add.
const MAX_RECORD: u16 = 16384 + 2048;

#[derive(Default)]
pub struct TlsConnections {
    /// (pid, connection object) → descriptor.
    fds: FxHashMap<(u32, u64), u64>,
    /// (pid, fd) of sockets recorded as ciphertext only.
    ciphertext_only: FxHashSet<(u32, i64)>,
    /// For each process with such a socket, in the order found: why, in words.
    not_decrypted: Vec<(u32, String)>,
}

impl TlsConnections {
    /// Fills in the descriptor (`args[0]`) of a TLS call's record that lacks one, and learns
    /// it from one that has it. Other records pass untouched.
    pub fn resolve(&mut self, record: &mut SyscallRecord) {
        if tls::by_nr(record.nr).is_none() {
            return;
        }
        let key = (record.header.tgid, record.args[3]);
        if (record.args[0] as i32) >= 0 {
            self.fds.insert(key, record.args[0]);
        } else if let Some(&fd) = self.fds.get(&key) {
            record.args[0] = fd;
        }
    }

    /// Marks a socket payload that looks like TLS records no probed library moved.
    pub fn check_ciphertext(&mut self, event: &mut Event) {
        let on_socket = event
            .resource
            .as_ref()
            .is_some_and(|r| r.kind() == Kind::Socket);
        let Some(payload) = event.payload.as_mut() else {
            return;
        };
        if !on_socket
            || event.tls.is_some()
            || payload.tls_ciphertext
            || !looks_like_tls(&payload.data)
        {
            return;
        }
        payload.tls_not_decrypted = true;
        let pid = event.pid;
        if self.ciphertext_only.insert((pid, event.fd))
            && !self.not_decrypted.iter().any(|(p, _)| *p == pid)
        {
            self.not_decrypted.push((pid, why_not_decrypted(pid)));
        }
    }

    /// Sockets recorded as ciphertext only, and why, per process ("pid 123 has no
    /// OpenSSL/GnuTLS mapped").
    pub fn not_decrypted(&self) -> (usize, Vec<String>) {
        let reasons = self.not_decrypted.iter().map(|(_, why)| why.clone());
        (self.ciphertext_only.len(), reasons.collect())
    }

    /// Process `pid` ended: its connection objects with it.
    pub fn forget(&mut self, pid: u32) {
        self.fds.retain(|&(owner, _), _| owner != pid);
    }
}

/// Whether `data` starts like a TLS record: a content type (change_cipher_spec, alert,
/// handshake, application_data), protocol version 3.x, and a length a record can have.
pub fn looks_like_tls(data: &[u8]) -> bool {
    match data {
        [20..=23, 3, 0..=4, high, low, ..] => u16::from_be_bytes([*high, *low]) <= MAX_RECORD,
        _ => false,
    }
}

/// Why process `pid`'s TLS was not decrypted, from what it maps now.
fn why_not_decrypted(pid: u32) -> String {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return format!("pid {pid} (ended before it could be looked at)");
    };
    let mapped = ["/libssl.so.", "/libgnutls.so."]
        .iter()
        .any(|library| maps.contains(library));
    if mapped {
        format!("pid {pid} does TLS around the OpenSSL/GnuTLS it maps, or it was not probed")
    } else {
        format!("pid {pid} has no OpenSSL/GnuTLS mapped")
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::EventHeader;
    use recorder_proto::v1::{Payload, Resource};

    use super::*;

    fn call(pid: u32, fd: i64, conn: u64) -> SyscallRecord {
        SyscallRecord {
            header: EventHeader {
                tgid: pid,
                ..Default::default()
            },
            nr: tls::FUNCTIONS[1].nr,
            args: [fd as u64, 0, 0, conn, 0, 0],
            ..Default::default()
        }
    }

    #[test]
    fn a_call_without_a_syscall_takes_its_connections_last_descriptor() {
        let mut connections = TlsConnections::default();
        let mut unknown = call(7, -1, 0xa0);
        connections.resolve(&mut unknown);
        assert_eq!(unknown.args[0] as i32, -1, "nothing known yet");
        connections.resolve(&mut call(7, 5, 0xa0));
        let mut buffered = call(7, -1, 0xa0);
        connections.resolve(&mut buffered);
        assert_eq!(buffered.args[0], 5);
        // Another process's object at the same address is another connection.
        let mut other = call(8, -1, 0xa0);
        connections.resolve(&mut other);
        assert_eq!(other.args[0] as i32, -1);
        connections.forget(7);
        let mut after_exit = call(7, -1, 0xa0);
        connections.resolve(&mut after_exit);
        assert_eq!(after_exit.args[0] as i32, -1);
    }

    #[test]
    fn syscall_records_are_left_alone() {
        let mut connections = TlsConnections::default();
        let mut read = call(7, -1, 0xa0);
        read.nr = 0;
        connections.resolve(&mut read);
        connections.resolve(&mut call(7, 5, 0xa0));
        let mut read = call(7, -1, 0xa0);
        read.nr = 0;
        connections.resolve(&mut read);
        assert_eq!(read.args[0] as i32, -1);
    }

    #[test]
    fn tls_records_are_told_from_other_bytes() {
        assert!(looks_like_tls(b"\x16\x03\x01\x02\x00\x01\x00"));
        assert!(looks_like_tls(b"\x17\x03\x03\x00\x17"));
        assert!(
            !looks_like_tls(b"\x17\x03\x03\xff\xff"),
            "too long a record"
        );
        assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_tls(b"\x16\x03"));
    }

    fn socket_write(pid: u32, fd: i64, data: &[u8], flagged: bool) -> Event {
        Event {
            pid,
            fd,
            resource: Some(Box::new(Resource {
                kind: Kind::Socket.into(),
                ..Resource::default()
            })),
            payload: Some(Payload {
                data: data.to_vec(),
                length: data.len() as u64,
                tls_ciphertext: flagged,
                ..Payload::default()
            }),
            ..Event::default()
        }
    }

    #[test]
    fn ciphertext_no_probe_moved_is_marked_once_per_socket() {
        let mut connections = TlsConnections::default();
        let hello = b"\x16\x03\x01\x00\x30\x01";
        let mut probed = socket_write(7, 3, hello, true);
        connections.check_ciphertext(&mut probed);
        assert!(!probed.payload.unwrap().tls_not_decrypted);
        for _ in 0..2 {
            let mut unprobed = socket_write(7, 4, hello, false);
            connections.check_ciphertext(&mut unprobed);
            assert!(unprobed.payload.unwrap().tls_not_decrypted);
        }
        let mut plain = socket_write(7, 5, b"GET / HTTP/1.1\r\n", false);
        connections.check_ciphertext(&mut plain);
        assert!(!plain.payload.unwrap().tls_not_decrypted);
        let (sockets, why) = connections.not_decrypted();
        assert_eq!((sockets, why.len()), (1, 1));
        assert!(why[0].starts_with("pid 7 "), "{why:?}");
    }
}
