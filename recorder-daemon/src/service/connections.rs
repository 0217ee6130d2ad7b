//! Control connections up to their request: each is read by a task of its own, so a client
//! that connects and sends nothing, or sends without end, holds only its task (the request's
//! deadline and size cap end it), never the service loop that answers everyone else. Each
//! uid may hold at most `MAX_PER_UID` connections at once; past that it is refused at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use recorder_control::{Request, Response};
use tokio::{net::UnixStream, sync::mpsc};

use super::{
    requests::{read_request, reply},
    socket::Peer,
};

/// Connections one uid may hold open at once (reading, waiting for an answer, or waiting
/// for a recording to stop).
pub const MAX_PER_UID: usize = 16;

/// Open connections per uid.
#[derive(Clone, Default)]
pub(super) struct Gate(Arc<Mutex<HashMap<u32, usize>>>);

/// One connection's place in its uid's allowance, given back when dropped.
pub(super) struct Slot {
    gate: Gate,
    uid: u32,
}

impl Gate {
    /// A slot for `uid`, or `None` when it holds `MAX_PER_UID` already.
    pub(super) fn admit(&self, uid: u32) -> Option<Slot> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(uid).or_default();
        if *count >= MAX_PER_UID {
            return None;
        }
        *count += 1;
        Some(Slot {
            gate: self.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .gate
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// An authorized client, holding its slot for as long as its connection is open.
pub(super) struct Client {
    pub(super) stream: UnixStream,
    pub(super) peer: Peer,
    _slot: Slot,
}

/// A client's request, read, for the service loop to answer.
pub(super) struct Incoming {
    pub(super) client: Client,
    pub(super) request: Request,
}

/// Reads the request of an authorized peer on a task of its own and hands it to the loop;
/// a request that is late, too long or malformed is answered by the task.
pub(super) fn read_in_background(
    stream: UnixStream,
    peer: Peer,
    slot: Slot,
    to_loop: mpsc::Sender<Incoming>,
) {
    tokio::spawn(async move {
        let mut client = Client {
            stream,
            peer,
            _slot: slot,
        };
        match read_request(&mut client.stream).await {
            // The loop is gone only when the service is stopping.
            Ok(request) => {
                let _ = to_loop.send(Incoming { client, request }).await;
            }
            Err(message) => reply(&mut client.stream, &Response::Error { message }).await,
        }
    });
}

/// Answers `message` on a task of its own, so a refused client cannot hold the loop either.
pub(super) fn refuse(mut stream: UnixStream, message: String) {
    tokio::spawn(async move { reply(&mut stream, &Response::Error { message }).await });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_gets_its_allowance_back_as_its_connections_close() {
        let gate = Gate::default();
        let mut held: Vec<Slot> = (0..MAX_PER_UID).map(|_| gate.admit(7).unwrap()).collect();
        assert!(gate.admit(7).is_none(), "over the allowance");
        assert!(gate.admit(8).is_some(), "another uid has its own");
        held.pop();
        assert!(gate.admit(7).is_some());
        held.clear();
        assert!(
            gate.0.lock().unwrap().get(&7).is_none(),
            "nothing left over"
        );
    }
}
