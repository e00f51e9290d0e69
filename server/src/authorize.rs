//! Which action and resource a Kinesis request is, whose policies apply, and the decision
//! (docs/design/authorization.md). A request naming another account's stream or consumer
//! by ARN is routed to that account's streams, when this server has them, and decided by
//! the cross-account rule.

use crate::arn::{ConsumerArn, StreamArn};
use crate::auth::{Caller, Scope};
use crate::iam::{self, Decision, Policy};
use crate::service::Service;
use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// The members of any Kinesis input that name what it acts on (the rest is skipped).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    shard_iterator: Option<String>,
}

/// How the request arrived.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// The client's address.
    pub peer: Option<IpAddr>,
    /// Over TLS.
    pub secure: bool,
}

/// The tenant a signed request acts on, once its policies allow it: the caller's own, or
/// the owner's of another account's stream it names.
pub async fn authorize(
    service: &Service,
    caller: &Caller,
    operation: &str,
    protocol: Protocol,
    body: &[u8],
    transport: Transport,
) -> Result<Arc<Tenant>, ApiError> {
    let own = service.tenant(Some(caller.scope.clone())).await?;
    let target: Target = match caller.policy.is_some() || service.may_hold_policies() {
        true => protocol.decode(body).unwrap_or_default(),
        // Nothing to evaluate: no identity policy, no resource policy anywhere.
        false => return Ok(own),
    };
    let owner = owner_account(&target).filter(|account| *account != caller.scope.account);
    let tenant = match owner {
        Some(account) => other_account(service, &account, &caller.scope).await?,
        None => own,
    };
    let (resource, resource_policy) = resource_of(&tenant, &target);
    let resource_policy = match resource_policy {
        Some(text) => Some(Policy::parse(&text).map_err(|e| {
            ApiError::internal(format!(
                "The resource policy of {resource} cannot be read: {e}"
            ))
        })?),
        None => None,
    };
    let action = format!("kinesis:{operation}");
    let request = iam::Request {
        action: &action,
        resource: &resource,
        principal: &caller.principal,
        source_ip: transport.peer,
        secure_transport: transport.secure,
        now: SystemTime::now(),
        region: &caller.scope.region,
    };
    let decision = iam::decide(
        caller.policy.as_deref(),
        resource_policy.as_ref(),
        &tenant.account,
        &request,
    );
    match decision {
        Decision::Allow => Ok(tenant),
        Decision::Deny(reason) => Err(access_denied(caller, &action, &resource, reason)),
    }
}

/// The account an ARN member names, if any.
fn owner_account(target: &Target) -> Option<String> {
    [
        &target.consumer_arn,
        &target.stream_arn,
        &target.resource_arn,
    ]
    .into_iter()
    .flatten()
    .find_map(|arn| {
        let stream = ConsumerArn::parse(arn)
            .map(|c| c.stream)
            .or_else(|| StreamArn::parse(arn))?;
        Some(stream.account.to_owned())
    })
}

/// Another account's tenant, in the caller's region, when this server holds it (never
/// created for a request from outside the account).
async fn other_account(
    service: &Service,
    account: &str,
    caller: &Scope,
) -> Result<Arc<Tenant>, ApiError> {
    let scope = Scope {
        account: account.to_owned(),
        region: caller.region.clone(),
    };
    if !service.holds_tenant(&scope) {
        return Err(ApiError::not_found(format!(
            "No streams under account {account} in {} on this endpoint.",
            caller.region
        )));
    }
    service.tenant(Some(scope)).await
}

/// The resource's ARN and its policy, if it has one.
fn resource_of(tenant: &Tenant, target: &Target) -> (String, Option<String>) {
    let arn = target
        .consumer_arn
        .clone()
        .or_else(|| target.resource_arn.clone())
        .or_else(|| consumer_by_name(tenant, target))
        .or_else(|| target.stream_arn.clone())
        .or_else(|| target.stream_name.as_ref().map(|n| tenant.stream_arn(n)))
        .or_else(|| {
            let token = target.shard_iterator.as_ref()?;
            let iterator = tenant.engine.iterator_from_token(token).ok()?;
            Some(tenant.stream_arn(iterator.stream_name()))
        });
    let Some(arn) = arn else {
        return ("*".to_owned(), None);
    };
    let policy = policy_of(tenant, &arn);
    (arn, policy)
}

/// DescribeStreamConsumer and DeregisterStreamConsumer by StreamARN and ConsumerName.
fn consumer_by_name(tenant: &Tenant, target: &Target) -> Option<String> {
    let (stream_arn, name) = (target.stream_arn.as_ref()?, target.consumer_name.as_ref()?);
    let found = crate::consumer::find(tenant, stream_arn, name, None).ok()?;
    Some(crate::arn::ConsumerArn::format(
        stream_arn,
        &found.consumer.name,
        found.consumer.created_ms / 1000,
    ))
}

/// The stored policy of the stream or consumer `arn` names.
fn policy_of(tenant: &Tenant, arn: &str) -> Option<String> {
    if ConsumerArn::parse(arn).is_some() {
        return crate::consumer::find_by_arn(tenant, arn)
            .ok()
            .and_then(|found| found.consumer.policy);
    }
    let stream = StreamArn::parse(arn)?;
    let created_ms = tenant
        .engine
        .stream(stream.stream)
        .ok()?
        .summary()
        .ok()?
        .created_ms;
    tenant.state.read(|state| {
        state
            .stream(stream.stream, created_ms)
            .and_then(|extras| extras.policy.clone())
    })
}

/// The caller's tenant for a KMS request, once its identity policy allows it (`kms:<Op>` on
/// the key's ARN, or `*` for CreateKey and the lists). Keys have no key policies here: an
/// account's keys are its own (docs/design/authorization.md).
pub async fn authorize_kms(
    service: &Service,
    caller: &Caller,
    operation: &str,
    protocol: Protocol,
    body: &[u8],
    transport: Transport,
) -> Result<Arc<Tenant>, ApiError> {
    let tenant = service.tenant(Some(caller.scope.clone())).await?;
    let Some(policy) = caller.policy.as_deref() else {
        return Ok(tenant);
    };
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct KeyTarget {
        key_id: Option<String>,
        target_key_id: Option<String>,
    }
    let target: KeyTarget = protocol.decode(body).unwrap_or_default();
    let resource = target
        .key_id
        .or(target.target_key_id)
        .and_then(|reference| tenant.keyring.find(&reference).ok())
        .map_or_else(
            || "*".to_owned(),
            |key| {
                format!(
                    "arn:aws:kms:{}:{}:key/{}",
                    tenant.region, tenant.account, key.id
                )
            },
        );
    let action = format!("kms:{operation}");
    let request = iam::Request {
        action: &action,
        resource: &resource,
        principal: &caller.principal,
        source_ip: transport.peer,
        secure_transport: transport.secure,
        now: SystemTime::now(),
        region: &caller.scope.region,
    };
    match iam::decide(Some(policy), None, &tenant.account, &request) {
        Decision::Allow => Ok(tenant),
        Decision::Deny(reason) => Err(access_denied(caller, &action, &resource, reason)),
    }
}

fn access_denied(
    caller: &Caller,
    action: &str,
    resource: &str,
    reason: iam::DenyReason,
) -> ApiError {
    ApiError::with_status(
        "AccessDeniedException",
        400,
        format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} {}",
            caller.principal.arn(),
            reason.because(action)
        ),
    )
}
