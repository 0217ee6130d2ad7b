use recorder_proto::v1::{payload::Direction, resource::Kind, Event, Resource};

use super::*;

fn policy() -> Arc<Policy> {
    Arc::new(Policy::new(&recorder_redact::Config::default()).unwrap())
}

fn write(pid: u32, fd: i64, data: &[u8]) -> Body {
    Body::Event(Box::new(Event {
        pid,
        fd,
        syscall: "write".to_owned(),
        syscall_nr: recorder_syscalls::by_name("write").unwrap().nr as u32,
        ret: data.len() as i64,
        resource: Some(Box::new(Resource {
            kind: Kind::Socket.into(),
            ..Resource::default()
        })),
        payload: Some(Payload {
            direction: Direction::Out.into(),
            data: data.to_vec(),
            length: data.len() as u64,
            ..Payload::default()
        }),
        ..Event::default()
    }))
}

/// Every test runs with the shards on the caller's thread and on two workers.
const THREADS: [usize; 2] = [0, 2];

/// What the redactor has decided once the shards have answered everything sent so far.
fn released(redactor: &mut Redactor) -> Vec<Body> {
    redactor.settle();
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
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
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
}

#[test]
fn frames_behind_a_held_payload_wait_for_it() {
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
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
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
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
}

#[test]
fn a_reused_pid_and_fd_start_a_new_stream() {
    use recorder_proto::v1::Process;
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
        redactor.push(write(7, 3, b"password=hun"), 0);
        let exit = Process {
            pid: 7,
            kind: ProcessKind::Exit.into(),
            ..Process::default()
        };
        redactor.push(Body::Process(Box::new(exit)), 1);
        // A new process got pid 7 while the old one's frames were still held.
        redactor.push(write(7, 3, b"ter2 is not a secret here\n"), 2);
        redactor.finish();
        let out = released(&mut redactor);
        assert_eq!(out.len(), 3);
        let text = String::from_utf8(payloads(&out)).unwrap();
        assert!(!text.contains("hun"), "{text}");
        assert!(text.contains("ter2 is not a secret here"), "{text}");
    }
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

/// Also after more other paths than the daemon remembers rules for.
#[test]
fn never_captured_files_keep_only_their_length() {
    let others = (0..300).map(|i| format!("/srv/data/{i}.txt"));
    let paths: Vec<String> = ["/etc/shadow".to_owned()]
        .into_iter()
        .chain(others)
        .chain(["/etc/shadow".to_owned()])
        .collect();
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
        for (fd, path) in paths.iter().enumerate() {
            let Body::Event(mut event) = write(7, fd as i64, b"root:$6$salt$hash:19000::::::\n")
            else {
                unreachable!()
            };
            event.resource = Some(Box::new(Resource {
                kind: Kind::File.into(),
                name: path.clone(),
                ..Resource::default()
            }));
            redactor.push(Body::Event(event), 0);
        }
        assert!(redactor.streams.never.len() <= streams::NEVER_REMEMBERED);
        redactor.finish();
        let out = released(&mut redactor);
        assert_eq!(out.len(), paths.len());
        for body in &out {
            let Body::Event(event) = body else {
                panic!("an event")
            };
            let payload = event.payload.as_ref().unwrap();
            let name = &event.resource.as_ref().unwrap().name;
            if name == "/etc/shadow" {
                assert!(payload.data.is_empty());
                assert_eq!((payload.length, payload.redactions[0].length), (30, 30));
            } else {
                assert_eq!(payload.data.len(), 30, "{name}");
            }
        }
    }
}

/// Writes on many streams, some carrying a secret split across two writes, some closed
/// and their fd numbers reused; `close` events end streams as the pipeline's do.
fn many_streams(count: usize) -> Vec<Body> {
    let mut bodies = Vec::new();
    for i in 0..count {
        let (pid, fd) = (100 + (i % 7) as u32, 3 + (i % 11) as i64);
        let text = match i % 5 {
            0 => format!("GET /{i} HTTP/1.1\r\nAuthorization: Bearer tok"),
            1 => format!("en{i:08}abcdef\r\n\r\n"),
            2 => format!("password=hunter{i}&next=1\n"),
            _ => format!("ordinary line {i} with nothing secret in it\n"),
        };
        bodies.push(write(pid, fd, text.as_bytes()));
        if i % 13 == 12 {
            bodies.push(close(pid, fd));
        }
    }
    bodies
}

fn close(pid: u32, fd: i64) -> Body {
    fd_call("close", pid, fd, 0)
}

/// `syscall` on `fd`, returning `ret`, with no payload.
fn fd_call(syscall: &str, pid: u32, fd: i64, ret: i64) -> Body {
    Body::Event(Box::new(Event {
        pid,
        fd,
        ret,
        syscall: syscall.to_owned(),
        syscall_nr: recorder_syscalls::by_name(syscall).unwrap().nr as u32,
        ..Event::default()
    }))
}

/// Everything pushed, then finished, comes out; pushes never wait for a release.
fn redact_all(threads: usize, bodies: &[Body]) -> Vec<Body> {
    let mut redactor = Redactor::new(policy(), threads);
    for (i, body) in bodies.iter().enumerate() {
        redactor.push(body.clone(), i as u64);
    }
    redactor.finish();
    released(&mut redactor)
}

#[test]
fn workers_give_exactly_what_the_callers_thread_gives_in_recording_order() {
    let bodies = many_streams(3_000);
    let inline = redact_all(0, &bodies);
    assert_eq!(inline.len(), bodies.len());
    let text = String::from_utf8(payloads(&inline)).unwrap();
    assert!(!text.contains("hunter"), "the fixture's secrets are masked");
    for threads in [1, 3] {
        assert!(
            redact_all(threads, &bodies) == inline,
            "{threads} workers: the same frames, bytes and redactions, in the same order"
        );
    }
}

#[test]
fn a_full_reply_queue_does_not_stall_the_pipeline() {
    // Far more payloads than both queues hold, with nothing released until the end: the
    // pipeline has to take replies while it waits for room in a worker's queue.
    let bodies = many_streams(16 * stage::BATCH * stage::BATCHES_PER_WORKER);
    let (done, outcome) = std::sync::mpsc::channel();
    let pushed = bodies.clone();
    std::thread::spawn(move || done.send(redact_all(2, &pushed)));
    // A stalled pipeline fails here rather than hanging the suite.
    let out = outcome
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the pipeline and its workers waited on each other");
    assert_eq!(out.len(), bodies.len(), "every frame comes out");
    let in_order = out
        .iter()
        .zip(&bodies)
        .all(|(out, pushed)| match (out, pushed) {
            (Body::Event(a), Body::Event(b)) => {
                (a.pid, a.fd, &a.syscall) == (b.pid, b.fd, &b.syscall)
            }
            _ => false,
        });
    assert!(in_order, "in the order pushed");
}

#[test]
fn tls_plaintext_and_kept_ciphertext_on_one_descriptor_are_separate_streams() {
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
        let tls_write = |data: &[u8]| {
            let mut body = write(7, 3, data);
            if let Body::Event(event) = &mut body {
                event.syscall = "SSL_write".to_owned();
                event.tls = Some(recorder_proto::v1::Tls {
                    library: "openssl".to_owned(),
                });
            }
            body
        };
        // The plaintext's header is split by the ciphertext write of its first part: joined
        // with it, the header line would end inside the ciphertext and the rest of the
        // token be missed.
        redactor.push(tls_write(b"GET / HTTP/1.1\r\nAuthorization: Bea"), 1);
        redactor.push(write(7, 3, b"\x17\x03\x03 sealed record\n"), 2);
        redactor.push(tls_write(b"rer abcdefghijklmnop\r\n\r\n"), 3);
        redactor.finish();
        let out = released(&mut redactor);
        let each: Vec<String> = out
            .iter()
            .map(|b| String::from_utf8_lossy(&payloads(std::slice::from_ref(b))).into_owned())
            .collect();
        assert!(!each.concat().contains("abcdefghijklmnop"), "{each:?}");
        assert_eq!(each[1], "\x17\x03\x03 sealed record\n", "{each:?}");
    }
}

#[test]
fn past_the_memory_bound_the_oldest_holds_are_decided_masked_and_counted() {
    let config = recorder_redact::Config {
        hold_back: recorder_redact::HoldBackConfig {
            millis: 60_000,
            memory: 1024 * 1024,
            ..Default::default()
        },
        ..Default::default()
    };
    let policy = Arc::new(Policy::new(&config).unwrap());
    for threads in THREADS {
        let mut redactor = Redactor::new(policy.clone(), threads);
        // 400 streams, each holding an unfinished header line of 2 KiB: 1.6 MiB of
        // payload, held twice, with no line end and no time bound to decide it.
        let line = |i: u32| format!("Authorization: Bearer tok{i:04}{}", "x".repeat(2000));
        let mut out = Vec::new();
        for i in 0..400 {
            redactor.push(write(7, 10 + i64::from(i), line(i).as_bytes()), 0);
            out.extend(released(&mut redactor));
            if redactor.over_memory() {
                redactor.relieve_memory();
                out.extend(released(&mut redactor));
            }
            assert!(
                redactor.queued_bytes <= 1024 * 1024 + 2 * 4096,
                "what waits stays near the bound ({} bytes)",
                redactor.queued_bytes
            );
        }
        let forced = redactor.holds_forced();
        assert!(forced > 0, "the bound forced holds");
        assert!(
            out.len() as u64 >= forced,
            "each forced hold let its frame out: {} frames, {forced} holds",
            out.len()
        );
        let text = String::from_utf8(payloads(&out)).unwrap();
        assert!(!text.contains("tok0"), "a forced hold's tail is masked");
        assert!(text.starts_with("Authorization: "), "{}", &text[..60]);
        redactor.finish();
        assert_eq!(released(&mut redactor).len() + out.len(), 400);
    }
}

/// `body`'s event, begun at `entered_ns` and ended at `ended_ns`.
fn timed(body: Body, entered_ns: u64, ended_ns: u64) -> Body {
    let Body::Event(event) = body else {
        unreachable!("an event")
    };
    Body::Event(Box::new(Event {
        mono_ns: ended_ns,
        duration_ns: ended_ns - entered_ns,
        ..*event
    }))
}

/// Another thread closes a socket on fd 3 from t=20 to t=40, and fd 3 is reused by an open
/// at t=25..30. The close's event comes after the file's first write: it must not end the
/// file's stream, or a secret split across the file's writes would come out whole.
#[test]
fn a_close_seen_after_its_fd_was_reused_does_not_cut_the_new_stream() {
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
        redactor.push(timed(write(7, 3, b"GET / HTTP/1.1\r\nX: y"), 1, 2), 2);
        redactor.push(timed(fd_call("openat", 7, 3, 3), 25, 30), 30);
        redactor.push(timed(write(7, 3, b"password=hun"), 31, 32), 32);
        redactor.push(timed(close(7, 3), 20, 40), 40);
        redactor.push(timed(write(7, 3, b"ter2\n"), 41, 42), 42);
        redactor.finish();
        let text = String::from_utf8(payloads(&released(&mut redactor))).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\n"), "{text}");
        assert!(!text.contains("hun") && !text.contains("ter2"), "{text}");
    }
}

/// `dup2(3, 3)` changes nothing: the stream on fd 3 goes on, and a secret split around it
/// is still found.
#[test]
fn dup2_onto_itself_does_not_end_the_stream() {
    for threads in THREADS {
        let mut redactor = Redactor::new(policy(), threads);
        redactor.push(write(7, 3, b"password=hun"), 0);
        redactor.push(fd_call("dup2", 7, 3, 3), 1);
        redactor.push(write(7, 3, b"ter2\n"), 2);
        redactor.finish();
        let text = String::from_utf8(payloads(&released(&mut redactor))).unwrap();
        assert!(!text.contains("hun") && !text.contains("ter2"), "{text}");
    }
}
