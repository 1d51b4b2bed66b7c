//! Every body and query the Engine API reads, from arbitrary bytes: Go's
//! JSON rules (`decode`), the filters, and the conversion of a decoded
//! service spec to the model. None may panic; bad input is an error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_engine::{convert, decode, filters, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = decode::from_slice::<wire::ServiceSpec>(data) {
        let _ = convert::service_spec(spec.clone(), None);
        if let Ok(base) = convert::service_spec(spec.clone(), None) {
            let _ = convert::service_spec(spec, Some(&base));
        }
    }
    let _ = decode::from_slice::<wire::NodeSpec>(data);
    if let Ok(request) = decode::from_slice::<wire::NetworkCreateRequest>(data) {
        let _ = convert::network_spec(request);
    }
    let _ = decode::from_slice::<wire::FileSpec>(data);
    let _ = decode::from_slice::<wire::InitRequest>(data);
    let _ = decode::from_slice::<wire::JoinRequest>(data);
    let _ = decode::from_slice::<wire::SwarmSpec>(data);
    let _ = decode::from_slice::<wire::UnlockRequest>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = filters::Filters::parse(Some(text), &["id", "name", "label", "node", "service"]);
        let _ = filters::parse_bool("force", Some(text), false);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            let _ = decode::is_zero(&v);
        }
    }
});
