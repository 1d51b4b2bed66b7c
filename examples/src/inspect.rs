//! `inspect` output in docker's shape, and docker's `--format` templates
//! for it, as far as scripts use them: `{{json .Endpoint.VirtualIPs}}`,
//! `{{.Spec.Name}}`, `{{index .Options "key"}}`.
//!
//! The top level and `Endpoint` are docker's field for field. `Spec` is
//! still swarm's own spec (the Engine API issue brings docker's).

use std::time::SystemTime;

use serde_json::{Value, json};
use swarm_core::model::{Meta, Network, PublishMode, Service};

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

fn meta(m: &Meta) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("ID".into(), json!(m.id.as_str()));
    out.insert("Version".into(), json!({ "Index": m.version }));
    out.insert("CreatedAt".into(), json!(time(m.created_at)));
    out.insert("UpdatedAt".into(), json!(time(m.updated_at)));
    out
}

/// A service as `docker service inspect` prints it.
#[must_use]
pub fn service(s: &Service) -> Value {
    let ports: Vec<Value> = s
        .spec
        .endpoint
        .ports
        .iter()
        .map(|p| {
            json!({
                "Protocol": p.protocol.to_string(),
                "TargetPort": p.target_port,
                "PublishedPort": p.published_port,
                "PublishMode": match p.publish_mode {
                    PublishMode::Ingress => "ingress",
                    PublishMode::Host => "host",
                },
            })
        })
        .collect();
    let vips: Vec<Value> = s
        .endpoint
        .virtual_ips
        .iter()
        .map(|v| json!({ "NetworkID": v.network_id.as_str(), "Addr": format!("{}/{}", v.addr, v.prefix) }))
        .collect();
    let mut endpoint = serde_json::Map::new();
    endpoint.insert(
        "Spec".into(),
        json!({ "Mode": s.spec.endpoint.mode.to_string(), "Ports": ports }),
    );
    if !ports.is_empty() {
        endpoint.insert("Ports".into(), Value::Array(ports));
    }
    if !vips.is_empty() {
        endpoint.insert("VirtualIPs".into(), Value::Array(vips));
    }
    if let Some(e) = &s.endpoint.error {
        endpoint.insert("Error".into(), json!(e));
    }
    let mut out = meta(&s.meta);
    out.insert(
        "Spec".into(),
        serde_json::to_value(&s.spec).unwrap_or(Value::Null),
    );
    if let Some(p) = s.previous_spec() {
        out.insert(
            "PreviousSpec".into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    if let Some(u) = &s.update_status {
        let mut status = serde_json::Map::new();
        status.insert("State".into(), json!(u.state.as_str()));
        status.insert("StartedAt".into(), json!(time(u.started_at)));
        if let Some(c) = u.completed_at {
            status.insert("CompletedAt".into(), json!(time(c)));
        }
        status.insert("Message".into(), json!(u.message));
        out.insert("UpdateStatus".into(), Value::Object(status));
    }
    out.insert("Endpoint".into(), Value::Object(endpoint));
    Value::Object(out)
}

/// A network as `docker network inspect` prints a swarm network.
#[must_use]
pub fn network(n: &Network) -> Value {
    let config: Vec<Value> = n
        .subnet()
        .map(|s| {
            let gateway = n.addresses.map(|a| a.gateway).or(n.spec.gateway);
            json!({ "Subnet": s.to_string(), "Gateway": gateway.map(|g| g.to_string()) })
        })
        .into_iter()
        .collect();
    let mut options = serde_json::Map::new();
    if let Some(a) = n.addresses {
        options.insert(
            "com.docker.network.driver.overlay.vxlanid_list".into(),
            json!(a.vni.to_string()),
        );
    }
    let mut out = json!({
        "Name": n.spec.name,
        "Id": n.meta.id.as_str(),
        "Created": time(n.meta.created_at),
        "Scope": "swarm",
        "Driver": if n.spec.driver.is_empty() { "overlay" } else { n.spec.driver.as_str() },
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": n.spec.internal,
        "Attachable": n.spec.attachable,
        "Ingress": n.spec.ingress,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": null,
        "Options": options,
        "Labels": n.spec.labels,
    });
    if let Some(e) = &n.error {
        out["Error"] = json!(e);
    }
    out
}

/// Renders docker's `--format` template `template` over `value`: text
/// with `{{.Path.To.Field}}`, `{{json .Path}}` and `{{index .Path "key"}}`
/// actions. Anything else is an error naming what is not understood.
pub fn format(template: &str, value: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action in template {template:?}: add }}}}"))?;
        out.push_str(&action(after[..end].trim(), value)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn action(action: &str, value: &Value) -> Result<String, String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [path] => Ok(plain(lookup(value, path)?)),
        ["json", path] => serde_json::to_string(lookup(value, path)?).map_err(|e| e.to_string()),
        ["index", path, key] => {
            let key = key.trim_matches('"');
            Ok(plain(lookup(value, path)?.get(key).unwrap_or(&Value::Null)))
        }
        _ => Err(format!(
            "the template action {{{{{action}}}}} is not supported: use {{{{.Field}}}}, {{{{json .Field}}}} or {{{{index .Field \"key\"}}}}"
        )),
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Result<&'a Value, String> {
    let Some(path) = path.strip_prefix('.') else {
        return Err(format!(
            "{path:?} is not a field path: write it as .Field.Sub"
        ));
    };
    let mut at = value;
    for field in path.split('.').filter(|f| !f.is_empty()) {
        at = at
            .get(field)
            .ok_or_else(|| format!("no field {field:?} (in .{path})"))?;
    }
    Ok(at)
}

/// A value as Go's template prints it: strings bare, `<no value>` for null.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_walk_fields_and_print_json() {
        let v = json!({ "Spec": { "Name": "web" }, "Endpoint": { "VirtualIPs": [{ "Addr": "10.0.1.2/24" }] }, "Options": { "a.b": "7" } });
        assert_eq!(format("{{.Spec.Name}}", &v).unwrap(), "web");
        assert_eq!(
            format("vips={{json .Endpoint.VirtualIPs}}", &v).unwrap(),
            r#"vips=[{"Addr":"10.0.1.2/24"}]"#
        );
        assert_eq!(format(r#"{{index .Options "a.b"}}"#, &v).unwrap(), "7");
        assert!(
            format("{{.Nope}}", &v)
                .unwrap_err()
                .contains("no field \"Nope\"")
        );
        assert!(
            format("{{range .X}}", &v)
                .unwrap_err()
                .contains("not supported")
        );
        assert!(format("{{.Spec", &v).unwrap_err().contains("unclosed"));
    }
}
