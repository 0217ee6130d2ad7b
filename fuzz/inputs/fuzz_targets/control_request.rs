//! The control socket's messages: a request line as the service parses it, and an answer as
//! `recorder` parses it. Neither may panic; what parses must write back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recorder_control::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let again = serde_json::to_vec(&request).expect("a request serializes");
        assert_eq!(
            serde_json::from_slice::<Request>(&again).ok(),
            Some(request)
        );
    }
    if let Ok(response) = serde_json::from_slice::<Response>(data) {
        let again = serde_json::to_vec(&response).expect("a response serializes");
        assert_eq!(
            serde_json::from_slice::<Response>(&again).ok(),
            Some(response)
        );
    }
});
