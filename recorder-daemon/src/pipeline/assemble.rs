//! Joins each syscall record with the payload chunks its thread sent before it, and turns the
//! pair into a recording `Event`.
//!
//! The probes write a syscall's DATA chunks (at enter for writes, at exit for reads) before
//! its SYSCALL record, from the same thread, and a thread is in one syscall at a time: so the
//! chunks pending for a tid belong to that tid's next syscall record.

use rustc_hash::FxHashMap;

use recorder_common::{class, record::flags, tls, DataRecord, SyscallRecord};
use recorder_proto::v1::{payload::Direction, Event, Payload, Tls};

use recorder_syscalls::{self as syscalls, sockaddr, FdSource, Stream};

use super::spare::Spare;

#[derive(Default)]
struct Pending {
    nr: u32,
    data: Vec<u8>,
    /// A chunk arrived out of order: something before it was lost.
    gap: bool,
    /// The daemon's drain shed a chunk of it under load.
    shed: bool,
}

impl Pending {
    /// Empty again, for the next syscall's chunks (the buffer is kept).
    fn restart(&mut self) {
        self.data.clear();
        self.gap = false;
        self.shed = false;
    }
}

/// Counters of records that could not be paired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssembleStats {
    /// Chunks discarded because their syscall record never came (it was lost).
    pub orphan_chunks: u64,
    /// Payloads the daemon's drain shed (in whole or in part) under load.
    pub shed_payloads: u64,
}

pub struct Assembler {
    max_payload_bytes: u64,
    pending: FxHashMap<u32, Pending>,
    stats: AssembleStats,
    /// Written events, to build the next ones from.
    spare: Spare,
}

impl Assembler {
    pub fn new(max_payload_bytes: u32) -> Self {
        Assembler {
            max_payload_bytes: max_payload_bytes.into(),
            pending: FxHashMap::default(),
            stats: AssembleStats::default(),
            spare: Spare::default(),
        }
    }

    pub fn stats(&self) -> AssembleStats {
        self.stats
    }

    /// Where written events go back to, and the fd table takes resources from.
    pub fn spare(&mut self) -> &mut Spare {
        &mut self.spare
    }

    /// A thread other than the leader exec'd and took the leader's id: its chunks move with it.
    pub fn rename_tid(&mut self, old: u32, new: u32) {
        if let Some(pending) = self.pending.remove(&old) {
            self.pending.insert(new, pending);
        }
    }

    /// A chunk the drain shed: the payload is incomplete from here on.
    pub fn shed(&mut self, record: &DataRecord) {
        let pending = self.pending_for(record);
        pending.shed = true;
        pending.gap = true;
    }

    pub fn data(&mut self, record: &DataRecord, bytes: &[u8]) {
        let pending = self.pending_for(record);
        if pending.gap {
            return;
        }
        if record.offset != pending.data.len() as u64 {
            pending.gap = true;
            return;
        }
        pending.data.extend_from_slice(bytes);
    }

    /// The pending payload a chunk belongs to, started afresh when the chunk begins a new one.
    fn pending_for(&mut self, record: &DataRecord) -> &mut Pending {
        let spare = &mut self.spare;
        let pending = self
            .pending
            .entry(record.header.tid)
            .or_insert_with(|| Pending {
                data: spare.buffer(),
                ..Pending::default()
            });
        if pending.nr != record.nr && !pending.data.is_empty() {
            self.stats.orphan_chunks += 1;
            pending.restart();
        }
        pending.nr = record.nr;
        if record.offset == 0 && (!pending.data.is_empty() || pending.gap) {
            // The probe copied the payload again at exit after a fault at enter, or what is
            // pending is left from a syscall whose record was lost.
            pending.restart();
        }
        pending
    }

    pub fn syscall(&mut self, record: &SyscallRecord, aux: &[u8]) -> Box<Event> {
        let pending = match self.pending.remove(&record.header.tid) {
            Some(pending) if pending.nr == record.nr => Some(pending),
            Some(orphan) => {
                self.stats.orphan_chunks += 1;
                self.spare.keep_buffer(orphan.data);
                None
            }
            None => None,
        };
        let known = syscalls::by_nr(record.nr);
        let class = record.class as u8;
        let fd = match known.map(|syscall| syscall.fd) {
            Some(FdSource::Arg0) => i64::from(record.args[0] as i32),
            Some(FdSource::Result) if record.ret >= 0 => record.ret,
            _ => -1,
        };
        let mut event = self.spare.event();
        event.mono_ns = record.header.ktime_ns;
        event.duration_ns = record.header.ktime_ns.saturating_sub(record.enter_ns);
        event.pid = record.header.tgid;
        event.tid = record.header.tid;
        match known {
            Some(syscall) => event.syscall.push_str(syscall.name),
            None => event.syscall = format!("syscall_{}", record.nr),
        }
        event.syscall_nr = record.nr;
        // Only the syscall's own arguments: the slots past them hold unrelated kernel data.
        let nargs = known.map_or(0, |s| s.nargs.min(6));
        event.args.extend_from_slice(&record.args[..nargs]);
        event.ret = record.ret;
        event.fd = fd;
        if let Some(function) = tls::by_nr(record.nr) {
            event.tls = Some(Tls {
                library: function.library.to_owned(),
            });
        }
        match class {
            class::PATH_ARG0 | class::PATH_ARG1 => {
                event.path.push_str(&String::from_utf8_lossy(aux));
                event.path_truncated = record.flags & flags::AUX_TRUNCATED != 0;
            }
            class::PATHS_0_1 | class::PATHS_1_3 => {
                let mut paths = aux.splitn(2, |&b| b == 0);
                let mut next = || String::from_utf8_lossy(paths.next().unwrap_or_default());
                event.path.push_str(&next());
                event.new_path.push_str(&next());
                event.path_truncated = record.flags & flags::AUX_TRUNCATED != 0;
            }
            class::ADDR_IN | class::ADDR_OUT | class::OUT_MSG | class::IN_MSG
                if !aux.is_empty() =>
            {
                event.address = sockaddr::parse(aux)
            }
            class::FD_PAIR0 | class::FD_PAIR3 if aux.len() == 8 => {
                event.new_fds = aux
                    .chunks_exact(4)
                    .map(|fd| i64::from(i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]])))
                    .collect();
            }
            class::EXEC | class::EXECAT => {
                let (data, gap) = pending.map(|p| (p.data, p.gap)).unwrap_or_default();
                let mut strings = data
                    .split(|&b| b == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned());
                event.path = strings.next().unwrap_or_default();
                event.argv = strings.collect();
                // The data ends with a NUL, so splitting leaves an empty last piece.
                if data.last() == Some(&0) {
                    event.argv.pop();
                }
                let cut = flags::PAYLOAD_TRUNCATED | flags::PAYLOAD_LOST | flags::PAYLOAD_FAULT;
                event.argv_truncated = gap || record.flags & cut != 0;
                return event;
            }
            _ => {}
        }
        let direction = match known.map(|syscall| syscall.stream) {
            Some(Stream::Out) => Some(Direction::Out),
            Some(Stream::In) => Some(Direction::In),
            _ => None,
        };
        if let (Some(direction), Ok(length @ 1..)) = (direction, u64::try_from(record.ret)) {
            event.payload = Some(self.payload(direction, length, record.flags, pending));
        } else if let Some(pending) = pending {
            self.spare.keep_buffer(pending.data);
        }
        event
    }

    /// The bytes the syscall transferred, as far as they were captured: a write's chunks hold
    /// what it was asked to write, so they are cut to what it actually wrote.
    fn payload(
        &mut self,
        direction: Direction,
        length: u64,
        record_flags: u32,
        pending: Option<Pending>,
    ) -> Payload {
        let Pending {
            mut data,
            gap,
            shed,
            ..
        } = pending.unwrap_or_default();
        if shed {
            self.stats.shed_payloads += 1;
        }
        let shed = shed || record_flags & flags::PAYLOAD_SHED != 0;
        let mut payload = self.spare.payload();
        payload.direction = direction.into();
        payload.tls_ciphertext = record_flags & flags::TLS_CIPHERTEXT != 0;
        if record_flags & flags::PAYLOAD_OMITTED != 0 {
            // Ciphertext of a TLS call whose plaintext is recorded: its length only.
            payload.omitted_bytes = length;
            payload.length = length;
            payload.data = data;
            payload.data.clear();
            return payload;
        }
        let expected = length.min(self.max_payload_bytes);
        data.truncate(expected as usize);
        let failed = flags::PAYLOAD_LOST | flags::PAYLOAD_FAULT | flags::PAYLOAD_SHED;
        let lost_bytes = expected - data.len() as u64;
        payload.incomplete = gap || record_flags & failed != 0 || lost_bytes > 0;
        payload.truncated = length > self.max_payload_bytes;
        payload.shed = shed;
        payload.lost_bytes = lost_bytes;
        payload.capped_bytes = length - expected;
        payload.length = length;
        payload.data = data;
        payload
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::EventHeader;

    use super::*;

    fn header(tid: u32) -> EventHeader {
        EventHeader {
            tgid: 10,
            tid,
            ktime_ns: 2_000,
            ..Default::default()
        }
    }

    fn write_record(tid: u32, ret: i64) -> SyscallRecord {
        SyscallRecord {
            header: header(tid),
            nr: libc::SYS_write as u32,
            class: class::OUT_BUF.into(),
            args: [3, 0, 11, 0, 0, 0],
            ret,
            enter_ns: 1_500,
            ..Default::default()
        }
    }

    fn chunk(tid: u32, nr: i64, offset: u64) -> DataRecord {
        DataRecord {
            header: header(tid),
            nr: nr as u32,
            offset,
            ..Default::default()
        }
    }

    #[test]
    fn an_exec_carries_its_path_and_argv() {
        let mut assembler = Assembler::new(8);
        let strings: [&[u8]; 3] = [b"/bin/echo\0", b"echo\0", b"hello world\0"];
        let mut offset = 0;
        for s in strings {
            assembler.data(&chunk(7, libc::SYS_execve, offset), s);
            offset += s.len() as u64;
        }
        let exec = SyscallRecord {
            header: header(7),
            nr: libc::SYS_execve as u32,
            class: class::EXEC.into(),
            ..Default::default()
        };
        let event = assembler.syscall(&exec, &[]);
        assert_eq!(event.path, "/bin/echo");
        assert_eq!(event.argv, ["echo", "hello world"]);
        assert!(!event.argv_truncated && event.payload.is_none());
    }

    #[test]
    fn joins_chunks_with_their_syscall() {
        let mut assembler = Assembler::new(1024);
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hello ");
        assembler.data(&chunk(7, libc::SYS_write, 6), b"world");
        let event = assembler.syscall(&write_record(7, 11), &[]);
        assert_eq!(
            (event.syscall.as_str(), event.fd, event.duration_ns),
            ("write", 3, 500)
        );
        let payload = event.payload.unwrap();
        assert_eq!(payload.data, b"hello world");
        assert!(!payload.truncated && !payload.incomplete);
    }

    #[test]
    fn a_chunk_shed_by_the_drain_keeps_the_event_and_counts_every_byte() {
        let mut assembler = Assembler::new(8);
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hello ");
        assembler.shed(&chunk(7, libc::SYS_write, 6));
        // A later chunk of the same payload cannot be placed after the hole.
        assembler.data(&chunk(7, libc::SYS_write, 11), b"!");
        let payload = assembler
            .syscall(&write_record(7, 12), &[])
            .payload
            .unwrap();
        assert_eq!(payload.data, b"hello ");
        assert!(payload.shed && payload.incomplete);
        // 12 bytes moved: 6 captured, 2 more within the cap of 8 lost, 4 past the cap.
        assert_eq!((payload.lost_bytes, payload.capped_bytes), (2, 4));
        assert_eq!(assembler.stats().shed_payloads, 1);
        // The next payload of the thread starts clean.
        assembler.data(&chunk(7, libc::SYS_write, 0), b"ok");
        let next = assembler.syscall(&write_record(7, 2), &[]).payload.unwrap();
        assert!(!next.shed && !next.incomplete && next.lost_bytes == 0);
    }

    #[test]
    fn a_payload_the_probes_shed_is_marked_and_its_bytes_lost() {
        let mut assembler = Assembler::new(1024);
        let mut record = write_record(7, 11);
        record.flags = flags::PAYLOAD_SHED;
        let payload = assembler.syscall(&record, &[]).payload.unwrap();
        assert!(payload.shed && payload.incomplete && payload.data.is_empty());
        assert_eq!((payload.length, payload.lost_bytes), (11, 11));
        // Only the drain's sheds are the pipeline's to count; the kernel counts its own.
        assert_eq!(assembler.stats().shed_payloads, 0);
    }

    #[test]
    fn a_payload_copied_again_at_exit_replaces_the_partial_copy() {
        let mut assembler = Assembler::new(1024);
        // The enter copy got one chunk before faulting; exit copied all of it again.
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hello ");
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hello ");
        assembler.data(&chunk(7, libc::SYS_write, 6), b"world");
        let payload = assembler
            .syscall(&write_record(7, 11), &[])
            .payload
            .unwrap();
        assert_eq!(payload.data, b"hello world");
        assert!(!payload.incomplete);
    }

    #[test]
    fn a_short_write_keeps_only_what_was_written() {
        let mut assembler = Assembler::new(1024);
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hello world");
        let payload = assembler.syscall(&write_record(7, 5), &[]).payload.unwrap();
        assert_eq!(
            (payload.data.as_slice(), payload.length),
            (&b"hello"[..], 5)
        );
    }

    #[test]
    fn marks_truncation_at_the_cap_and_missing_chunks() {
        let mut assembler = Assembler::new(4);
        assembler.data(&chunk(7, libc::SYS_write, 0), b"hell");
        let payload = assembler
            .syscall(&write_record(7, 11), &[])
            .payload
            .unwrap();
        assert!(payload.truncated && !payload.incomplete);

        let mut assembler = Assembler::new(1024);
        assembler.data(&chunk(7, libc::SYS_write, 6), b"world");
        let payload = assembler
            .syscall(&write_record(7, 11), &[])
            .payload
            .unwrap();
        assert!(payload.incomplete && payload.data.is_empty());
    }

    #[test]
    fn chunks_of_another_thread_or_syscall_are_not_mixed_in() {
        let mut assembler = Assembler::new(1024);
        assembler.data(&chunk(8, libc::SYS_write, 0), b"other thread");
        assembler.data(&chunk(7, libc::SYS_read, 0), b"lost read");
        let payload = assembler
            .syscall(&write_record(7, 11), &[])
            .payload
            .unwrap();
        assert!(payload.data.is_empty() && payload.incomplete);
        assert_eq!(assembler.stats().orphan_chunks, 1);
    }

    #[test]
    fn failed_writes_carry_no_payload_and_open_returns_its_fd() {
        let mut assembler = Assembler::new(1024);
        assembler.data(&chunk(7, libc::SYS_write, 0), b"x");
        assert!(assembler
            .syscall(&write_record(7, -9), &[])
            .payload
            .is_none());

        let open = SyscallRecord {
            header: header(7),
            nr: libc::SYS_openat as u32,
            class: class::PATH_ARG1.into(),
            ret: 5,
            ..Default::default()
        };
        let event = assembler.syscall(&open, b"/etc/hostname");
        assert_eq!((event.fd, event.path.as_str()), (5, "/etc/hostname"));
    }

    #[test]
    fn a_tls_call_is_an_event_of_its_library_with_the_plaintext() {
        let mut assembler = Assembler::new(1024);
        let read = tls::FUNCTIONS[1];
        assembler.data(&chunk(7, read.nr.into(), 0), b"HTTP/1.1 200 OK");
        let record = SyscallRecord {
            header: header(7),
            nr: read.nr,
            class: class::IN_BUF.into(),
            args: [5, 0, 4096, 0xa0, 0, 0],
            ret: 15,
            ..Default::default()
        };
        let event = assembler.syscall(&record, &[]);
        assert_eq!((event.syscall.as_str(), event.fd), ("SSL_read", 5));
        assert_eq!(event.tls.unwrap().library, "openssl");
        // Four arguments: fd, buffer, size, connection object.
        assert_eq!(event.args, [5, 0, 4096, 0xa0]);
        let payload = event.payload.unwrap();
        assert_eq!(payload.data, b"HTTP/1.1 200 OK");
        assert_eq!(payload.direction(), Direction::In);
    }

    #[test]
    fn ciphertext_inside_a_tls_call_is_counted_as_omitted_or_kept_marked() {
        let mut assembler = Assembler::new(1024);
        let mut record = write_record(7, 11);
        record.flags = flags::TLS_CIPHERTEXT | flags::PAYLOAD_OMITTED;
        let payload = assembler.syscall(&record, &[]).payload.unwrap();
        assert!(payload.tls_ciphertext && payload.data.is_empty());
        assert!(!payload.incomplete && payload.lost_bytes == 0);
        assert_eq!((payload.length, payload.omitted_bytes), (11, 11));

        assembler.data(&chunk(7, libc::SYS_write, 0), b"\x17\x03\x03ciphers!");
        record.flags = flags::TLS_CIPHERTEXT;
        let payload = assembler.syscall(&record, &[]).payload.unwrap();
        assert!(payload.tls_ciphertext && !payload.incomplete);
        assert_eq!((payload.data.len(), payload.omitted_bytes), (11, 0));
    }
}
