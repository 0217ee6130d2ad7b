//! Which descriptor each TLS connection is on. The probes name the descriptor of the first
//! payload syscall a thread makes inside a TLS call; a call that makes none (a read served
//! from the library's buffer) gets the one its connection object (`SSL *`, GnuTLS session)
//! was last seen with in that process.

use recorder_common::{tls, SyscallRecord};
use rustc_hash::FxHashMap;

#[derive(Default)]
pub struct TlsConnections {
    /// (pid, connection object) → descriptor.
    fds: FxHashMap<(u32, u64), u64>,
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

    /// Process `pid` ended: its connections with it.
    pub fn forget(&mut self, pid: u32) {
        self.fds.retain(|&(owner, _), _| owner != pid);
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::EventHeader;

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
}
