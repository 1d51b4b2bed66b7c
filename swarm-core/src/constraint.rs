//! Placement constraints: `node.labels.type==web`, `node.role!=manager`.
//!
//! Parsed and matched as SwarmKit's `manager/constraint` does:
//!
//! - **Operators**: `==` or `!=`; where both appear, the first `==` splits.
//!   The key and the value are trimmed.
//! - **Keys**: a letter or `_`, then one or more letters, digits, `-`, `_`
//!   or `.`. The attribute names and the `node.labels.`/`engine.labels.`
//!   prefixes are recognised without regard to case; the label's own name
//!   is case-sensitive.
//! - **Values**: one or more letters, digits, whitespace or
//!   `: - _ . * ( ) ? + [ ] \ ^ $ | /`, compared literally (no globs).
//! - **Matching**: every value compares **without regard to case**
//!   (Unicode case folding), label values and `node.id` included. A
//!   missing label, hostname or platform field is empty, and since a value
//!   is never empty, `==` fails on it and `!=` holds
//!   (`node.labels.zone!=a` holds on a node without `zone`).
//! - **`node.ip`**: the node's address; the value is an IP (equal once
//!   normalised: `2001:db8:0::2` is `2001:db8::2`) or a CIDR network
//!   (containment, host bits allowed: `10.0.3.4/24`). A value that is
//!   neither fails both `==` and `!=`; a node address that does not parse
//!   fails `==` and satisfies `!=`.
//! - A list holds when every constraint holds.
//!
//! One difference, on purpose: SwarmKit accepts a key it does not know
//! (`node.colour==red`) and then places nothing, leaving the service's
//! tasks pending for ever; we refuse it when the service is created,
//! naming the keys there are.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::SpecError;
use crate::model::Node;

/// The node attribute a constraint (or a spread preference) looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `node.id`
    NodeId,
    /// `node.hostname`
    Hostname,
    /// `node.role`
    Role,
    /// `node.platform.os`
    Os,
    /// `node.platform.arch`
    Arch,
    /// `node.ip`: the address the node was last seen at.
    NodeIp,
    /// `node.labels.<key>`
    NodeLabel(String),
    /// `engine.labels.<key>`
    EngineLabel(String),
}

impl Attribute {
    /// The attribute's value on `node`; a missing label is empty.
    #[must_use]
    pub fn value<'a>(&self, node: &'a Node) -> &'a str {
        match self {
            Self::NodeId => node.meta.id.as_str(),
            Self::Hostname => &node.description.hostname,
            Self::Role => match node.spec.role {
                crate::model::NodeRole::Manager => "manager",
                crate::model::NodeRole::Worker => "worker",
            },
            Self::Os => &node.description.platform.os,
            Self::Arch => &node.description.platform.architecture,
            Self::NodeIp => &node.status.addr,
            Self::NodeLabel(k) => node.spec.labels.get(k).map_or("", String::as_str),
            Self::EngineLabel(k) => node
                .description
                .engine_labels
                .get(k)
                .map_or("", String::as_str),
        }
    }
}

/// Whether `a` and `b` are equal under simple Unicode case folding, as
/// Go's `strings.EqualFold` tells.
#[must_use]
pub fn eq_fold(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.len() == b.len() && a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// The IP of a node address: `IP`, `IP:PORT` or `[IPv6]:PORT`.
pub(crate) fn node_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// A `node.ip` value: an address, or a network `ADDR/BITS`.
fn ip_matches(value: &str, ip: IpAddr) -> Option<bool> {
    if let Ok(want) = value.parse::<IpAddr>() {
        return Some(want == ip);
    }
    let (net, bits) = value.split_once('/')?;
    let net: IpAddr = net.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let within = |a: u128, b: u128, width: u32| {
        let shift = width - bits;
        shift >= width || (a >> shift) == (b >> shift)
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => Some(within(
            u128::from(u32::from(n)),
            u128::from(u32::from(i)),
            32,
        )),
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            Some(within(u128::from(n), u128::from(i), 128))
        }
        // A network of the other family: a valid value that this node's
        // address is not in.
        (IpAddr::V4(_), IpAddr::V6(_)) if bits <= 32 => Some(false),
        (IpAddr::V6(_), IpAddr::V4(_)) if bits <= 128 => Some(false),
        _ => None,
    }
}

impl FromStr for Attribute {
    type Err = String;
    /// The attribute names and label prefixes without regard to case; the
    /// label's name as written.
    fn from_str(s: &str) -> Result<Self, String> {
        let label = |prefix: &str| {
            let head = s.get(..prefix.len())?;
            eq_fold(head, prefix)
                .then(|| &s[prefix.len()..])
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        };
        let fixed = [
            ("node.id", Self::NodeId),
            ("node.hostname", Self::Hostname),
            ("node.role", Self::Role),
            ("node.platform.os", Self::Os),
            ("node.platform.arch", Self::Arch),
            ("node.ip", Self::NodeIp),
        ];
        if let Some((_, a)) = fixed.into_iter().find(|(name, _)| eq_fold(name, s)) {
            return Ok(a);
        }
        if let Some(k) = label("node.labels.") {
            Ok(Self::NodeLabel(k))
        } else if let Some(k) = label("engine.labels.") {
            Ok(Self::EngineLabel(k))
        } else {
            Err(format!(
                "unknown attribute {s:?}: expected node.id, node.hostname, node.role, node.ip, \
                 node.platform.os, node.platform.arch, node.labels.<key> or engine.labels.<key>"
            ))
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NodeId => f.write_str("node.id"),
            Self::Hostname => f.write_str("node.hostname"),
            Self::Role => f.write_str("node.role"),
            Self::Os => f.write_str("node.platform.os"),
            Self::Arch => f.write_str("node.platform.arch"),
            Self::NodeIp => f.write_str("node.ip"),
            Self::NodeLabel(k) => write!(f, "node.labels.{k}"),
            Self::EngineLabel(k) => write!(f, "engine.labels.{k}"),
        }
    }
}

/// A parsed constraint: `attribute == value` or `attribute != value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    /// What is compared.
    pub attribute: Attribute,
    /// `true` for `==`, `false` for `!=`.
    pub equal: bool,
    /// The value compared with.
    pub value: String,
}

impl Constraint {
    /// Parses every constraint of a list, or says which is wrong.
    pub fn parse_all(list: &[String]) -> Result<Vec<Constraint>, SpecError> {
        let mut errors = SpecError::default();
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            match c.parse() {
                Ok(c) => out.push(c),
                Err(e) => errors.extend(e),
            }
        }
        errors.into_result().map(|()| out)
    }

    /// Whether `node` satisfies the constraint.
    #[must_use]
    pub fn matches(&self, node: &Node) -> bool {
        let actual = self.attribute.value(node);
        if matches!(self.attribute, Attribute::NodeIp) {
            return match node_ip(actual) {
                // Neither an address nor a network: nothing matches.
                Some(ip) => ip_matches(&self.value, ip).is_some_and(|m| m == self.equal),
                None => !self.equal,
            };
        }
        eq_fold(actual, &self.value) == self.equal
    }

    /// Whether `node` satisfies every constraint of `list`.
    #[must_use]
    pub fn all_match(list: &[Constraint], node: &Node) -> bool {
        list.iter().all(|c| c.matches(node))
    }
}

impl FromStr for Constraint {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = |why: &str| {
            SpecError::single(
                "placement.constraints",
                format!("invalid constraint {s:?}: {why}"),
            )
        };
        let (key, equal, value) = if let Some((k, v)) = s.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = s.split_once("!=") {
            (k, false, v)
        } else {
            return Err(bad("expected == or !=, e.g. node.labels.type==web"));
        };
        let (key, value) = (key.trim(), value.trim());
        if !valid_key(key) {
            return Err(bad(&format!(
                "key {key:?} is invalid: it starts with a letter or _ and goes on with at \
                 least one letter, digit, -, _ or ."
            )));
        }
        if value.is_empty() {
            return Err(bad("the value after the operator is empty"));
        }
        if !value.chars().all(value_char) {
            return Err(bad(&format!(
                "value {value:?} is invalid: use letters, digits, spaces and : - _ . * ( ) ? + \
                 [ ] \\ ^ $ | / (one operator per constraint)"
            )));
        }
        let attribute = key.parse::<Attribute>().map_err(|e| bad(&e))?;
        Ok(Self {
            attribute,
            equal,
            value: value.to_owned(),
        })
    }
}

/// SwarmKit's key rule: `[A-Za-z_][A-Za-z0-9_.-]+`.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// SwarmKit's value characters.
fn value_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c.is_ascii_whitespace()
        || matches!(
            c,
            ':' | '-'
                | '_'
                | '.'
                | '*'
                | '('
                | ')'
                | '?'
                | '+'
                | '['
                | ']'
                | '\\'
                | '^'
                | '$'
                | '|'
                | '/'
        )
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{op}{}", self.attribute, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Meta, NodeDescription, NodeSpec, NodeStatus};
    use proptest::prelude::*;

    fn node() -> Node {
        let mut spec = NodeSpec::default();
        spec.labels.insert("type".into(), "web".into());
        Node {
            meta: Meta::new("n1".into()),
            spec,
            description: NodeDescription {
                data_addr: None,
                hostname: "Host-A".into(),
                ..Default::default()
            },
            status: NodeStatus::default(),
        }
    }

    #[test]
    fn matches_labels_roles_and_hostnames() {
        let n = node();
        let c = |s: &str| s.parse::<Constraint>().unwrap().matches(&n);
        assert!(c("node.labels.type==web"));
        assert!(!c("node.labels.type!=web"));
        assert!(
            c("node.labels.zone!=a"),
            "a missing label compares as empty"
        );
        assert!(!c("node.labels.zone==a"));
        assert!(c("node.role==worker"));
        assert!(c("node.hostname==host-a"), "hostnames compare without case");
        assert!(c("node.id==n1"));
        assert!(c(" node.labels.type == web "));
    }

    #[test]
    fn every_value_compares_without_case_as_swarmkit_does() {
        let mut n = node();
        n.description
            .engine_labels
            .insert("disk".into(), "SSD".into());
        n.description.platform.os = "linux".into();
        n.description.platform.architecture = "x86_64".into();
        let c = |s: &str| s.parse::<Constraint>().unwrap().matches(&n);
        assert!(c("node.labels.type==WEB"), "label values fold case");
        assert!(!c("node.labels.type!=Web"));
        assert!(c("engine.labels.disk==ssd"));
        assert!(c("node.id==N1"), "node ids fold case");
        assert!(c("node.role==WORKER"));
        assert!(c("node.platform.os==Linux"));
        assert!(c("node.platform.arch==X86_64"));
        assert!(c("node.hostname==HOST-A"));
        n.description.hostname = "Straße".into();
        let c = |s: &str| s.parse::<Constraint>().unwrap().matches(&n);
        assert!(
            eq_fold("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
            "Unicode folding, beyond ASCII"
        );
        assert!(!c("node.hostname==strasse"), "folding is not normalising");
    }

    #[test]
    fn keys_fold_case_but_label_names_do_not() {
        let n = node();
        let c = |s: &str| s.parse::<Constraint>().unwrap();
        assert_eq!(c("Node.Hostname==x").attribute, Attribute::Hostname);
        assert_eq!(c("NODE.ROLE==worker").attribute, Attribute::Role);
        assert_eq!(
            c("NODE.LABELS.type==web").attribute,
            Attribute::NodeLabel("type".into())
        );
        assert!(c("NODE.LABELS.type==web").matches(&n));
        assert!(
            !c("node.labels.TYPE==web").matches(&n),
            "the label's own name is case-sensitive: TYPE is missing"
        );
        assert!(c("node.labels.TYPE!=web").matches(&n));
        assert_eq!(
            c("Engine.Labels.k==v").attribute,
            Attribute::EngineLabel("k".into())
        );
    }

    #[test]
    fn missing_fields_are_empty() {
        let mut n = node();
        n.description = NodeDescription::default();
        let c = |s: &str| s.parse::<Constraint>().unwrap().matches(&n);
        for key in [
            "node.hostname",
            "node.platform.os",
            "node.platform.arch",
            "engine.labels.x",
        ] {
            assert!(!c(&format!("{key}==a")), "{key}: == fails on empty");
            assert!(c(&format!("{key}!=a")), "{key}: != holds on empty");
        }
    }

    #[test]
    fn node_ip_matches_addresses_and_networks() {
        let mut n = node();
        let c = |n: &Node, s: &str| s.parse::<Constraint>().unwrap().matches(n);
        n.status.addr = "192.168.1.5:2377".into();
        assert!(c(&n, "node.ip==192.168.1.5"));
        assert!(!c(&n, "node.ip!=192.168.1.5"));
        assert!(c(&n, "node.ip==192.168.1.0/24"));
        assert!(c(&n, "node.ip==192.168.1.77/24"), "host bits are allowed");
        assert!(!c(&n, "node.ip==192.168.2.0/24"));
        assert!(c(&n, "node.ip!=10.0.0.0/8"));
        assert!(c(&n, "node.ip==0.0.0.0/0"));
        assert!(!c(&n, "node.ip==not_an_ip"), "neither address nor network");
        assert!(!c(&n, "node.ip!=not_an_ip"), "fails both ways");
        assert!(!c(&n, "node.ip==10.0.0.0/34") && !c(&n, "node.ip!=10.0.0.0/34"));
        n.status.addr = "2001:db8::2".into();
        assert!(c(&n, "node.ip==2001:db8:0::2"), "normalised");
        assert!(c(&n, "node.ip==2001:db8::/32"));
        assert!(c(&n, "node.ip!=192.168.1.0/24"), "another family");
        n.status.addr = "[2001:db8::2]:2377".into();
        assert!(c(&n, "node.ip==2001:db8::2"));
        n.status.addr = "somewhere".into();
        assert!(!c(&n, "node.ip==192.168.1.5"), "an unparsable node address");
        assert!(c(&n, "node.ip!=192.168.1.5"));
    }

    #[test]
    fn the_first_double_equals_splits() {
        // `==` wins over `!=` and splits at its first occurrence; what is
        // left must be a valid key and value, where `=` and `!` are not
        // allowed.
        let c: Constraint = "node.labels.a == b".parse().unwrap();
        assert!(c.equal && c.value == "b");
        for s in [
            "node.labels.a!=b==c",
            "node.labels.a==b==c",
            "node.labels.a!=b=c",
            "node.labels.a==b!c",
        ] {
            assert!(s.parse::<Constraint>().is_err(), "{s}");
        }
    }

    #[test]
    fn keys_and_values_use_swarmkit_s_characters() {
        let ok = |s: &str| s.parse::<Constraint>().is_ok();
        assert!(ok("node.labels.my-key_1.x==a"));
        assert!(ok("node.hostname==node 1"), "spaces inside a value");
        assert!(ok("node.labels.path==/srv/data"));
        assert!(ok("node.labels.v==a:b-c_d.e*(f)?+[g]\\^$|h"));
        assert!(!ok("node.labels.my key==x"), "a space inside a key");
        assert!(!ok("node.labels.k/x==y"));
        assert!(!ok("node.labels.k==x,y"));
        assert!(!ok("node.labels.k==\"x\""));
        assert!(!ok("node.labels.k==café"), "ASCII only, as SwarmKit");
        assert!(!ok("x==y"), "a key has at least two characters");
        assert!(!ok("1node.labels.k==y"), "a key starts with a letter or _");
        assert!(!ok("node.labels.k=="));
        assert!(!ok("node.labels.k==   "));
        assert!(!ok(""));
        let err = "node.labels.k==a,b"
            .parse::<Constraint>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("value \"a,b\" is invalid"), "{err}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = s.parse::<Constraint>();
        }

        #[test]
        fn display_round_trips(key in "[a-z]{1,8}", value in "[a-zA-Z0-9]{1,8}", eq in any::<bool>()) {
            let text = format!("node.labels.{key}{}{value}", if eq { "==" } else { "!=" });
            let c: Constraint = text.parse().unwrap();
            prop_assert_eq!(c.to_string(), text);
        }
    }
}
