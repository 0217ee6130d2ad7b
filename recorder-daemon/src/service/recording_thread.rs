//! One recording per thread: the service's own loop never waits on a recording, not even
//! while its probes load. The thread says when the recording has started (or why it could
//! not), and when it is done, on one channel, so that the loop hears them in that order.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::SystemTime,
};

use recorder_control::{RecordingStatus, Response, StoppedRecording};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{requests::reply, Active, Service};
use crate::{
    options::Options,
    session::{self, Control, Outcome, Started},
};

/// A recording thread's last word.
pub struct Finished {
    pub recording_id: String,
    pub result: Result<Outcome, String>,
}

/// What a recording thread tells the service's loop.
pub enum News {
    /// Recording, or why it could not start; always before `Finished`.
    Started {
        recording_id: String,
        result: Result<Started, String>,
    },
    Finished(Finished),
}

impl Service {
    pub(super) async fn news(&mut self, news: News) {
        match news {
            News::Started {
                recording_id,
                result,
            } => self.started(recording_id, result),
            News::Finished(finished) => self.finished(finished).await,
        }
    }

    /// A recording is running, or could not start: it becomes active, and whoever asked
    /// for it is answered.
    pub(super) fn started(&mut self, recording_id: String, result: Result<Started, String>) {
        let Some(starting) = self.starting.remove(&recording_id) else {
            return;
        };
        let response = match result {
            Ok(started) => {
                let status = RecordingStatus {
                    id: recording_id.clone(),
                    target: started.description,
                    path: started.path.display().to_string(),
                    started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                    remaining_secs: starting.duration.as_secs(),
                    events: 0,
                    requested_by: starting.requested_by,
                };
                tracing::info!(id = %recording_id, by = %status.requested_by, "recording started");
                self.active.insert(
                    recording_id,
                    Active {
                        status: status.clone(),
                        deadline: Instant::now() + starting.duration,
                        stop: starting.stop,
                        events: starting.events,
                    },
                );
                Response::Started {
                    recording: status,
                    notices: starting.notices,
                }
            }
            Err(message) => Response::Error { message },
        };
        // The client may have given up waiting (START_TIMEOUT): the recording runs anyway.
        let _ = starting.answer.send(response);
    }

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

/// Runs one recording on its own thread; `news` hears when it is recording (or why it
/// could not start) and when it is done.
pub(super) fn launch(
    options: Options,
    stop: oneshot::Receiver<&'static str>,
    events: Arc<AtomicU64>,
    news: mpsc::UnboundedSender<News>,
) {
    let recording_id = options.recording_id.clone();
    let said = Arc::new(AtomicBool::new(false));
    let started_news = news.clone();
    let say = move |result: Result<Started, String>| {
        if !said.swap(true, Ordering::SeqCst) {
            let recording_id = recording_id.clone();
            let _ = started_news.send(News::Started {
                recording_id,
                result,
            });
        }
    };
    let (say_started, say_failed) = (say.clone(), say.clone());
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
            let _ = news.send(News::Finished(Finished {
                recording_id,
                result,
            }));
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start a recording thread");
        say_failed(Err(format!("cannot start a recording thread: {error}")));
    }
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
