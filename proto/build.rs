//! Generates the prost types from recording.proto with protox (pure Rust; no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "recorder/v1/recording.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    // Frames move through the daemon's pipeline by value: boxed, every body moves as a
    // pointer instead of up to a few hundred bytes each time. Thousands of frames can wait
    // for redaction at once, so each one waiting is kept small: a frame is 16 bytes, not the
    // 104 of its largest body left unboxed (a Loss). An event's resource is boxed too, so the
    // daemon reuses a written one as a pointer instead of copying its 152 bytes out of the
    // event and back into the next (an Event is 408 bytes with it boxed, 552 without).
    prost_build::Config::new()
        .boxed(".recorder.v1.Frame.body.header")
        .boxed(".recorder.v1.Frame.body.event")
        .boxed(".recorder.v1.Frame.body.trailer")
        .boxed(".recorder.v1.Frame.body.loss")
        .boxed(".recorder.v1.Frame.body.process")
        .boxed(".recorder.v1.Frame.body.stack")
        .boxed(".recorder.v1.Event.resource")
        .compile_fds(descriptors)?;
    Ok(())
}
