//! One recording per thread: the service's own loop never waits on a recording. The
//! thread says when the recording has started (or why it could not), and when it is done.

use std::sync::{atomic::AtomicU64, Arc, Mutex};

use recorder_control::{Response, StoppedRecording};
use tokio::sync::{mpsc, oneshot};

use super::{requests::reply, Service};
use crate::{
    options::Options,
    session::{self, Control, Outcome, Started},
};

/// A recording thread's last word.
pub struct Finished {
    pub recording_id: String,
    pub result: Result<Outcome, String>,
}

impl Service {
    /// A recording thread is done: forget it and answer whoever asked it to stop.
    pub(super) async fn finished(&mut self, finished: Finished) {
        self.active.remove(&finished.recording_id);
        let response = match &finished.result {
            Ok(outcome) => Response::Stopped {
                recording: StoppedRecording {
                    id: finished.recording_id.clone(),
                    end_reason: outcome.end_reason.to_owned(),
                    events: outcome.events,
                    lost: outcome.lost,
                    paths: outcome
                        .paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                },
            },
            Err(message) => Response::Error {
                message: format!("recording {} failed: {message}", finished.recording_id),
            },
        };
        match &finished.result {
            Ok(outcome) => {
                tracing::info!(
                    id = %finished.recording_id,
                    reason = outcome.end_reason,
                    events = outcome.events,
                    "recording finished"
                );
                let (sockets, why) = &outcome.not_decrypted;
                if *sockets > 0 {
                    tracing::warn!(
                        id = %finished.recording_id,
                        connections = sockets,
                        why = why.join("; "),
                        "TLS connections were recorded as ciphertext (docs/CAPTURE.md)"
                    );
                }
            }
            Err(message) => {
                tracing::error!(id = %finished.recording_id, %message, "recording failed")
            }
        }
        for mut waiter in self
            .stop_waiters
            .remove(&finished.recording_id)
            .unwrap_or_default()
        {
            reply(&mut waiter.stream, &response).await;
        }
    }
}

/// Runs one recording on its own thread; the returned receiver says when it is recording
/// or why it could not start. `finished` hears when it is done.
pub(super) fn launch(
    options: Options,
    stop: oneshot::Receiver<&'static str>,
    events: Arc<AtomicU64>,
    finished: mpsc::UnboundedSender<Finished>,
) -> oneshot::Receiver<Result<Started, String>> {
    let (started_tx, started_rx) = oneshot::channel();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let say = move |result: Result<Started, String>| {
        if let Some(tx) = started_tx.lock().ok().and_then(|mut tx| tx.take()) {
            let _ = tx.send(result);
        }
    };
    let say_started = say.clone();
    let control = Control {
        stop,
        started: Box::new(move |started: &Started| say_started(Ok(started.clone()))),
        events,
    };
    let spawned = std::thread::Builder::new()
        .name("recording".to_owned())
        .spawn(move || {
            let recording_id = options.recording_id.clone();
            let result =
                record_on_this_thread(&options, control).map_err(|error| error.to_string());
            if let Err(message) = &result {
                say(Err(message.clone()));
            }
            let _ = finished.send(Finished {
                recording_id,
                result,
            });
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start a recording thread");
    }
    started_rx
}

fn record_on_this_thread(
    options: &Options,
    control: Control,
) -> Result<Outcome, session::SessionError> {
    let (scope, dir) = session::prepare(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(session::SessionError::Runtime)?;
    runtime.block_on(session::record(options, &scope, dir, None, control))
}
