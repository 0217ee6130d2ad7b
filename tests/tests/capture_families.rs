//! Vectored and message I/O, dup2, rename and unlink, recorded exactly. See: issue #3.

use recorder_proto::v1::payload::Direction;
use recorder_tests::{record_gated_workload, require_privileges};

#[test]
fn vectored_io_dup2_rename_and_messages() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let run = record_gated_workload(
        &["vectored", work.path().to_str().unwrap()],
        &work.path().join("recordings"),
    );
    let (report, recording, pid) = (run.report, run.recording, run.pid);
    let events = recording.of_pid(pid);
    let find = |syscall: &str| {
        events
            .iter()
            .find(|e| e.syscall == syscall)
            .unwrap_or_else(|| panic!("no {syscall} in {events:#?}"))
    };
    let payload = |syscall: &str| {
        find(syscall)
            .payload
            .clone()
            .unwrap_or_else(|| panic!("{syscall} has no payload"))
    };

    let writev = payload("writev");
    assert_eq!(writev.data, b"first part|second part|third part");
    assert_eq!(
        (writev.direction(), writev.incomplete),
        (Direction::Out, false)
    );
    assert_eq!(
        find("writev").resource.as_ref().unwrap().name,
        report["path"]
    );
    let readv = payload("readv");
    assert_eq!(
        readv.data, b"first part|second part|third part",
        "both iovecs, in order"
    );
    assert_eq!(readv.direction(), Direction::In);

    let dup2 = find("dup2");
    assert_eq!((dup2.fd, dup2.ret), (report["fd"].parse().unwrap(), 40));
    let through_copy = events
        .iter()
        .find(|e| e.syscall == "write" && e.fd == 40)
        .expect("write on the dup");
    assert_eq!(through_copy.payload.as_ref().unwrap().data, b"|via dup2");
    assert_eq!(
        through_copy.resource.as_ref().unwrap().name,
        report["path"],
        "the dup names the same file"
    );

    let rename = events
        .iter()
        .find(|e| e.syscall.starts_with("rename"))
        .expect("rename");
    assert_eq!(
        (rename.path.as_str(), rename.new_path.as_str()),
        (report["path"].as_str(), report["renamed"].as_str())
    );
    let unlink = events
        .iter()
        .find(|e| e.syscall.starts_with("unlink"))
        .expect("unlink");
    assert_eq!(unlink.path, report["renamed"]);

    let sent = find("sendmsg");
    assert_eq!(sent.fd, report["sender"].parse::<i64>().unwrap());
    assert_eq!(
        sent.payload.as_ref().unwrap().data,
        b"hello over sendmsg",
        "two iovecs"
    );
    let received = find("recvmsg");
    assert_eq!(received.fd, report["receiver"].parse::<i64>().unwrap());
    assert_eq!(
        received.payload.as_ref().unwrap().data,
        b"hello over sendmsg"
    );
}
