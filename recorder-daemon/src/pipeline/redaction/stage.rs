//! Where the redaction shards run: on worker threads (`--threads N`), so the pipeline
//! decodes, assembles and writes while payloads are redacted, or on the pipeline's own
//! thread (`--threads 0`). A stream always goes to the same shard, so its payloads are
//! redacted in order; the pipeline puts frames back in recording order (`Frames`).
//!
//! Requests travel in batches, a ring batch's worth at a time ([`Stage::flush`]): a
//! message per payload would wake a worker per payload, and in measurement the wake-ups
//! cost more than the redaction. Each batch comes back as one message with the pieces it
//! decided, and the emptied lists go round again, so nothing is allocated per batch.
//!
//! The channels are bounded both ways. When a worker falls behind, the pipeline waits for
//! its answers, handing them on, until its queue has room (so neither side can wait on the
//! other for ever); the drain's budget then sheds payloads, counted in Loss frames, rather
//! than events.

use std::{mem, sync::Arc, thread::JoinHandle, time::Duration};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use recorder_redact::Policy;

use super::shard::{Piece, Request, Shard, StreamId};

/// Requests sent to a worker in one message, at most.
pub(super) const BATCH: usize = 256;
/// Batches a worker may have queued.
pub(super) const BATCHES_PER_WORKER: usize = 8;
/// A worker is gone only if it panicked, which is a bug: the recording cannot go on
/// without the payloads it holds, and none of them may be written unredacted.
const WORKER_GONE: &str = "a redaction worker stopped";
/// How often a pipeline waiting for its workers' last answers checks that they still run.
const WORKER_CHECK: Duration = Duration::from_millis(100);

/// Requests for a worker, with an emptied list for its answer.
struct Work {
    requests: Vec<Request>,
    pieces: Vec<Piece>,
}

/// A worker's answer to one [`Work`]: the pieces it decided, and the emptied request list.
struct Done {
    pieces: Vec<Piece>,
    requests: Vec<Request>,
}

pub enum Stage {
    /// `--threads 0`: the one shard runs on the pipeline's thread.
    Inline(Shard),
    Workers(Workers),
}

pub struct Workers {
    policy: Arc<Policy>,
    count: usize,
    /// Started on the first request, not with the recording: capabilities are dropped
    /// per thread, after the probes are attached, so a thread started before that would
    /// keep them (and `privileges::keep_only` refuses to run beside other threads).
    running: Option<Running>,
}

struct Running {
    work: Vec<Sender<Work>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
    /// Each worker's requests not sent yet.
    outboxes: Vec<Vec<Request>>,
    /// Emptied lists, for the next batches and answers.
    spare_requests: Vec<Vec<Request>>,
    spare_pieces: Vec<Vec<Piece>>,
    /// Batches sent and not answered yet.
    in_flight: usize,
    /// The worker the last emptied redaction list went to.
    recycle_to: usize,
}

impl Stage {
    pub fn new(policy: Arc<Policy>, threads: usize) -> Self {
        match threads {
            0 => Stage::Inline(Shard::new(policy)),
            count => Stage::Workers(Workers {
                policy,
                count,
                running: None,
            }),
        }
    }

    /// Queues a request about `stream` for its shard. `on_piece` gets the pieces handed
    /// back meanwhile (with `--threads 0`, those this request decided).
    pub fn send_to_stream(
        &mut self,
        stream: StreamId,
        request: Request,
        on_piece: impl FnMut(Piece),
    ) {
        match self {
            Stage::Inline(shard) => shard.handle(request, &mut { on_piece }),
            Stage::Workers(workers) => {
                let Some(running) = workers.start() else {
                    return self.fall_back_inline(request, on_piece);
                };
                let shard = (stream % running.work.len() as u64) as usize;
                running.queue(shard, request, on_piece);
            }
        }
    }

    /// Gives a piece's emptied redaction list back to a shard, for its next pieces.
    pub fn recycle(&mut self, list: Vec<recorder_redact::Redaction>) {
        if list.capacity() == 0 {
            return;
        }
        match self {
            Stage::Inline(shard) => shard.handle(Request::Recycle(list), &mut |_| {}),
            Stage::Workers(Workers {
                running: Some(running),
                ..
            }) => {
                // To each worker in turn; it goes with the worker's next batch.
                running.recycle_to = (running.recycle_to + 1) % running.work.len();
                running.outboxes[running.recycle_to].push(Request::Recycle(list));
            }
            Stage::Workers(_) => {}
        }
    }

    /// Queues a request for every shard (`Expire`, `Finish`).
    pub fn send_to_all(&mut self, request: impl Fn() -> Request, mut on_piece: impl FnMut(Piece)) {
        match self {
            Stage::Inline(shard) => shard.handle(request(), &mut on_piece),
            Stage::Workers(workers) => {
                // Workers not started yet hold no streams.
                if let Some(running) = workers.running.as_mut() {
                    for shard in 0..running.work.len() {
                        running.queue(shard, request(), &mut on_piece);
                    }
                }
            }
        }
    }

    /// Hands on the pieces decided so far, without waiting for more.
    pub fn poll(&mut self, mut on_piece: impl FnMut(Piece)) {
        if let Some(running) = self.running() {
            while let Ok(done) = running.done.try_recv() {
                receive(done, running, &mut on_piece);
            }
        }
    }

    /// Sends what is queued (the end of a ring batch, an expiry), then polls.
    pub fn flush(&mut self, mut on_piece: impl FnMut(Piece)) {
        if let Some(running) = self.running() {
            for shard in 0..running.work.len() {
                running.send(shard, &mut on_piece);
            }
        }
        self.poll(on_piece);
    }

    /// Sends what is queued and waits until the workers have answered all of it.
    pub fn settle(&mut self, mut on_piece: impl FnMut(Piece)) {
        self.flush(&mut on_piece);
        if let Some(running) = self.running() {
            while running.in_flight > 0 {
                match running.done.recv_timeout(WORKER_CHECK) {
                    Ok(done) => receive(done, running, &mut on_piece),
                    // A worker that panicked never answers; the others keep the channel
                    // open, so only its thread can tell.
                    Err(_) if running.threads.iter().any(JoinHandle::is_finished) => {
                        panic!("{WORKER_GONE}")
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// The worker threads running now.
    pub fn workers(&self) -> &[JoinHandle<()>] {
        match self {
            Stage::Workers(Workers {
                running: Some(running),
                ..
            }) => &running.threads,
            _ => &[],
        }
    }

    /// Ends the workers (after [`settle`](Self::settle), they hold nothing).
    pub fn stop(&mut self) {
        if let Stage::Workers(workers) = self {
            if let Some(running) = workers.running.take() {
                // Their queues close, so each worker's loop ends.
                drop(running.work);
                for thread in running.threads {
                    let _ = thread.join();
                }
            }
        }
    }

    fn running(&mut self) -> Option<&mut Running> {
        match self {
            Stage::Workers(workers) => workers.running.as_mut(),
            Stage::Inline(_) => None,
        }
    }

    /// No thread could be started: redaction runs here, as with `--threads 0`. Nothing
    /// was sent to a worker yet, so no stream is lost.
    fn fall_back_inline(&mut self, request: Request, mut on_piece: impl FnMut(Piece)) {
        let Stage::Workers(workers) = self else {
            return;
        };
        let mut shard = Shard::new(workers.policy.clone());
        shard.handle(request, &mut on_piece);
        *self = Stage::Inline(shard);
    }
}

impl Workers {
    fn start(&mut self) -> Option<&mut Running> {
        if self.running.is_none() {
            match Running::start(&self.policy, self.count) {
                Ok(running) => self.running = Some(running),
                Err(error) => {
                    tracing::warn!(%error, "could not start redaction workers; redacting on the pipeline's thread");
                    return None;
                }
            }
        }
        self.running.as_mut()
    }
}

impl Running {
    fn start(policy: &Arc<Policy>, count: usize) -> std::io::Result<Running> {
        let (done_tx, done) = bounded(count * BATCHES_PER_WORKER);
        let mut running = Running {
            work: Vec::with_capacity(count),
            done,
            threads: Vec::with_capacity(count),
            outboxes: (0..count).map(|_| Vec::with_capacity(BATCH)).collect(),
            spare_requests: Vec::new(),
            spare_pieces: Vec::new(),
            in_flight: 0,
            recycle_to: 0,
        };
        for index in 0..count {
            let (work_tx, work) = bounded(BATCHES_PER_WORKER);
            let shard = Shard::new(policy.clone());
            let done = done_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("redact-{index}"))
                .spawn(move || run_worker(shard, work, done));
            // On an error, the workers already started end when `running` is dropped.
            running.threads.push(thread?);
            running.work.push(work_tx);
        }
        Ok(running)
    }

    fn queue(&mut self, shard: usize, request: Request, mut on_piece: impl FnMut(Piece)) {
        self.outboxes[shard].push(request);
        if self.outboxes[shard].len() >= BATCH {
            self.send(shard, &mut on_piece);
        }
    }

    /// Sends the shard's queued requests as one batch.
    fn send(&mut self, shard: usize, mut on_piece: impl FnMut(Piece)) {
        if self.outboxes[shard].is_empty() {
            return;
        }
        let next = self.spare_requests.pop().unwrap_or_default();
        let work = Work {
            requests: mem::replace(&mut self.outboxes[shard], next),
            pieces: self.spare_pieces.pop().unwrap_or_default(),
        };
        self.in_flight += 1;
        let mut work = work;
        loop {
            match self.work[shard].try_send(work) {
                Ok(()) => return,
                Err(TrySendError::Full(full)) => work = full,
                Err(TrySendError::Disconnected(_)) => panic!("{WORKER_GONE}"),
            }
            // The worker is behind, so it has batches to answer: take an answer (any
            // worker's) and try again. Waiting on the answers, never on the queue alone,
            // is what keeps a worker blocked on a full answer queue from waiting on us.
            let done = self.done.recv().expect(WORKER_GONE);
            receive(done, self, &mut on_piece);
        }
    }
}

/// Hands on a batch's pieces and keeps its lists for the next batches.
fn receive(done: Done, running: &mut Running, mut on_piece: impl FnMut(Piece)) {
    let Done {
        mut pieces,
        requests,
    } = done;
    running.in_flight -= 1;
    pieces.drain(..).for_each(&mut on_piece);
    running.spare_pieces.push(pieces);
    running.spare_requests.push(requests);
}

/// A worker: runs its shard until the pipeline closes its queue (or stops listening).
fn run_worker(mut shard: Shard, work: Receiver<Work>, done: Sender<Done>) {
    for Work {
        mut requests,
        mut pieces,
    } in work.iter()
    {
        for request in requests.drain(..) {
            shard.handle(request, &mut |piece| pieces.push(piece));
        }
        if done.send(Done { pieces, requests }).is_err() {
            return;
        }
    }
}
