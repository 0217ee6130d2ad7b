//! Generates the prost types from recording.proto with protox (pure Rust; no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "recorder/v1/recording.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    // Frames move through the daemon's pipeline by value: boxed, the large bodies move as a
    // pointer instead of a few hundred bytes each time (an Event is 552 bytes).
    prost_build::Config::new()
        .boxed(".recorder.v1.Frame.body.header")
        .boxed(".recorder.v1.Frame.body.event")
        .boxed(".recorder.v1.Frame.body.trailer")
        .compile_fds(descriptors)?;
    Ok(())
}
