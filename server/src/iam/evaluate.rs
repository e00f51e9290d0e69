//! AWS' policy evaluation logic, for identity and resource policies within one account and
//! across two.

use super::Request;
use super::policy::{Effect, Policy};

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused, and why (AccessDeniedException's wording).
    Deny(DenyReason),
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// A Deny statement of the principal's identity policy applies.
    ExplicitInIdentityPolicy,
    /// A Deny statement of the resource's policy applies.
    ExplicitInResourcePolicy,
    /// Nothing allows it within the account.
    NoIdentityAllow,
    /// Across accounts, the resource's policy does not allow the principal.
    NoResourceAllow,
}

impl DenyReason {
    /// The end of AWS' message: `... because <this>`.
    pub fn because(self, action: &str) -> String {
        match self {
            DenyReason::ExplicitInIdentityPolicy => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            DenyReason::ExplicitInResourcePolicy => {
                "with an explicit deny in a resource-based policy".to_owned()
            }
            DenyReason::NoIdentityAllow => {
                format!("because no identity-based policy allows the {action} action")
            }
            DenyReason::NoResourceAllow => {
                format!("because no resource-based policy allows the {action} action")
            }
        }
    }
}

/// The effect a policy's statements have on `request`: Deny wins, then Allow, else none.
fn effect(policy: &Policy, request: &Request<'_>) -> Option<Effect> {
    let mut allowed = false;
    for statement in policy.statements.iter().filter(|s| s.applies(request)) {
        match statement.effect {
            Effect::Deny => return Some(Effect::Deny),
            Effect::Allow => allowed = true,
        }
    }
    allowed.then_some(Effect::Allow)
}

/// Decides `request` by the principal's identity policy (`None`: the principal may do
/// anything in its own account) and the resource's policy, for a resource of
/// `resource_account`.
pub fn decide(
    identity: Option<&Policy>,
    resource: Option<&Policy>,
    resource_account: &str,
    request: &Request<'_>,
) -> Decision {
    let identity_effect = match identity {
        None => Some(Effect::Allow),
        Some(policy) => effect(policy, request),
    };
    let resource_effect = resource.and_then(|policy| effect(policy, request));
    if identity_effect == Some(Effect::Deny) {
        return Decision::Deny(DenyReason::ExplicitInIdentityPolicy);
    }
    if resource_effect == Some(Effect::Deny) {
        return Decision::Deny(DenyReason::ExplicitInResourcePolicy);
    }
    let identity_allows = identity_effect == Some(Effect::Allow);
    let resource_allows = resource_effect == Some(Effect::Allow);
    if request.principal.account == resource_account {
        return match identity_allows || resource_allows {
            true => Decision::Allow,
            false => Decision::Deny(DenyReason::NoIdentityAllow),
        };
    }
    match (identity_allows, resource_allows) {
        (true, true) => Decision::Allow,
        (false, _) => Decision::Deny(DenyReason::NoIdentityAllow),
        (true, false) => Decision::Deny(DenyReason::NoResourceAllow),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Principal;
    use super::*;
    use std::time::SystemTime;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:111111111111:stream/orders";

    fn request<'a>(principal: &'a Principal, action: &'a str) -> Request<'a> {
        Request {
            action,
            resource: STREAM,
            principal,
            source_ip: None,
            secure_transport: true,
            now: SystemTime::now(),
            region: "us-east-1",
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn within_an_account_either_policy_allows_and_any_deny_wins() {
        let owner = Principal {
            account: "111111111111".into(),
            user: "AKIDOWNER".into(),
        };
        let readers = policy(
            r#"{"Statement": [{"Effect": "Allow", "Action": "kinesis:Get*", "Resource": "arn:aws:kinesis:*:*:stream/*"},
                              {"Effect": "Deny", "Action": "kinesis:GetRecords", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}"#,
        );
        let get = request(&owner, "kinesis:GetRecords");
        assert_eq!(
            decide(Some(&readers), None, "111111111111", &get),
            Decision::Allow
        );
        let mut plain = get.clone();
        plain.secure_transport = false;
        assert_eq!(
            decide(Some(&readers), None, "111111111111", &plain),
            Decision::Deny(DenyReason::ExplicitInIdentityPolicy)
        );
        let put = request(&owner, "kinesis:PutRecord");
        assert_eq!(
            decide(Some(&readers), None, "111111111111", &put),
            Decision::Deny(DenyReason::NoIdentityAllow)
        );
        // A resource policy naming the principal allows within the account...
        let open = policy(
            r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:user/AKIDOWNER"}, "Action": "kinesis:PutRecord", "Resource": "*"}}"#,
        );
        assert_eq!(
            decide(Some(&readers), Some(&open), "111111111111", &put),
            Decision::Allow
        );
        // ...and its Deny applies even to a principal with no identity policy.
        let closed = policy(
            r#"{"Statement": {"Effect": "Deny", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}}"#,
        );
        assert_eq!(
            decide(None, Some(&closed), "111111111111", &put),
            Decision::Deny(DenyReason::ExplicitInResourcePolicy)
        );
        assert_eq!(decide(None, None, "111111111111", &put), Decision::Allow);
    }

    #[test]
    fn across_accounts_both_policies_must_allow() {
        let other = Principal {
            account: "222222222222".into(),
            user: "AKIDOTHER".into(),
        };
        let get = request(&other, "kinesis:GetRecords");
        assert_eq!(
            decide(None, None, "111111111111", &get),
            Decision::Deny(DenyReason::NoResourceAllow)
        );
        let shared = policy(
            r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "222222222222"}, "Action": ["kinesis:GetRecords", "kinesis:GetShardIterator"], "Resource": "arn:aws:kinesis:us-east-1:111111111111:stream/orders"}}"#,
        );
        assert_eq!(
            decide(None, Some(&shared), "111111111111", &get),
            Decision::Allow
        );
        let put = request(&other, "kinesis:PutRecord");
        assert_eq!(
            decide(None, Some(&shared), "111111111111", &put),
            Decision::Deny(DenyReason::NoResourceAllow)
        );
        let nothing = policy(
            r#"{"Statement": {"Effect": "Allow", "Action": "kinesis:ListStreams", "Resource": "*"}}"#,
        );
        assert_eq!(
            decide(Some(&nothing), Some(&shared), "111111111111", &get),
            Decision::Deny(DenyReason::NoIdentityAllow)
        );
        let root = policy(
            r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "kinesis:*"}}"#,
        );
        assert_eq!(
            decide(None, Some(&root), "111111111111", &get),
            Decision::Deny(DenyReason::NoResourceAllow),
            "another account's root names only that account"
        );
    }
}
