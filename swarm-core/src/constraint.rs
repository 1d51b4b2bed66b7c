//! Placement constraints: `node.labels.type==web`, `node.role!=manager`.

use std::fmt;
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
            Self::NodeLabel(k) => node.spec.labels.get(k).map_or("", String::as_str),
            Self::EngineLabel(k) => node
                .description
                .engine_labels
                .get(k)
                .map_or("", String::as_str),
        }
    }

    /// Whether values compare without regard to case (everything but ids
    /// and labels, as in Docker).
    fn case_insensitive(&self) -> bool {
        matches!(self, Self::Hostname | Self::Role | Self::Os | Self::Arch)
    }
}

impl FromStr for Attribute {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let label = |prefix: &str| {
            s.strip_prefix(prefix)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        };
        Ok(match s {
            "node.id" => Self::NodeId,
            "node.hostname" => Self::Hostname,
            "node.role" => Self::Role,
            "node.platform.os" => Self::Os,
            "node.platform.arch" => Self::Arch,
            _ => {
                if let Some(k) = label("node.labels.") {
                    Self::NodeLabel(k)
                } else if let Some(k) = label("engine.labels.") {
                    Self::EngineLabel(k)
                } else {
                    return Err(format!(
                        "unknown attribute {s:?}: expected node.id, node.hostname, node.role, \
                         node.platform.os, node.platform.arch, node.labels.<key> or engine.labels.<key>"
                    ));
                }
            }
        })
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
        let same = if self.attribute.case_insensitive() {
            actual.eq_ignore_ascii_case(&self.value)
        } else {
            actual == self.value
        };
        same == self.equal
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
        if value.is_empty() {
            return Err(bad("the value after the operator is empty"));
        }
        if value.contains("==") || value.contains("!=") {
            return Err(bad("only one operator is allowed per constraint"));
        }
        let attribute = key.parse::<Attribute>().map_err(|e| bad(&e))?;
        Ok(Self {
            attribute,
            equal,
            value: value.to_owned(),
        })
    }
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
    fn rejects_malformed_constraints_with_a_reason() {
        let err = "node.labels.type=web"
            .parse::<Constraint>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected == or !="), "{err}");
        assert!(err.contains("node.labels.type=web"), "{err}");
        let err = "node.colour==red"
            .parse::<Constraint>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown attribute"), "{err}");
        let err = "node.labels.==x"
            .parse::<Constraint>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown attribute"), "{err}");
        assert!("node.role==".parse::<Constraint>().is_err());
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
