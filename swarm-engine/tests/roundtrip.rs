//! A service spec sent as Docker's JSON comes back from `inspect` equal in
//! every field the client sent (property test, over swarm-core's control
//! API on a memory store).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use swarm_core::control::Control;
use swarm_core::store::{MemoryStore, Store};
use swarm_engine::ApiError;
use swarm_engine::wire::{Host, LocalNodeState, SwarmInfo};
use tower::ServiceExt as _;

struct Manager(Control<Arc<dyn Store>>);

#[async_trait::async_trait]
impl swarm_engine::Backend for Manager {
    async fn swarm(&self) -> SwarmInfo {
        SwarmInfo {
            local_node_state: LocalNodeState::Active,
            control_available: true,
            ..SwarmInfo::default()
        }
    }
    fn host(&self) -> Host {
        Host::default()
    }
    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        Ok(self.0.clone())
    }
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// Where `got` differs from what was `sent`: every field sent comes
/// back equal, and an empty one may come back absent.
fn differences(path: &str, sent: &Value, got: Option<&Value>, out: &mut Vec<String>) {
    match (sent, got) {
        (s, None) if swarm_engine::decode::is_zero(s) => {}
        (_, None) => out.push(format!("{path}: sent {sent}, got nothing")),
        (Value::Object(s), Some(Value::Object(g))) => {
            for (k, v) in s {
                differences(&format!("{path}.{k}"), v, g.get(k), out);
            }
        }
        (Value::Array(s), Some(Value::Array(g))) if s.len() == g.len() => {
            for (i, (a, b)) in s.iter().zip(g).enumerate() {
                differences(&format!("{path}[{i}]"), a, Some(b), out);
            }
        }
        (Value::Number(a), Some(Value::Number(b))) if a.as_f64() == b.as_f64() => {}
        (s, Some(g)) if s == g => {}
        (s, Some(g)) if swarm_engine::decode::is_zero(s) && swarm_engine::decode::is_zero(g) => {}
        (s, Some(g)) => out.push(format!("{path}: sent {s}, got {g}")),
    }
}

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,7}"
}

fn labels() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map("[a-z][a-z.]{0,6}", "[a-zA-Z0-9 =]{0,8}", 0..3)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn nanos() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0_i64), (1_i64..600).prop_map(|s| s * 1_000_000_000)]
}

/// An update config; a rollback's cannot roll back on failure.
fn update_config(rollback: bool) -> impl Strategy<Value = Value> {
    let actions: &[&str] = if rollback {
        &["pause", "continue"]
    } else {
        &["pause", "continue", "rollback"]
    };
    (
        0_u64..5,
        nanos(),
        proptest::sample::select(actions),
        (1_i64..60).prop_map(|s| s * 1_000_000_000),
        prop_oneof![Just(0.0_f64), Just(0.25), Just(1.0)],
        prop_oneof![Just("stop-first"), Just("start-first")],
    )
        .prop_map(|(p, delay, action, monitor, ratio, order)| {
            json!({"Parallelism": p, "Delay": delay, "FailureAction": action,
                   "Monitor": monitor, "MaxFailureRatio": ratio, "Order": order})
        })
}

fn container_spec() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("/bin/sleep"), Just("nginx:1.27"), Just("busybox")],
        proptest::collection::vec(word(), 0..3),
        proptest::collection::vec(word(), 0..3),
        proptest::collection::vec("[A-Z]{1,4}=[a-z0-9]{0,4}", 0..3),
        proptest::option::of("/[a-z]{1,6}"),
        proptest::option::of(prop_oneof![Just("1000"), Just("nobody")]),
        proptest::option::of(word()),
        labels(),
        (1_i64..60).prop_map(|s| s * 1_000_000_000),
        proptest::option::of((nanos(), nanos(), 1_i64..5, nanos())),
        proptest::collection::vec(
            prop_oneof![
                "/[a-z]{1,6}".prop_map(|t| json!({"Type": "tmpfs", "Target": t})),
                ("[a-z]{1,6}", "/[a-z]{1,6}", any::<bool>()).prop_map(
                    |(s, t, ro)| json!({"Type": "volume", "Source": s, "Target": t, "ReadOnly": ro})
                ),
                ("/[a-z]{1,6}", "/[a-z]{1,6}")
                    .prop_map(|(s, t)| json!({"Type": "bind", "Source": s, "Target": t})),
            ],
            0..2,
        ),
    )
        .prop_map(
            |(image, command, args, env, dir, user, hostname, labels, grace, health, mounts)| {
                let mut c = json!({
                    "Image": image, "Command": command, "Args": args, "Env": env,
                    "Labels": labels, "StopGracePeriod": grace, "Init": false,
                    "DNSConfig": {}, "Mounts": mounts,
                });
                let m = c.as_object_mut().unwrap();
                if let Some(d) = dir {
                    m.insert("Dir".into(), json!(d));
                }
                if let Some(u) = user {
                    m.insert("User".into(), json!(u));
                }
                if let Some(h) = hostname {
                    m.insert("Hostname".into(), json!(h));
                }
                if let Some((interval, timeout, retries, start)) = health {
                    m.insert(
                        "Healthcheck".into(),
                        json!({
                            "Test": ["CMD", "true"], "Interval": interval, "Timeout": timeout,
                            "Retries": retries, "StartPeriod": start,
                        }),
                    );
                }
                c
            },
        )
}

/// The container settings beyond the common ones, each present or not.
/// Docker's `Privileges`, each part or not.
fn privileges() -> impl Strategy<Value = Option<Value>> {
    use base64::Engine as _;
    proptest::option::of((
        any::<bool>(),
        prop_oneof![
            Just(Value::Null),
            Just(json!({"Mode": "default"})),
            Just(json!({"Mode": "unconfined"})),
            "[a-z]{1,8}".prop_map(|a| json!({
                "Mode": "custom",
                "Profile": base64::engine::general_purpose::STANDARD
                    .encode(format!("{{\"defaultAction\":\"SCMP_ACT_{a}\"}}")),
            })),
        ],
        prop_oneof![
            Just(Value::Null),
            Just(json!({"Mode": "default"})),
            Just(json!({"Mode": "disabled"})),
        ],
        prop_oneof![
            Just(Value::Null),
            Just(json!({"Disable": true})),
            ("[a-z_]{1,8}", "s0(:c[0-9]{1,3})?").prop_map(|(t, l)| json!({"Type": t, "Level": l})),
        ],
        prop_oneof![
            Just(Value::Null),
            "[a-z]{1,8}\\.json".prop_map(|f| json!({"File": f})),
            "[A-Za-z]{1,8}".prop_map(|r| json!({"Registry": r})),
        ],
    ))
    .prop_map(|p| {
        p.map(|(nnp, seccomp, apparmor, selinux, credential)| {
            json!({
                "NoNewPrivileges": nnp,
                "Seccomp": seccomp,
                "AppArmor": apparmor,
                "SELinuxContext": selinux,
                "CredentialSpec": credential,
            })
        })
    })
}

fn container_extras() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(proptest::collection::vec("[a-z]{1,6}", 1..3)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![
            Just("SIGINT"),
            Just("SIGQUIT"),
            Just("SIGUSR1")
        ]),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        proptest::option::of(proptest::collection::vec(
            ("10\\.0\\.[1-9][0-9]?\\.[1-9][0-9]?", "[a-z]{1,6}")
                .prop_map(|(ip, n)| format!("{ip} {n}")),
            1..3,
        )),
        proptest::option::of((
            proptest::collection::vec("10\\.0\\.0\\.[1-9][0-9]?", 0..2),
            proptest::collection::vec("[a-z]{1,6}\\.example", 0..2),
            proptest::collection::vec(prop_oneof![Just("ndots:2"), Just("timeout:3")], 0..2),
        )),
        proptest::collection::btree_map(
            prop_oneof![Just("net.core.somaxconn"), Just("kernel.msgmax")],
            "[0-9]{1,5}",
            0..2,
        ),
        proptest::collection::vec(prop_oneof![Just("NET_ADMIN"), Just("SYS_PTRACE")], 0..2),
        proptest::collection::vec(prop_oneof![Just("MKNOD"), Just("CHOWN")], 0..2),
        proptest::option::of(prop_oneof![Just("json-file"), Just("local")]),
        proptest::collection::vec(
            (
                prop_oneof![Just("nofile"), Just("nproc")],
                0..4096i64,
                0..4096i64,
            )
                .prop_map(|(name, a, b)| json!({"Name": name, "Soft": a.min(b), "Hard": a.max(b)})),
            0..2,
        ),
        (
            -1000..=1000i64,
            0..500i64,
            privileges(),
            proptest::option::of(prop_oneof![
                Just("default"),
                Just("process"),
                Just("hyperv")
            ]),
        ),
    )
        .prop_map(
            |(
                groups,
                init,
                signal,
                (tty, stdin, ro),
                hosts,
                dns,
                sysctls,
                add,
                drop,
                log,
                ulimits,
                (oom, pids, privileges, isolation),
            )| {
                let mut m = Map::new();
                let mut put = |k: &str, v: Value| {
                    m.insert(k.to_owned(), v);
                };
                if let Some(g) = groups {
                    put("Groups", json!(g));
                }
                if let Some(i) = init {
                    put("Init", json!(i));
                }
                if let Some(s) = signal {
                    put("StopSignal", json!(s));
                }
                put("TTY", json!(tty));
                put("OpenStdin", json!(stdin));
                put("ReadOnly", json!(ro));
                if let Some(h) = hosts {
                    put("Hosts", json!(h));
                }
                if let Some((ns, search, options)) = dns {
                    put(
                        "DNSConfig",
                        json!({"Nameservers": ns, "Search": search, "Options": options}),
                    );
                }
                put("Sysctls", json!(sysctls));
                put("CapabilityAdd", json!(add));
                put("CapabilityDrop", json!(drop));
                put("Ulimits", json!(ulimits));
                put("OomScoreAdj", json!(oom));
                if let Some(p) = privileges {
                    put("Privileges", p);
                }
                if let Some(i) = isolation {
                    put("Isolation", json!(i));
                }
                // Not a container field: lifted into the resources below.
                put("Pids", json!(pids));
                if let Some(l) = log {
                    // Not a container field: lifted into the template below.
                    put(
                        "LogDriver",
                        json!({"Name": l, "Options": {"max-size": "10m"}}),
                    );
                }
                m
            },
        )
}

fn service_spec() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        labels(),
        (container_spec(), container_extras()).prop_map(|(mut c, extras)| {
            let (log, pids) = {
                let m = c.as_object_mut().unwrap();
                for (k, v) in extras {
                    m.insert(k, v);
                }
                (m.remove("LogDriver"), m.remove("Pids"))
            };
            (c, log, pids)
        }),
        prop_oneof![
            (0_u64..20).prop_map(|r| json!({"Replicated": {"Replicas": r}})),
            Just(json!({"Global": {}})),
        ],
        (
            0_i64..4,
            0_i64..(1 << 30),
            proptest::collection::btree_map("[a-z][a-z0-9_.-]{0,6}", 1_i64..8, 0..3),
        )
            .prop_map(|(c, m, generic)| {
                // Amounts by kind, in the order inspect gives them.
                let generic: Vec<Value> = generic
                    .into_iter()
                    .map(|(kind, n)| json!({"DiscreteResourceSpec": {"Kind": kind, "Value": n}}))
                    .collect();
                (c * 250_000_000, m, generic)
            }),
        (
            prop_oneof![Just("any"), Just("on-failure"), Just("none")],
            nanos(),
            0_u64..5,
            nanos(),
        ),
        (
            proptest::collection::vec(
                prop_oneof![
                    Just("node.role==worker".to_owned()),
                    "[a-z]{1,5}".prop_map(|v| format!("node.labels.zone=={v}")),
                    Just("node.platform.os==linux".to_owned()),
                ],
                0..3,
            ),
            proptest::collection::vec("[a-z]{1,5}".prop_map(|l| json!({"Spread": {"SpreadDescriptor": format!("node.labels.{l}")}})), 0..2),
            0_u64..4,
        ),
        (update_config(false), update_config(true)),
        (
            prop_oneof![Just("vip"), Just("dnsrr")],
            proptest::collection::btree_set(1_u32..65_535, 0..3),
            prop_oneof![Just("tcp"), Just("udp")],
        ),
    )
        .prop_map(
            |(name, labels, (container, log, pids), mode, (cpus, memory, generic), restart, placement, updates, endpoint)| {
                let (condition, delay, attempts, window) = restart;
                let (constraints, preferences, max_replicas) = placement;
                let (mode_name, targets, protocol) = endpoint;
                // Host-mode ports, so that the random ones never clash with
                // the mesh's (and dnsrr allows them).
                let ports: Vec<Value> = targets
                    .iter()
                    .map(|t| json!({"Protocol": protocol, "TargetPort": t, "PublishedPort": t, "PublishMode": "host"}))
                    .collect();
                json!({
                    "Name": name,
                    "Labels": labels,
                    "TaskTemplate": {
                        "ContainerSpec": container,
                        "Resources": {
                            "Limits": {"NanoCPUs": cpus * 2, "MemoryBytes": memory * 2, "Pids": pids},
                            "Reservations": {"NanoCPUs": cpus, "MemoryBytes": memory, "GenericResources": generic},
                        },
                        "RestartPolicy": {"Condition": condition, "Delay": delay, "MaxAttempts": attempts, "Window": window},
                        "Placement": {"Constraints": constraints, "Preferences": preferences, "MaxReplicas": max_replicas},
                        "ForceUpdate": 0,
                        "LogDriver": log,
                    },
                    "Mode": mode,
                    "UpdateConfig": updates.0,
                    "RollbackConfig": updates.1,
                    "EndpointSpec": {"Mode": mode_name, "Ports": ports},
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_created_spec_comes_back_field_for_field(spec in service_spec()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let app = swarm_engine::router(Arc::new(Manager(Control::new(store))));
            let (status, created) = call(&app, "POST", "/v1.49/services/create", spec.clone()).await;
            prop_assert_eq!(status, StatusCode::CREATED, "{}", created);
            let id = created["ID"].as_str().unwrap().to_owned();
            let (status, service) = call(&app, "GET", &format!("/v1.49/services/{id}?insertDefaults=false"), Value::Null).await;
            prop_assert_eq!(status, StatusCode::OK);
            let mut diffs = Vec::new();
            differences("Spec", &spec, service.get("Spec"), &mut diffs);
            prop_assert!(diffs.is_empty(), "{}\nsent: {}\ngot: {}", diffs.join("\n"), spec, service["Spec"]);

            // The spec as read, sent back as `docker service update` sends
            // it, changes nothing.
            let version = service["Version"]["Index"].as_u64().unwrap();
            let (status, body) = call(&app, "POST", &format!("/v1.49/services/{id}/update?version={version}"), service["Spec"].clone()).await;
            prop_assert_eq!(status, StatusCode::OK, "{}", body);
            let (_, again) = call(&app, "GET", &format!("/v1.49/services/{id}"), Value::Null).await;
            prop_assert_eq!(&again["Spec"], &service["Spec"]);
            prop_assert_eq!(&again["Version"], &service["Version"], "an update that changes nothing writes nothing");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_stale_version_is_out_of_sequence_and_changes_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let app = swarm_engine::router(Arc::new(Manager(Control::new(store))));
    let spec = json!({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "/bin/sleep", "Args": ["100"]}}});
    let (status, created) = call(&app, "POST", "/services/create", spec.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, service) = call(&app, "GET", "/services/web", Value::Null).await;
    let version = service["Version"]["Index"].as_u64().unwrap();
    let mut changed = service["Spec"].clone();
    changed["TaskTemplate"]["ContainerSpec"]["Args"] = json!(["200"]);
    let (status, _) = call(
        &app,
        "POST",
        &format!("/services/web/update?version={version}"),
        changed.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    changed["TaskTemplate"]["ContainerSpec"]["Args"] = json!(["300"]);
    let (status, e) = call(
        &app,
        "POST",
        &format!("/services/web/update?version={version}"),
        changed,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("update out of sequence"),
        "{e}"
    );
    let (_, now) = call(&app, "GET", "/services/web", Value::Null).await;
    assert_eq!(
        now["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"],
        json!(["200"])
    );
    // And a name in use is a 409; an unknown service a 404.
    let (status, e) = call(&app, "POST", "/services/create", spec).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (status, e) = call(&app, "GET", "/services/nosuch", Value::Null).await;
    assert_eq!(
        (status, e["message"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "service nosuch not found")
    );
    let (status, e) = call(&app, "POST", "/services/web/update", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test]
async fn secrets_and_configs_change_their_labels_and_nothing_else() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let app = swarm_engine::router(Arc::new(Manager(Control::new(store))));
    // "s3cret" and "conf" in base64.
    for (kind, data) in [("secrets", "czNjcmV0"), ("configs", "Y29uZg==")] {
        let (status, e) = call(
            &app,
            "POST",
            &format!("/{kind}/create"),
            json!({"Name": "db", "Labels": {"a": "1"}, "Data": data}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        let (_, before) = call(&app, "GET", &format!("/{kind}/db"), Value::Null).await;
        let version = before["Version"]["Index"].as_u64().unwrap();
        let update = format!("/{kind}/db/update?version={version}");

        // New data, or a new name, is refused, and nothing changes.
        for body in [
            json!({"Name": "db", "Labels": {"a": "2"}, "Data": "b3RoZXI="}),
            json!({"Name": "other", "Labels": {"a": "2"}}),
        ] {
            let (status, e) = call(&app, "POST", &update, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}: {e}");
            let message = e["message"].as_str().unwrap();
            assert!(message.starts_with("only updates to Labels"), "{message}");
        }
        let (_, same) = call(&app, "GET", &format!("/{kind}/db"), Value::Null).await;
        assert_eq!(same, before, "{kind}");

        // The labels change; the data stays.
        let (status, e) = call(
            &app,
            "POST",
            &update,
            json!({"Name": "db", "Labels": {"a": "2", "b": "3"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {e}");
        let (_, after) = call(&app, "GET", &format!("/{kind}/db"), Value::Null).await;
        assert_eq!(after["Spec"]["Labels"], json!({"a": "2", "b": "3"}));
        assert_eq!(after["Spec"]["Data"], before["Spec"]["Data"]);
        assert!(after["Version"]["Index"].as_u64().unwrap() > version);

        // The version read before that update is stale now.
        let (status, e) = call(&app, "POST", &update, json!({"Name": "db"})).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("update out of sequence"),
            "{e}"
        );
    }
    // The data may be sent back as it is (docker stack deploy does, on
    // every deploy).
    for (kind, data) in [("secrets", "czNjcmV0"), ("configs", "Y29uZg==")] {
        let (_, c) = call(&app, "GET", &format!("/{kind}/db"), Value::Null).await;
        let version = c["Version"]["Index"].as_u64().unwrap();
        let (status, e) = call(
            &app,
            "POST",
            &format!("/{kind}/db/update?version={version}"),
            json!({"Name": "db", "Labels": {}, "Data": data}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {e}");
        let (_, c) = call(&app, "GET", &format!("/{kind}/db"), Value::Null).await;
        assert_eq!(c["Spec"]["Labels"], json!({}), "{c}");
    }
}
