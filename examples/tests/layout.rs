//! The layout of the design card, and the dependency rule of
//! ARCHITECTURE.md, as `cargo metadata` tells them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Each workspace crate → the swarm crates it depends on (dev-dependencies
/// included, itself excluded).
fn swarm_deps() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            let mut deps: Vec<String> = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|d| d.starts_with("swarm-") && *d != name)
                .collect();
            deps.sort();
            deps.dedup();
            (name, deps)
        })
        .collect()
}

#[test]
fn the_crates_sit_at_the_top_level() {
    for dir in [
        "swarm-core",
        "swarm-raft",
        "swarm-sched",
        "swarm-runtime-docker",
        "swarm-runtime-process",
        "swarm-api",
        "swarm-node",
        "swarm-net",
        "swarm-engine",
        "swarm-stack",
        "swarm-metrics",
        "swarm-ui",
        "examples",
    ] {
        assert!(
            Path::new(ROOT).join(dir).join("Cargo.toml").is_file(),
            "{dir}/ is a crate at the top level"
        );
    }
    assert!(
        !Path::new(ROOT).join("crates").exists(),
        "no crates/ folder"
    );
}

#[test]
fn dependencies_point_one_way() {
    let deps = swarm_deps();
    assert_eq!(
        deps["swarm-core"],
        Vec::<String>::new(),
        "swarm-core depends on no swarm crate"
    );
    let implementations = [
        "swarm-raft",
        "swarm-sched",
        "swarm-runtime-docker",
        "swarm-runtime-process",
    ];
    for name in implementations {
        assert_eq!(
            deps[name],
            ["swarm-core"],
            "{name} depends on swarm-core alone (dev-dependencies included)"
        );
    }
    assert_eq!(
        deps["swarm-api"],
        ["swarm-core"],
        "swarm-api sees the model alone"
    );
    assert_eq!(
        deps["swarm-engine"],
        ["swarm-core"],
        "the Engine API sees the model alone; the daemon is behind its Backend"
    );
    assert_eq!(
        deps["swarm-stack"],
        ["swarm-core"],
        "compose reading makes specs of the model alone; the caller writes them"
    );
    for name in ["swarm-metrics", "swarm-ui"] {
        assert_eq!(
            deps[name],
            ["swarm-core"],
            "{name} serves what the model says; the daemon is behind its Source"
        );
    }
    for (name, list) in &deps {
        if name != "swarm-examples" {
            assert!(
                !list.iter().any(|d| d == "swarm-examples"),
                "{name} depends on the examples"
            );
        }
    }
}
