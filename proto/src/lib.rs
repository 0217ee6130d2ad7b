//! The recording schema (`recorder/v1/recording.proto`) as prost types. No logic lives here.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/recorder.v1.rs"));
}

#[cfg(test)]
mod tests {
    use super::v1::{frame::Body, Event};

    /// The daemon holds thousands of frames while redaction decides their payloads, and
    /// moves each through several stages: every body is boxed (build.rs), so a frame is a
    /// tag and a pointer, and an event's resource is boxed so a kept one is reused in place.
    #[test]
    fn frames_and_events_stay_small() {
        assert_eq!(size_of::<Body>(), 16);
        assert!(
            size_of::<Event>() <= 408,
            "an Event is {} bytes: box what a new field made large (build.rs)",
            size_of::<Event>()
        );
    }
}
