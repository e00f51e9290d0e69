//! Policy documents: parsed once into statements that can be matched against requests.

use super::condition::Condition;
use super::glob;
use super::{Principal, Request};
use serde_json::Value;

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(super) statements: Vec<Statement>,
}

/// Why a document is not a policy this evaluator can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn error(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// A list of patterns, or "anything but" them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Patterns {
    Any(Vec<String>),
    AllBut(Vec<String>),
}

impl Patterns {
    fn matches(&self, text: &str, fold_case: bool) -> bool {
        let any = |list: &[String]| list.iter().any(|p| glob::matches(p, text, fold_case));
        match self {
            Patterns::Any(list) => any(list),
            Patterns::AllBut(list) => !any(list),
        }
    }
}

/// Whom a resource policy's statement is about.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Principals {
    /// `"*"` or `{"AWS": "*"}`.
    Everyone,
    /// Account ids, account root ARNs, user ARNs (with wildcards).
    Aws(Vec<String>),
}

impl Principals {
    fn includes(&self, principal: &Principal) -> bool {
        let list = match self {
            Principals::Everyone => return true,
            Principals::Aws(list) => list,
        };
        let arn = principal.arn();
        let root = format!("arn:aws:iam::{}:root", principal.account);
        list.iter().any(|p| {
            p == "*" || *p == principal.account || *p == root || glob::matches(p, &arn, false)
        })
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Statement {
    pub(super) effect: Effect,
    actions: Patterns,
    /// Absent in some resource policies: the resource the policy is attached to.
    resources: Option<Patterns>,
    /// Resource policies only.
    principals: Option<Principals>,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Whether the statement applies to `request` (its effect then decides).
    pub(super) fn applies(&self, request: &Request<'_>) -> bool {
        self.actions.matches(request.action, true)
            && self
                .resources
                .as_ref()
                .is_none_or(|r| r.matches(request.resource, false))
            && self
                .principals
                .as_ref()
                .is_none_or(|p| p.includes(request.principal))
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

impl Policy {
    /// Parses a resource policy: as `parse`, and every statement must name its `Principal`
    /// (a statement naming none would otherwise apply to every principal of every account).
    pub fn parse_resource(text: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(text)?;
        if policy.statements.iter().any(|s| s.principals.is_none()) {
            return Err(error(
                "Every Statement of a resource policy needs a Principal.",
            ));
        }
        Ok(policy)
    }

    /// Parses a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let document: Value = serde_json::from_str(text)
            .map_err(|e| error(format!("The policy is not a JSON document: {e}.")))?;
        let object = document
            .as_object()
            .ok_or_else(|| error("The policy must be a JSON object."))?;
        if let Some(version) = object.get("Version")
            && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
        {
            return Err(error(format!("Unsupported policy Version {version}.")));
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(list)) => list.iter().map(statement).collect::<Result<_, _>>()?,
            Some(single @ Value::Object(_)) => vec![statement(single)?],
            _ => return Err(error("The policy needs a Statement (an object or a list).")),
        };
        Ok(Policy { statements })
    }
}

fn statement(value: &Value) -> Result<Statement, PolicyError> {
    let object = value
        .as_object()
        .ok_or_else(|| error("Each Statement must be an object."))?;
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        other => {
            return Err(error(format!(
                "Effect must be Allow or Deny, not {other:?}."
            )));
        }
    };
    let actions = either(object, "Action", "NotAction")?
        .ok_or_else(|| error("A Statement needs an Action or a NotAction."))?;
    let resources = either(object, "Resource", "NotResource")?;
    let principals = match (object.get("Principal"), object.get("NotPrincipal")) {
        (_, Some(_)) => return Err(error("NotPrincipal is not supported.")),
        (None, None) => None,
        (Some(value), None) => Some(principals(value)?),
    };
    let conditions = match object.get("Condition") {
        None => Vec::new(),
        Some(value) => Condition::parse_block(value)?,
    };
    for key in object.keys() {
        let known = [
            "Sid",
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Principal",
            "NotPrincipal",
            "Condition",
        ];
        if !known.contains(&key.as_str()) {
            return Err(error(format!("Unknown Statement member {key}.")));
        }
    }
    Ok(Statement {
        effect,
        actions,
        resources,
        principals,
        conditions,
    })
}

/// `name` or `not_name` (not both), each a string or a list of strings.
fn either(
    object: &serde_json::Map<String, Value>,
    name: &str,
    not_name: &str,
) -> Result<Option<Patterns>, PolicyError> {
    match (object.get(name), object.get(not_name)) {
        (Some(_), Some(_)) => Err(error(format!(
            "A Statement has {name} or {not_name}, not both."
        ))),
        (Some(value), None) => Ok(Some(Patterns::Any(strings(value, name)?))),
        (None, Some(value)) => Ok(Some(Patterns::AllBut(strings(value, not_name)?))),
        (None, None) => Ok(None),
    }
}

/// A string or a list of strings.
pub(super) fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| error(format!("{what} must be a string or a list of strings.")))
    };
    match value {
        Value::Array(list) => list.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn principals(value: &Value) -> Result<Principals, PolicyError> {
    if value.as_str() == Some("*") {
        return Ok(Principals::Everyone);
    }
    let aws = value
        .as_object()
        .and_then(|o| o.get("AWS"))
        .ok_or_else(|| error("Principal must be \"*\" or {\"AWS\": ...}."))?;
    let list = strings(aws, "Principal.AWS")?;
    Ok(match list.iter().any(|p| p == "*") {
        true => Principals::Everyone,
        false => Principals::Aws(list),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_in_their_usual_shapes_and_bad_ones_say_why() {
        let policy = Policy::parse(
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}}"#,
        )
        .unwrap();
        assert_eq!(policy.statements.len(), 1);
        let listed = Policy::parse(
            r#"{"Statement": [{"Sid": "a", "Effect": "Deny", "NotAction": ["kinesis:Get*"], "NotResource": "arn:*"},
                              {"Effect": "Allow", "Principal": {"AWS": ["111122223333"]}, "Action": "kinesis:PutRecord"}]}"#,
        )
        .unwrap();
        assert_eq!(listed.statements.len(), 2);
        for (bad, says) in [
            ("[]", "JSON object"),
            ("{", "not a JSON document"),
            (r#"{"Statement": []}"#, ""),
            (
                r#"{"Statement": {"Effect": "Maybe", "Action": "*"}}"#,
                "Allow or Deny",
            ),
            (
                r#"{"Statement": {"Effect": "Allow"}}"#,
                "Action or a NotAction",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "*"}}"#,
                "not both",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Action": 7}}"#,
                "list of strings",
            ),
            (
                r#"{"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Action": "*"}}"#,
                "Version",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Action": "*", "Actions": "*"}}"#,
                "Unknown Statement member",
            ),
            (
                r#"{"Statement": {"Effect": "Allow", "Action": "*", "Principal": "me"}}"#,
                "Principal",
            ),
        ] {
            match Policy::parse(bad) {
                Ok(policy) => assert!(says.is_empty() && policy.statements.is_empty(), "{bad}"),
                Err(e) => assert!(e.0.contains(says), "{bad}: {e}"),
            }
        }
        let anyone =
            r#"{"Statement": {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}}"#;
        assert!(
            Policy::parse(anyone).is_ok(),
            "an identity policy names no principal"
        );
        let error = Policy::parse_resource(anyone).unwrap_err();
        assert!(error.0.contains("needs a Principal"), "{error}");
    }
}
