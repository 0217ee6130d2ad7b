//! recorderd's capacity run: one `Step` per paced rate, and the table and zero-loss figure
//! they make.

use std::fmt::Write as _;

use super::{size_name, Doc};
use crate::compare::Sample;

/// One capacity step.
pub struct Step {
    pub rate: u64,
    pub achieved: f64,
    pub made: u64,
    /// Events whose payload was kept whole.
    pub recorded: u64,
    /// Events recorded, whole or not.
    pub events: u64,
    /// Payload bytes captured, of those moved, by the recorded events.
    pub payload_kept: u64,
    pub payload_moved: u64,
    pub lost: u64,
    pub cpu_s: f64,
}

impl Step {
    pub fn new(rate: u64, _ms: u64, sample: &Sample) -> Step {
        Step {
            rate,
            achieved: sample.report.syscalls as f64
                / (sample.report.elapsed_ns.max(1) as f64 / 1e9),
            made: sample.report.syscalls,
            recorded: sample
                .captured
                .whole_payloads
                .unwrap_or(sample.captured.events),
            events: sample.captured.events,
            payload_kept: sample.captured.payload_kept,
            payload_moved: sample.captured.payload_moved,
            lost: sample.captured.lost,
            cpu_s: sample.captured.cpu_ns as f64 / 1e9,
        }
    }

    /// Writes whose event (with whole payload) is not in the recording.
    pub fn missing(&self) -> u64 {
        self.made.saturating_sub(self.recorded)
    }
}

impl Doc {
    pub fn capacity(&mut self, size: u64, ms: u64, steps: Vec<Step>) {
        let _ = writeln!(
            self.capacity,
            "\n**{} payloads**: `recorder-bench-load paced {size} RATE {ms}` (writes to /dev/null \
             at a paced rate for {:.1} s) under `recorderd --pid PID --max-payload 1MiB`.\n\n\
             | target rate | achieved rate | writes made | events kept | payload bytes kept | recorded whole | lost or shed (recorderd's count) | missing whole | recorderd CPU s |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            size_name(size),
            ms as f64 / 1000.0
        );
        let mut zero_loss: Option<f64> = None;
        let mut clean_so_far = true;
        for step in &steps {
            let _ = writeln!(
                self.capacity,
                "| {}/s | {:.0}/s | {} | {} ({:.2} %) | {:.2} % | {} | {} | {} ({:.2} %) | {:.2} |",
                step.rate,
                step.achieved,
                step.made,
                step.events,
                100.0 * step.events as f64 / step.made.max(1) as f64,
                100.0 * step.payload_kept as f64 / step.payload_moved.max(1) as f64,
                step.recorded,
                step.lost,
                step.missing(),
                100.0 * step.missing() as f64 / step.made.max(1) as f64,
                step.cpu_s
            );
            if step.missing() == 0 && step.lost == 0 && clean_so_far {
                zero_loss = Some(step.achieved);
            } else {
                clean_so_far = false;
            }
        }
        let last = steps.last();
        let _ = writeln!(
            self.capacity,
            "\nHighest rate with zero loss: {}.{}",
            zero_loss.map_or("none of the rates tried".into(), |r| format!(
                "{r:.0} events/s"
            )),
            match last {
                Some(step) if step.achieved < 0.8 * step.rate as f64 => format!(
                    " The workload could not issue more than {:.0} writes/s while traced (the \
                     probes' cost per syscall caps it), so the stepping stopped there.",
                    step.achieved
                ),
                _ => String::new(),
            }
        );
        match size {
            64 => self.goals.zero_loss_64 = zero_loss,
            4096 => {
                self.goals.whole_4k = zero_loss;
                self.goals.events_kept_4k = steps
                    .iter()
                    .map(|s| s.events as f64 / s.made.max(1) as f64)
                    .reduce(f64::min);
            }
            _ => {}
        }
    }
}
