//! A compose file read as `docker stack deploy` reads it, and the plans
//! that deploy it.

use std::path::Path;
use std::time::Duration;

use swarm_core::model::{
    EndpointMode, FailureAction, MountKind, PublishMode, RestartCondition, ServiceMode, UpdateOrder,
};
use swarm_stack::{Action, Current, NAMESPACE_LABEL, Stack, StackError};

const FILE: &str = r#"
version: "3.8"
x-env: &env
  LOG: debug
services:
  web:
    image: nginx:${TAG:-1.27}
    command: sh -c 'echo "hi there"'
    environment:
      <<: *env
      MODE: prod
      FROM_SHELL:
    labels: [tier=front]
    ports:
      - "8080:80"
      - 9000
      - target: 53
        published: 5353
        protocol: udp
        mode: host
    networks:
      front:
        aliases: [www]
      back:
      outside:
    secrets:
      - pw
      - source: pw
        target: pw2
        uid: "100"
        mode: "0400"
      - source: pw
        target: pw3
        mode: 0440
    configs: [conf]
    volumes: ["data:/var/data:ro", "./static:/srv"]
    healthcheck:
      test: curl -f http://localhost
      interval: 5s
      retries: 3
    stop_grace_period: 1m30s
    extra_hosts: ["db.local:10.0.0.9"]
    build: .
    depends_on: [db]
    deploy:
      replicas: 3
      labels: {team: a}
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
      resources:
        limits: {cpus: "0.5", memory: 512M}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 4}
      update_config: {parallelism: 2, delay: 1s, failure_action: rollback, order: start-first}
      endpoint_mode: vip
  db:
    image: postgres
    deploy: {mode: global}
networks:
  front:
  back:
    internal: true
    ipam:
      config: [{subnet: 10.20.0.0/24}]
  outside:
    external: true
  unused:
volumes:
  data:
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    external: true
    name: shared-conf
"#;

fn env(name: &str) -> Option<String> {
    (name == "FROM_SHELL").then(|| "yes".to_owned())
}

fn read(text: &str) -> Result<Stack, StackError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    Stack::from_compose("app", text, dir.path(), &env)
}

#[test]
fn every_form_of_the_file_becomes_the_spec_docker_would_make() {
    let stack = read(FILE).unwrap();
    let names: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["app_db", "app_web"]);
    let db = &stack.services[0];
    assert_eq!(db.mode, ServiceMode::Global);
    // Docker's default tag, as the docker CLI sends it; the label keeps
    // the image as written.
    assert_eq!(db.task.image, "postgres:latest");
    assert_eq!(db.labels["com.docker.stack.image"], "postgres");
    // db names no network: it gets the stack's default one.
    assert_eq!(db.task.networks[0].target, "app_default");
    assert_eq!(db.task.networks[0].aliases, ["db"]);

    let web = &stack.services[1];
    assert_eq!(web.mode, ServiceMode::Replicated { replicas: 3 });
    assert_eq!(web.task.image, "nginx:1.27");
    assert_eq!(web.task.args, ["sh", "-c", "echo \"hi there\""]);
    assert_eq!(web.task.env, ["FROM_SHELL=yes", "LOG=debug", "MODE=prod"]);
    assert_eq!(web.labels[NAMESPACE_LABEL], "app");
    assert_eq!(web.labels["com.docker.stack.image"], "nginx:1.27");
    assert_eq!(web.labels["team"], "a");
    assert_eq!(web.task.labels["tier"], "front");
    assert_eq!(web.task.labels[NAMESPACE_LABEL], "app");
    let ports: Vec<(u32, u32, PublishMode)> = web
        .endpoint
        .ports
        .iter()
        .map(|p| (p.published_port, p.target_port, p.publish_mode))
        .collect();
    assert_eq!(
        ports,
        [
            (8080, 80, PublishMode::Ingress),
            (0, 9000, PublishMode::Ingress),
            (5353, 53, PublishMode::Host)
        ]
    );
    let nets: Vec<(&str, Vec<String>)> = web
        .task
        .networks
        .iter()
        .map(|n| (n.target.as_str(), n.aliases.clone()))
        .collect();
    assert_eq!(
        nets,
        [
            ("app_back", vec!["web".to_owned()]),
            ("app_front", vec!["web".to_owned(), "www".to_owned()]),
            ("outside", vec!["web".to_owned()])
        ]
    );
    assert_eq!(web.task.secrets[0].name, "app_pw");
    assert_eq!(web.task.secrets[0].target, "pw");
    assert_eq!(
        (
            web.task.secrets[1].target.as_str(),
            web.task.secrets[1].uid,
            web.task.secrets[1].mode
        ),
        ("pw2", 100, 0o400)
    );
    // Unquoted, YAML 1.1's octal, as Docker reads it.
    assert_eq!(web.task.secrets[2].mode, 0o440);
    assert_eq!(web.task.configs[0].name, "shared-conf");
    assert_eq!(web.task.mounts[0].kind, MountKind::Volume);
    assert_eq!(web.task.mounts[0].source.as_deref(), Some("app_data"));
    assert!(web.task.mounts[0].read_only);
    assert_eq!(web.task.mounts[1].kind, MountKind::Bind);
    assert!(
        web.task.mounts[1]
            .source
            .as_ref()
            .unwrap()
            .ends_with("static")
    );
    let check = web.task.healthcheck.as_ref().unwrap();
    assert_eq!(check.test, ["CMD-SHELL", "curl -f http://localhost"]);
    assert_eq!((check.interval, check.retries), (Duration::from_secs(5), 3));
    assert_eq!(web.task.stop_grace_period, Duration::from_secs(90));
    assert_eq!(web.task.hosts, ["10.0.0.9 db.local"]);
    assert_eq!(web.task.placement.constraints, ["node.role==worker"]);
    assert_eq!(web.task.placement.preferences.len(), 1);
    assert_eq!(web.task.resources.limits.nano_cpus, 500_000_000);
    assert_eq!(web.task.resources.limits.memory_bytes, 512 << 20);
    assert_eq!(web.task.restart.condition, RestartCondition::OnFailure);
    assert_eq!(web.task.restart.max_attempts, 4);
    assert_eq!(web.update.parallelism, 2);
    assert_eq!(web.update.failure_action, FailureAction::Rollback);
    assert_eq!(web.update.order, UpdateOrder::StartFirst);
    assert_eq!(web.endpoint.mode, EndpointMode::Vip);

    let nets: Vec<&str> = stack.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nets, ["app_back", "app_default", "app_front"]);
    assert!(stack.networks[0].internal);
    assert_eq!(
        stack.networks[0].subnet.unwrap().to_string(),
        "10.20.0.0/24"
    );
    assert!(stack.external.networks.contains("outside"));
    assert!(stack.external.configs.contains("shared-conf"));
    assert_eq!(stack.secrets[0].name, "app_pw");
    assert_eq!(stack.secrets[0].data, b"s3cret");
    assert_eq!(
        stack.warnings,
        [
            "network unused is declared but no service uses it: it is not created",
            "Ignoring unsupported options: build, depends_on"
        ]
    );
}

#[test]
fn mistakes_are_named_with_their_place() {
    let e = read("services:\n  web:\n    image: x\n    imagee: y\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "services.web.imagee: unknown option: see the compose file reference (format 3.x)"
    );
    let e = read("services:\n  web:\n    build: .\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("services.web.image: a stack's services run images"),
        "{e}"
    );
    let e = read("services:\n  web:\n    image: x\n    networks: [nope]\n").unwrap_err();
    assert!(
        e.to_string().contains("network \"nope\" is not declared"),
        "{e}"
    );
    let e = read("services:\n  web:\n    image: x\n    deploy: {replicas: 2, mode: global}\n")
        .unwrap_err();
    assert!(e.to_string().contains("leave replicas out"), "{e}");
    let e = read("services:\n  web:\n    image: x\n    deploy:\n      replica: 2\n").unwrap_err();
    assert!(
        matches!(&e, StackError::Syntax(m) if m.contains("unknown field `replica`") && m.contains("line 5")),
        "{e}"
    );
    let e = read("services:\n  web:\n    image: ${TAG:?pick a tag}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3 column 12: TAG must be set: pick a tag"
    );
    let e = read("version: '2'\nservices:\n  web:\n    image: x\n").unwrap_err();
    assert!(e.to_string().contains("compose file format 2"), "{e}");
    let e = read("services:\n  web:\n    image: x\n    ports: ['127.0.0.1:80:80']\n").unwrap_err();
    assert!(e.to_string().contains("leave the IP out"), "{e}");
    let e = Stack::from_compose("bad name", FILE, Path::new("."), &env).unwrap_err();
    assert!(e.to_string().starts_with("invalid stack name"), "{e}");
}

#[test]
fn a_plan_creates_what_is_missing_updates_what_changed_and_prunes() {
    let stack = read(FILE).unwrap();
    let e = stack.plan(&Current::default(), false).unwrap_err();
    assert_eq!(
        e,
        StackError::MissingExternal {
            kind: "network",
            name: "outside".into()
        }
    );
    let mut current = Current::default();
    current.networks.insert("outside".into());
    current.configs.insert("shared-conf".into());
    let plan = stack.plan(&current, false).unwrap();
    let kinds: Vec<String> = plan
        .iter()
        .map(|a| match a {
            Action::CreateNetwork(n) => format!("network {}", n.name),
            Action::CreateSecret(s) => format!("secret {}", s.name),
            Action::CreateConfig(c) => format!("config {}", c.name),
            Action::UpdateSecret(s) => format!("update secret {}", s.name),
            Action::UpdateConfig(c) => format!("update config {}", c.name),
            Action::CreateService(s) => format!("service {}", s.name),
            Action::UpdateService(s) => format!("update {}", s.name),
            Action::RemoveService(s) => format!("remove {s}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "network app_back",
            "network app_default",
            "network app_front",
            "secret app_pw",
            "service app_db",
            "service app_web"
        ]
    );

    // Deployed: the secret is sent again, for the manager to check its
    // data unchanged (and write nothing if its labels are too), as `docker
    // stack deploy` does. A changed image updates web alone; a service gone
    // from the file goes with --prune only.
    for n in &stack.networks {
        current.networks.insert(n.name.clone());
    }
    current.secrets.insert("app_pw".into());
    for s in &stack.services {
        current.services.insert(s.name.clone(), s.clone());
    }
    assert_eq!(
        stack.plan(&current, true).unwrap(),
        [Action::UpdateSecret(stack.secrets[0].clone())]
    );
    let changed = read(&FILE.replace("${TAG:-1.27}", "1.28").replace(
        "  db:\n    image: postgres\n    deploy: {mode: global}\n",
        "",
    ))
    .unwrap();
    let plan = changed.plan(&current, false).unwrap();
    assert!(
        matches!(plan.as_slice(), [Action::UpdateSecret(_), Action::UpdateService(s)] if s.task.image == "nginx:1.28"),
        "{plan:?}"
    );
    let plan = changed.plan(&current, true).unwrap();
    assert!(
        matches!(plan.last(), Some(Action::RemoveService(s)) if s == "app_db"),
        "{plan:?}"
    );
}

#[test]
fn variables_are_replaced_in_values_once_the_yaml_is_read() {
    let vars = |name: &str| {
        let value = match name {
            "N" => "3",
            "RO" => "true",
            "EVIL" => "x\n    deploy: {mode: global}",
            "COLON" => "a: b",
            _ => return None,
        };
        Some(value.to_owned())
    };
    let text = r#"
# A comment is not read: ${NOT_HERE:?never asked}
services:
  web:
    image: "img:$EVIL"
    read_only: ${RO}
    hostname: $COLON
    labels:
      - price=$$5
      - missing=${GONE}
      - dflt=${GONE2:-d}
    deploy:
      replicas: ${N}
"#;
    let stack = Stack::from_compose("app", text, Path::new("."), &vars).unwrap();
    let web = &stack.services[0];
    // A value's newline and `: ` stay inside the value.
    assert_eq!(web.task.image, "img:x\n    deploy: {mode: global}");
    assert_eq!(web.task.hostname.as_deref(), Some("a: b"));
    assert_eq!(web.mode, ServiceMode::Replicated { replicas: 3 });
    assert!(web.task.read_only);
    assert_eq!(web.task.labels["price"], "$5");
    assert_eq!(web.task.labels["missing"], "");
    assert_eq!(web.task.labels["dflt"], "d");
    assert_eq!(
        stack.warnings,
        ["The GONE variable is not set. Defaulting to a blank string."]
    );
}

#[test]
fn generic_resources_and_isolation_are_read_as_docker_reads_them() {
    let text = "services:\n  train:\n    image: t\n    isolation: default\n    deploy:\n      resources:\n        reservations:\n          generic_resources:\n            - discrete_resource_spec: {kind: gpu, value: 2}\n";
    let stack = read(text).unwrap();
    let t = &stack.services[0].task;
    assert_eq!(t.resources.generic["gpu"], 2);
    assert_eq!(t.isolation.as_deref(), Some("default"));
    let named = text.replace(
        "discrete_resource_spec: {kind: gpu, value: 2}",
        "named_resource_spec: {kind: gpu, value: GPU-a}",
    );
    let e = read(&named).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("services.train.deploy.resources.reservations.generic_resources[0]: a service reserves an amount"),
        "{e}"
    );
}
