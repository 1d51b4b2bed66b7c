//! Any text read as a compose file, and planned against an empty
//! cluster, answers a stack or an error, and never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "TAG").then(|| "1.0".to_owned());
    let dir = std::path::Path::new("/nonexistent");
    if let Ok(stack) = swarm_stack::Stack::from_compose("app", text, dir, &env) {
        let _ = stack.plan(&swarm_stack::Current::default(), true);
    }
    let _ = swarm_stack::text::duration(text);
    let _ = swarm_stack::text::bytes(text);
    let _ = swarm_stack::text::shell_words(text);
});
