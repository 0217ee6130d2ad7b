//! The ring's one consumer, on a thread of its own: it copies records out of the ring in
//! batches as fast as they come, so the ring never waits on redaction, encoding or the disk.
//!
//! The batches queue for the pipeline in memory, with a budget. Past `SHED_BYTES` queued,
//! payload chunks are no longer copied: each becomes a small `SHED_DATA` marker, so its
//! event is still recorded, marked shed with its bytes counted as lost. Past `PAUSE_BYTES`
//! (syscall records alone growing the queue) the drain pauses until the pipeline catches up;
//! the ring then fills, the probes shed payloads at their own high-water mark, and only
//! after that count lost records. Memory stays bounded and every loss is counted.
//!
//! Each batch says up to when the targets have been seen (`Batch::seen_to_ns`): redaction's
//! time bound counts in the targets' time from it, however far behind the pipeline runs.

use std::{
    mem::MaybeUninit,
    os::fd::{AsFd, OwnedFd},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc as std_mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use crossbeam_queue::ArrayQueue;
use recorder_common::{kind, DataRecord, EventHeader};
use recorder_store::clock;
use rustix::event::{epoll, eventfd, EventfdFlags};
use tokio::sync::mpsc;

/// The probes wake the daemon only once a quarter of the ring is full (a wake-up per record
/// costs the traced program more than the copy), so the drain also runs on a timer: every
/// millisecond while records arrive, backing off to every 32 ms while none do.
const DRAIN_MIN: Duration = Duration::from_millis(1);
const DRAIN_MAX: Duration = Duration::from_millis(32);
/// A batch is handed on once it holds this much, or part-filled when the pipeline has
/// nothing queued (or a flush asks for it).
const BATCH_BYTES: usize = 256 * 1024;
/// What a batch can hold without growing: one more record (length and bytes) past
/// `BATCH_BYTES`.
const BATCH_CAPACITY: usize = BATCH_BYTES + 4 + recorder_common::SCRATCH_BYTES;
/// Batches made before the drain starts: enough for the whole backlog budget, so the drain
/// never calls the allocator for one. Making a fresh 256 KiB buffer waits on the
/// allocator's locks; measured with the dd burst of "Events before payloads"
/// (docs/BENCHMARKS.md), that wait took 3 to 96 ms when the pipeline thread held them,
/// longer than a 256 KiB ring lasts, and records were lost. Untouched, they cost address
/// space, not memory.
const POOL_BATCHES: usize = PAUSE_BYTES as usize / BATCH_BYTES + 2;
/// epoll tokens: the ring, and the eventfd a request writes to.
const RING: u64 = 0;
const WAKE: u64 = 1;
/// Queued bytes past which payload chunks are shed (replaced by markers).
pub const SHED_BYTES: u64 = 64 * 1024 * 1024;
/// Queued bytes past which the drain pauses until the pipeline catches up: room past
/// `SHED_BYTES` for about 1.5 million syscall records (about 150 bytes each with a shed
/// marker), so a burst the size of a dd of a few GB keeps every event.
pub const PAUSE_BYTES: u64 = 256 * 1024 * 1024;

/// Makes the calling thread real-time (SCHED_FIFO, the lowest priority) so that the drain
/// thread it starts next inherits the policy; `false` where that is not permitted (no
/// CAP_SYS_NICE, or systemd's RestrictRealtime). Call it while capabilities are still held.
///
/// Why: on a busy host a woken drain thread can wait a scheduler slice (milliseconds) behind
/// the pipeline or the target itself, and a burst fills a small ring in less. Real-time, it
/// runs as soon as it wakes. Its work is bounded (one pass over the ring, at most every
/// millisecond), and the kernel's real-time throttling caps it in any case.
pub fn realtime_for_drain() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter struct.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Puts the calling thread back to the normal policy (always permitted).
fn normal_policy() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
}

/// Records copied out of the ring, each as its length (u32, native order) and its bytes.
pub struct Batch {
    bytes: Vec<u8>,
    /// Every record committed to the ring before this moment (monotonic ns) is in this
    /// batch or an earlier one: once the pipeline has handled it, it has seen the targets
    /// up to then (redaction's time bound counts from it; `Pipeline::expire`).
    seen_to_ns: u64,
}

impl Batch {
    fn with_capacity(bytes: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes),
            seen_to_ns: 0,
        }
    }

    /// A handled batch's buffer, emptied for the next one.
    fn recycled(mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        Batch {
            bytes,
            seen_to_ns: 0,
        }
    }

    fn push(&mut self, record: &[u8]) {
        self.bytes
            .extend_from_slice(&(record.len() as u32).to_ne_bytes());
        self.bytes.extend_from_slice(record);
    }

    /// Bytes it holds (what the backlog budget counts).
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// See the field.
    pub fn seen_to_ns(&self) -> u64 {
        self.seen_to_ns
    }

    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (record, tail) = tail.split_at(u32::from_ne_bytes(*len) as usize);
            rest = tail;
            Some(record)
        })
    }
}

/// What the drain sends the pipeline.
pub enum Message {
    Records(Batch),
    /// Everything the ring held when the flush was asked for has been sent before this;
    /// `seen_to_ns` as a batch's, for when no batch comes (targets that do nothing).
    Flushed {
        seen_to_ns: u64,
    },
}

enum Request {
    Flush,
    Stop,
}

/// When [`Consumer::take_all`] sends a part-filled batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Send {
    /// At once: a flush was asked for.
    Now,
    /// Once the pipeline has caught up (a later pass sends it).
    WhenDue,
}

/// The drain thread and its two channels.
pub struct Drain {
    requests: std_mpsc::Sender<Request>,
    /// Handled batches' buffers go back to the drain, so steady state allocates none.
    spare: Arc<ArrayQueue<Vec<u8>>>,
    wake: Arc<OwnedFd>,
    messages: mpsc::UnboundedReceiver<Message>,
    /// Bytes sent and not yet handled by the pipeline.
    queued: Arc<AtomicU64>,
    /// Flushes asked for and not yet answered by their `Flushed`.
    flushes_waiting: u32,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    /// Starts the drain thread. `realtime`: what [`realtime_for_drain`] returned on this
    /// thread; the new thread inherits the policy and this thread goes back to normal.
    pub fn start(ring: RingBuf<MapData>, realtime: bool) -> std::io::Result<Self> {
        let drain = Drain::spawn(ring);
        if realtime {
            normal_policy();
        } else {
            tracing::warn!(
                "The ring's drain runs at normal priority (real-time scheduling is not permitted \
                 here: CAP_SYS_NICE, RestrictRealtime): on a busy host a burst may lose events \
                 sooner."
            );
        }
        drain
    }

    fn spawn(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        // Edge-triggered: the ring is readable whenever it holds anything, but only the
        // probes' forced wake-ups (a quarter full) should cut the timer short.
        for (fd, token) in [(ring.as_fd(), RING), (wake.as_fd(), WAKE)] {
            let data = epoll::EventData::new_u64(token);
            epoll::add(
                &epoll,
                fd,
                data,
                epoll::EventFlags::IN | epoll::EventFlags::ET,
            )?;
        }
        let (requests, request_rx) = std_mpsc::channel();
        // One slot for every buffer there is, so a handled one always fits.
        let spare = Arc::new(ArrayQueue::new(POOL_BATCHES + 1));
        let (message_tx, messages) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicU64::new(0));
        // Room for every buffer to come back (and the odd one made past the budget), so
        // the pool itself never grows on the drain thread.
        let mut pool = Vec::with_capacity(2 * POOL_BATCHES);
        pool.extend((0..POOL_BATCHES).map(|_| Vec::with_capacity(BATCH_CAPACITY)));
        let consumer = Consumer {
            ring,
            epoll,
            wake: wake.clone(),
            requests: request_rx,
            spare: spare.clone(),
            messages: message_tx,
            queued: queued.clone(),
            batch: Batch::with_capacity(BATCH_CAPACITY),
            emptied_from_ns: 0,
            pool,
        };
        let thread = std::thread::Builder::new()
            .name("recorderd-drain".into())
            .spawn(move || consumer.run())?;
        Ok(Drain {
            requests,
            spare,
            wake,
            messages,
            queued,
            flushes_waiting: 0,
            thread: Some(thread),
        })
    }

    /// The next message; `None` once the drain has stopped.
    pub async fn next(&mut self) -> Option<Message> {
        let message = self.messages.recv().await;
        if let Some(Message::Flushed { .. }) = message {
            self.flushes_waiting -= 1;
        }
        message
    }

    /// The pipeline has handled `batch`: its bytes leave the backlog and its buffer goes
    /// back to the drain.
    pub fn handled(&self, batch: Batch) {
        self.queued
            .fetch_sub(batch.bytes() as u64, Ordering::Relaxed);
        // A lock-free slot, not a channel: a channel frees its blocks on the drain's side,
        // and a free can wait on the allocator's lock while this thread holds it (measured:
        // 47 ms, a lost burst).
        let _ = self.spare.push(batch.bytes);
    }

    /// Asks for everything in the ring now; a `Flushed` message follows it.
    pub fn flush(&mut self) {
        if self.ask(Request::Flush) {
            self.flushes_waiting += 1;
        }
    }

    /// Whether a flush asked for has not been answered yet.
    pub fn flushing(&self) -> bool {
        self.flushes_waiting > 0
    }

    /// Whether the pipeline has handled every batch sent to it.
    pub fn caught_up(&self) -> bool {
        self.queued.load(Ordering::Relaxed) == 0
    }

    /// `false` once the drain thread is gone.
    fn ask(&self, request: Request) -> bool {
        let sent = self.requests.send(request).is_ok();
        if sent {
            let _ = rustix::io::write(self.wake.as_fd(), &1u64.to_ne_bytes());
        }
        sent
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        let _ = self.ask(Request::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's side.
struct Consumer {
    ring: RingBuf<MapData>,
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    requests: std_mpsc::Receiver<Request>,
    spare: Arc<ArrayQueue<Vec<u8>>>,
    messages: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicU64>,
    batch: Batch,
    /// When the last pass that emptied the ring began: every record committed before
    /// then has been taken (what a sent batch's `seen_to_ns` says).
    emptied_from_ns: u64,
    /// Empty batch buffers, the most recently handled on top (its pages are the ones
    /// already in memory).
    pool: Vec<Vec<u8>>,
}

impl Consumer {
    fn run(mut self) {
        let mut wait = DRAIN_MIN;
        loop {
            match self.requests.try_recv() {
                Ok(Request::Flush) => {
                    self.take_all(Send::Now);
                    let seen_to_ns = self.emptied_from_ns;
                    if self.send(Message::Flushed { seen_to_ns }).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Request::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => return,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            if self.queued.load(Ordering::Relaxed) >= PAUSE_BYTES {
                // Paused: a plain sleep, deaf to the probes' wake-ups (past a quarter full
                // the ring would wake this real-time thread for every record, taking the
                // CPU the pipeline needs to catch up).
                std::thread::sleep(DRAIN_MIN);
                continue;
            }
            self.sleep(wait);
            wait = match self.take_all(Send::WhenDue) {
                0 => (wait * 2).min(DRAIN_MAX),
                _ => DRAIN_MIN,
            };
        }
    }

    /// Waits up to `wait`, or until the probes or a request wake it.
    fn sleep(&mut self, wait: Duration) {
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: wait.as_nanos() as i64,
        };
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); 2];
        let Ok((ready, _)) = epoll::wait(&self.epoll, &mut events, Some(&timeout)) else {
            return;
        };
        // The eventfd is read only when a request wrote to it: not a syscall per wake-up.
        if ready.iter().any(|event| event.data.u64() == WAKE) {
            let mut counter = [0u8; 8];
            let _ = rustix::io::read(self.wake.as_fd(), &mut counter);
        }
    }

    /// Copies every record waiting in the ring into batches and sends the full ones, and
    /// what is left as `send` says; returns how many records there were.
    fn take_all(&mut self, send: Send) -> usize {
        // Records committed before this moment are taken by this pass, except one behind a
        // record still being written (a probe between its reservation and its commit):
        // that comes in the next pass, and a time bound it misses decides fail-closed.
        let pass_from = clock::monotonic_ns();
        let mut taken = 0;
        // The backlog only grows by the batches this thread sends: read it once per batch,
        // not once per record (the pipeline thread writes the same cache line).
        let mut shedding = self.over_budget();
        loop {
            let Some(record) = self.ring.next() else {
                break;
            };
            taken += 1;
            if shedding && is_data(&record) {
                self.batch.push(&shed_marker(&record));
            } else {
                self.batch.push(&record);
            }
            drop(record);
            if self.batch.bytes() >= BATCH_BYTES {
                self.send_batch();
                shedding = self.over_budget();
            }
        }
        self.emptied_from_ns = pass_from;
        // A part-filled batch goes now only if the pipeline has nothing queued: while it is
        // behind, these records would only wait in its queue, and part-filled batches sent
        // on every pass would use up the pool by their number (then the drain would have to
        // allocate: see POOL_BATCHES). Full batches are bounded by the budget instead.
        if send == Send::Now || self.queued.load(Ordering::Relaxed) == 0 {
            self.send_batch();
        }
        taken
    }

    /// Past `SHED_BYTES` queued: payload chunks become markers.
    fn over_budget(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= SHED_BYTES
    }

    fn send_batch(&mut self) {
        if self.batch.bytes() == 0 {
            return;
        }
        while let Some(bytes) = self.spare.pop() {
            self.pool.push(bytes);
        }
        let next = match self.pool.pop() {
            Some(bytes) => Batch::recycled(bytes),
            // Only past what the pool covers: full batches up to the pause, one part-filled.
            None => Batch::with_capacity(BATCH_CAPACITY),
        };
        let mut batch = std::mem::replace(&mut self.batch, next);
        batch.seen_to_ns = self.emptied_from_ns;
        self.queued
            .fetch_add(batch.bytes() as u64, Ordering::Relaxed);
        let _ = self.send(Message::Records(batch));
    }

    fn send(&self, message: Message) -> Result<(), ()> {
        self.messages.send(message).map_err(|_| ())
    }
}

fn is_data(record: &[u8]) -> bool {
    record.get(..4) == Some(&kind::DATA.to_ne_bytes())
}

/// The header of a DATA record, re-marked `SHED_DATA` and without its bytes.
fn shed_marker(record: &[u8]) -> [u8; size_of::<DataRecord>()] {
    let mut marker = [0u8; size_of::<DataRecord>()];
    let n = record.len().min(marker.len());
    marker[..n].copy_from_slice(&record[..n]);
    marker[..4].copy_from_slice(&kind::SHED_DATA.to_ne_bytes());
    let len_at = std::mem::offset_of!(EventHeader, len);
    let marker_len = marker.len() as u32;
    marker[len_at..len_at + 4].copy_from_slice(&marker_len.to_ne_bytes());
    marker
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_its_records_in_order() {
        let mut batch = Batch::with_capacity(64);
        batch.push(b"one");
        batch.push(b"");
        batch.push(b"three");
        let records: Vec<&[u8]> = batch.records().collect();
        assert_eq!(records, [&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn a_shed_marker_keeps_the_chunk_header_and_drops_its_bytes() {
        let header = DataRecord {
            header: EventHeader {
                kind: kind::DATA,
                len: (size_of::<DataRecord>() + 5) as u32,
                ktime_ns: 7,
                tgid: 1,
                tid: 2,
            },
            nr: 1,
            len: 5,
            offset: 16384,
        };
        let mut record = vec![0u8; size_of::<DataRecord>()];
        // SAFETY: the vector holds exactly one DataRecord.
        unsafe {
            record
                .as_mut_ptr()
                .cast::<DataRecord>()
                .write_unaligned(header)
        };
        record.extend_from_slice(b"hello");
        assert!(is_data(&record));
        let marker = shed_marker(&record);
        // SAFETY: the marker is one DataRecord's bytes.
        let read = unsafe { marker.as_ptr().cast::<DataRecord>().read_unaligned() };
        assert_eq!(read.header.kind, kind::SHED_DATA);
        assert_eq!(read.header.len as usize, size_of::<DataRecord>());
        assert_eq!((read.len, read.offset, read.header.tid), (5, 16384, 2));
    }
}
