//! Written events come back here to be used again, so a steady stream of syscalls costs no
//! heap allocation: their strings, argument lists, payload buffers and resources keep their
//! capacity. What is kept is bounded in count and size.

use recorder_proto::v1::{frame::Body, Event, Payload, Redaction, Resource, SocketAddress};

/// At most this many of each part are kept. What the redactor releases together comes back
/// together, so this is sized to what it holds back at once in steady state: its 64 KiB
/// bound is a thousand 64-byte writes per stream, and streams fill side by side (six in the
/// bench's syscall loop). About 10 MB when all are kept.
const KEEP: usize = 16 * 1024;
/// Payload buffers larger than this are freed rather than kept...
const KEEP_BUFFER_BYTES: usize = 64 * 1024;
/// ...and the buffers kept hold at most this much in all.
const KEEP_BUFFERS_TOTAL: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub struct Spare {
    #[expect(
        clippy::vec_box,
        reason = "frames carry their events boxed, so a kept event goes back into a frame without a new allocation"
    )]
    events: Vec<Box<Event>>,
    /// Emptied redaction lists of payloads (only those that held any: an empty list has
    /// nothing to keep, and each entry written here is memory the next events touch).
    redaction_lists: Vec<Vec<Redaction>>,
    #[expect(
        clippy::vec_box,
        reason = "events carry their resource boxed: a kept one goes back into an event as a pointer, not 152 bytes copied"
    )]
    resources: Vec<Box<Resource>>,
    buffers: Vec<Vec<u8>>,
    /// The capacity of `buffers`, in bytes.
    buffered: usize,
    /// Strings that held a redaction's rule name.
    rule_names: Vec<String>,
}

impl Spare {
    /// Takes back a frame that has been written.
    pub fn keep(&mut self, body: Body) {
        let Body::Event(mut event) = body else {
            return;
        };
        if let Some(mut payload) = event.payload.take() {
            self.keep_buffer(std::mem::take(&mut payload.data));
            for redaction in payload.redactions.drain(..) {
                if self.rule_names.len() < KEEP {
                    self.rule_names.push(redaction.rule);
                }
            }
            if payload.redactions.capacity() > 0 && self.redaction_lists.len() < KEEP {
                self.redaction_lists.push(payload.redactions);
            }
        }
        if let Some(resource) = event.resource.take() {
            if self.resources.len() < KEEP {
                self.resources.push(resource);
            }
        }
        if self.events.len() < KEEP {
            clear_event(&mut event);
            self.events.push(event);
        }
    }

    /// An event with every field at its default (its strings and lists empty).
    pub fn event(&mut self) -> Box<Event> {
        self.events.pop().unwrap_or_default()
    }

    /// A payload with every field at its default and no data buffer.
    pub fn payload(&mut self) -> Payload {
        Payload {
            redactions: self.redaction_lists.pop().unwrap_or_default(),
            ..Payload::default()
        }
    }

    /// `source`, copied into a kept resource and its buffers.
    pub fn resource(&mut self, source: &Resource) -> Box<Resource> {
        match self.resources.pop() {
            Some(mut resource) => {
                copy_resource(&mut resource, source);
                resource
            }
            None => Box::new(source.clone()),
        }
    }

    /// `name` in a kept string.
    pub fn rule_name(&mut self, name: &str) -> String {
        let mut rule = self.rule_names.pop().unwrap_or_default();
        rule.clear();
        rule.push_str(name);
        rule
    }

    /// An empty byte buffer.
    pub fn buffer(&mut self) -> Vec<u8> {
        let buffer = self.buffers.pop().unwrap_or_default();
        self.buffered -= buffer.capacity();
        buffer
    }

    pub fn keep_buffer(&mut self, mut buffer: Vec<u8>) {
        let size = buffer.capacity();
        if (1..=KEEP_BUFFER_BYTES).contains(&size) && self.buffered + size <= KEEP_BUFFERS_TOTAL {
            buffer.clear();
            self.buffered += size;
            self.buffers.push(buffer);
        }
    }
}

/// Every field back to its default; strings and lists keep their capacity.
fn clear_event(event: &mut Event) {
    let Event {
        mono_ns,
        duration_ns,
        pid,
        tid,
        syscall,
        syscall_nr,
        args,
        ret,
        fd,
        resource,
        path,
        path_truncated,
        address,
        payload,
        new_path,
        argv,
        argv_truncated,
        new_fds,
        redactions,
        tls,
        stack_id,
        stack_lost,
    } = event;
    (*mono_ns, *duration_ns, *pid, *tid, *syscall_nr, *ret, *fd) = (0, 0, 0, 0, 0, 0, 0);
    (*path_truncated, *argv_truncated, *stack_lost) = (false, false, false);
    *stack_id = 0;
    (*resource, *address, *payload, *tls) = (None, None, None, None);
    syscall.clear();
    args.clear();
    path.clear();
    new_path.clear();
    argv.clear();
    new_fds.clear();
    redactions.clear();
}

/// `*target = source.clone()`, reusing `target`'s buffers (derived `clone_from` does not).
/// Destructured, so a field added to the schema cannot be left uncopied.
fn copy_resource(target: &mut Resource, source: &Resource) {
    let Resource {
        kind,
        name,
        peer,
        local,
        socket_family,
        socket_type,
    } = source;
    target.kind = *kind;
    target.name.clone_from(name);
    copy_address(&mut target.peer, peer);
    copy_address(&mut target.local, local);
    target.socket_family = *socket_family;
    target.socket_type = *socket_type;
}

fn copy_address(target: &mut Option<SocketAddress>, source: &Option<SocketAddress>) {
    match (target.as_mut(), source) {
        (
            Some(target),
            Some(SocketAddress {
                family,
                ip,
                port,
                unix_path,
            }),
        ) => {
            target.family = *family;
            target.ip.clone_from(ip);
            target.port = *port;
            target.unix_path.clone_from(unix_path);
        }
        (_, source) => *target = source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_event() -> Event {
        Event {
            mono_ns: 1,
            duration_ns: 2,
            pid: 3,
            tid: 4,
            syscall: "write".into(),
            syscall_nr: 1,
            args: vec![1, 2, 3],
            ret: 5,
            fd: 6,
            resource: Some(Box::new(Resource {
                name: "/tmp/x".into(),
                peer: Some(SocketAddress {
                    ip: vec![127, 0, 0, 1],
                    ..SocketAddress::default()
                }),
                ..Resource::default()
            })),
            path: "/p".into(),
            path_truncated: true,
            stack_id: 7,
            stack_lost: true,
            tls: Some(recorder_proto::v1::Tls {
                library: "openssl".into(),
            }),
            address: Some(SocketAddress::default()),
            payload: Some(Payload {
                data: b"hello".to_vec(),
                length: 5,
                truncated: true,
                redactions: vec![Redaction {
                    rule: "http-header".into(),
                    offset: 1,
                    length: 2,
                    field: String::new(),
                }],
                ..Payload::default()
            }),
            new_path: "/q".into(),
            argv: vec!["a".into()],
            argv_truncated: true,
            new_fds: vec![7, 8],
            redactions: vec![Default::default()],
        }
    }

    #[test]
    fn a_kept_event_comes_back_as_a_default_one() {
        let mut spare = Spare::default();
        spare.keep(Body::Event(Box::new(full_event())));
        let event = spare.event();
        assert_eq!(event, Box::new(Event::default()));
        assert!(event.syscall.capacity() >= 5 && event.args.capacity() >= 3);
        assert_eq!(spare.payload(), Payload::default());
        assert!(spare.buffer().capacity() >= 5);
    }

    #[test]
    fn a_redactions_rule_name_is_built_in_a_kept_string() {
        let mut spare = Spare::default();
        spare.keep(Body::Event(Box::new(full_event())));
        let redactions = spare.payload().redactions;
        assert!(
            redactions.is_empty() && redactions.capacity() >= 1,
            "the kept list"
        );
        assert_eq!(
            spare.payload().redactions.capacity(),
            0,
            "one list was kept"
        );
        let name = spare.rule_name("jwt");
        assert_eq!(name, "jwt");
        assert!(name.capacity() >= "http-header".len(), "the kept string");
        assert_eq!(spare.rule_name("fail-closed"), "fail-closed");
    }

    #[test]
    fn a_kept_resource_takes_the_source_whole() {
        let mut spare = Spare::default();
        spare.keep(Body::Event(Box::new(full_event())));
        let source = Resource {
            name: "socket".into(),
            local: Some(SocketAddress {
                port: 80,
                ..SocketAddress::default()
            }),
            socket_family: 2,
            ..Resource::default()
        };
        assert_eq!(*spare.resource(&source), source);
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut spare = Spare::default();
        for _ in 0..KEEP + 10 {
            spare.keep(Body::Event(Box::new(full_event())));
        }
        assert_eq!(spare.events.len(), KEEP);
        assert_eq!(spare.rule_names.len(), KEEP);
        spare.keep_buffer(vec![0; KEEP_BUFFER_BYTES + 1]);
        for _ in 0..KEEP_BUFFERS_TOTAL / KEEP_BUFFER_BYTES + 10 {
            spare.keep_buffer(vec![0; KEEP_BUFFER_BYTES]);
        }
        let kept: usize = spare.buffers.iter().map(Vec::capacity).sum();
        assert_eq!(kept, spare.buffered);
        assert!(kept <= KEEP_BUFFERS_TOTAL);
        assert!(spare
            .buffers
            .iter()
            .all(|b| b.capacity() <= KEEP_BUFFER_BYTES));
        while spare.buffer().capacity() > 0 {}
        assert_eq!(spare.buffered, 0);
    }
}
