use recorder_proto::v1::Resource;

use super::*;

fn policy() -> Arc<Policy> {
    Arc::new(Policy::new(&recorder_redact::Config::default()).unwrap())
}

fn write(pid: u32, fd: i64, data: &[u8]) -> Body {
    Body::Event(Event {
        pid,
        fd,
        syscall: "write".to_owned(),
        syscall_nr: recorder_syscalls::by_name("write").unwrap().nr as u32,
        ret: data.len() as i64,
        resource: Some(Resource {
            kind: Kind::Socket.into(),
            ..Resource::default()
        }),
        payload: Some(Payload {
            direction: Direction::Out.into(),
            data: data.to_vec(),
            length: data.len() as u64,
            ..Payload::default()
        }),
        ..Event::default()
    })
}

fn released(redactor: &mut Redactor) -> Vec<Body> {
    let mut out = Vec::new();
    redactor
        .release(&mut Spare::default(), |body, _| {
            out.push(body);
            Ok::<_, ()>(())
        })
        .unwrap();
    out
}

fn payloads(bodies: &[Body]) -> Vec<u8> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Event(e) => e.payload.as_ref().map(|p| p.data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_header_split_one_byte_per_write_is_masked_and_order_is_kept() {
    let mut redactor = Redactor::new(policy());
    let request = b"GET / HTTP/1.1\r\nAuthorization: Bearer abcdefghijklmnop\r\n\r\n";
    let mut out = Vec::new();
    for (i, byte) in request.iter().enumerate() {
        redactor.push(write(7, 3, &[*byte]), i as u64);
        out.extend(released(&mut redactor));
    }
    redactor.finish();
    out.extend(released(&mut redactor));
    assert_eq!(out.len(), request.len(), "every write comes out, in order");
    let data = payloads(&out);
    assert_eq!(data.len(), request.len());
    let text = String::from_utf8(data).unwrap();
    assert!(!text.contains("abcdefghijklmnop"), "{text}");
    assert!(
        text.starts_with("GET / HTTP/1.1\r\nAuthorization: "),
        "{text}"
    );
}

#[test]
fn frames_behind_a_held_payload_wait_for_it() {
    let mut redactor = Redactor::new(policy());
    redactor.push(write(7, 3, b"password=hun"), 0);
    redactor.push(write(8, 4, b"unrelated\n"), 1);
    let early = released(&mut redactor);
    redactor.push(write(7, 3, b"ter2&x=1\n"), 2);
    redactor.finish();
    let mut all = early;
    all.extend(released(&mut redactor));
    let text = String::from_utf8(payloads(&all)).unwrap();
    assert!(!text.contains("hunter2") && !text.contains("hun"), "{text}");
    assert!(text.contains("unrelated"), "{text}");
    let pids: Vec<u32> = all
        .iter()
        .filter_map(|b| match b {
            Body::Event(e) => Some(e.pid),
            _ => None,
        })
        .collect();
    assert_eq!(pids, [7, 8, 7], "recording order is kept");
}

/// A write whose payload was shed whole: its length is known, its bytes are not.
fn shed_write(pid: u32, fd: i64, length: u64) -> Body {
    let mut body = write(pid, fd, b"");
    if let Body::Event(event) = &mut body {
        event.ret = length as i64;
        let payload = event.payload.as_mut().unwrap();
        (payload.length, payload.lost_bytes) = (length, length);
        (payload.incomplete, payload.shed) = (true, true);
    }
    body
}

#[test]
fn a_payload_shed_whole_decides_what_its_stream_held() {
    let mut redactor = Redactor::new(policy());
    redactor.push(write(7, 3, b"password=hun"), 0);
    redactor.push(write(8, 4, b"unrelated\n"), 1);
    assert!(
        released(&mut redactor).is_empty(),
        "held behind the open value"
    );
    // The rest of the value was shed: nothing more of this stream can be joined to
    // what is held, so it is decided (fail-closed) and everything behind it goes out.
    redactor.push(shed_write(7, 3, 64), 2);
    let out = released(&mut redactor);
    assert_eq!(
        out.len(),
        3,
        "the held write, the other stream's and the shed one"
    );
    let text = String::from_utf8(payloads(&out)).unwrap();
    assert!(!text.contains("hun"), "{text}");
    assert!(text.contains("unrelated"), "{text}");
    // What follows the hole may be the rest of a secret: its first token is masked.
    redactor.push(write(7, 3, b"ter2 and more\n"), 3);
    let text = String::from_utf8(payloads(&released(&mut redactor))).unwrap();
    assert!(text.starts_with("****"), "{text}");
    assert!(text.ends_with("and more\n"), "{text}");
}

#[test]
fn a_reused_pid_and_fd_start_a_new_stream() {
    use recorder_proto::v1::Process;
    let mut redactor = Redactor::new(policy());
    redactor.push(write(7, 3, b"password=hun"), 0);
    let exit = Process {
        pid: 7,
        kind: ProcessKind::Exit.into(),
        ..Process::default()
    };
    redactor.push(Body::Process(exit), 1);
    // A new process got pid 7 while the old one's frames were still held.
    redactor.push(write(7, 3, b"ter2 is not a secret here\n"), 2);
    redactor.finish();
    let out = released(&mut redactor);
    assert_eq!(out.len(), 3);
    let text = String::from_utf8(payloads(&out)).unwrap();
    assert!(!text.contains("hun"), "{text}");
    assert!(text.contains("ter2 is not a secret here"), "{text}");
}

#[test]
fn argv_secrets_and_flag_values_are_masked() {
    let mut event = Event {
        argv: [
            "psql",
            "--password",
            "s3cret-value",
            "postgres://u:hunter2@db/app",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..Event::default()
    };
    redact_argv(&policy(), &mut event);
    assert_eq!(event.argv[0], "psql");
    assert_eq!(event.argv[1], "--password");
    assert_eq!(event.argv[2], "************");
    assert!(!event.argv[3].contains("hunter2"), "{}", event.argv[3]);
    assert!(event.redactions.iter().any(|r| r.field == "argv[2]"));
    assert!(event.redactions.iter().any(|r| r.field == "argv[3]"));
}

#[test]
fn never_captured_files_keep_only_their_length() {
    let mut redactor = Redactor::new(policy());
    let Body::Event(mut event) = write(7, 5, b"root:$6$salt$hash:19000::::::\n") else {
        unreachable!()
    };
    event.resource = Some(Resource {
        kind: Kind::File.into(),
        name: "/etc/shadow".to_owned(),
        ..Resource::default()
    });
    redactor.push(Body::Event(event), 0);
    let out = released(&mut redactor);
    let Body::Event(event) = &out[0] else {
        panic!("an event")
    };
    let payload = event.payload.as_ref().unwrap();
    assert!(payload.data.is_empty());
    assert_eq!((payload.length, payload.redactions[0].length), (30, 30));
}
