//! The recording schema (`recorder/v1/recording.proto`) as prost types. No logic lives here.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/recorder.v1.rs"));
}
