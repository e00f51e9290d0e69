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
    next_token: Option<String>,
}

/// Which members name what an operation acts on: exactly those the operation itself reads,
/// so a member it ignores cannot steer the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// StreamName or StreamARN.
    Stream,
    /// ResourceARN: a stream or a consumer (tags, resource policies).
    Resource,
    /// ConsumerARN, or StreamARN and ConsumerName.
    Consumer,
    /// ConsumerARN only.
    Subscription,
    /// The shard iterator's stream (StreamARN must agree: GetRecords checks).
    Iterator,
    /// StreamName or StreamARN, or the NextToken's stream.
    ShardPage,
    /// The account (`*`).
    Account,
}

fn names(operation: &str) -> Names {
    match operation {
        "TagResource"
        | "UntagResource"
        | "ListTagsForResource"
        | "PutResourcePolicy"
        | "GetResourcePolicy"
        | "DeleteResourcePolicy" => Names::Resource,
        "DescribeStreamConsumer" | "DeregisterStreamConsumer" => Names::Consumer,
        "SubscribeToShard" => Names::Subscription,
        "GetRecords" => Names::Iterator,
        "ListShards" => Names::ShardPage,
        "ListStreams" | "DescribeLimits" | "DescribeAccountSettings" | "UpdateAccountSettings" => {
            Names::Account
        }
        _ => Names::Stream,
    }
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
    if caller.policy.is_none() && !service.may_hold_policies() {
        // Nothing to evaluate: no identity policy, no resource policy anywhere.
        return Ok(own);
    }
    // A body the operation could not read either is refused here, not decided as `*`.
    let target: Target = protocol.decode(body)?;
    let names = names(operation);
    let owner = owner_account(names, &target).filter(|account| *account != caller.scope.account);
    let tenant = match owner {
        Some(account) => other_account(service, &account, &caller.scope).await?,
        None => own,
    };
    let (resource, resource_policy) = match cluster_resource(service, &tenant, names, &target)? {
        Some(found) => found,
        None => resource_of(&tenant, names, &target)?,
    };
    let resource_policy = match resource_policy {
        Some(text) => Some(Policy::parse_resource(&text).map_err(|e| {
            ApiError::internal(format!(
                "The resource policy of {resource} cannot be read: {e}"
            ))
        })?),
        None => None,
    };
    let action = format!("kinesis:{operation}");
    let request = policy_request(caller, &action, &resource, Some(transport));
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

/// The account named by the ARN member the operation reads, if it has one.
fn owner_account(names: Names, target: &Target) -> Option<String> {
    let arn = match names {
        Names::Resource => target.resource_arn.as_ref(),
        Names::Subscription => target.consumer_arn.as_ref(),
        Names::Consumer => target.consumer_arn.as_ref().or(target.stream_arn.as_ref()),
        Names::Stream | Names::Iterator | Names::ShardPage => target.stream_arn.as_ref(),
        Names::Account => None,
    }?;
    let stream = ConsumerArn::parse(arn)
        .map(|c| c.stream)
        .or_else(|| StreamArn::parse(arn))?;
    Some(stream.account.to_owned())
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

/// The resource's canonical ARN (formatted from what was found, never the client's
/// spelling) and its policy, if it has one; `*` when the request names none (the operation
/// then refuses it, or acts on the account).
fn resource_of(
    tenant: &Tenant,
    names: Names,
    target: &Target,
) -> Result<(String, Option<String>), ApiError> {
    let stream = |name: &Option<String>, arn: &Option<String>| {
        tenant
            .resolve(name, arn)
            .and_then(|name| stream_resource(tenant, &name))
    };
    let none = || Ok(("*".to_owned(), None));
    match names {
        Names::Account => none(),
        Names::Stream => stream(&target.stream_name, &target.stream_arn),
        Names::Resource => match &target.resource_arn {
            Some(arn) if ConsumerArn::parse(arn).is_some() => consumer_resource(tenant, arn),
            Some(arn) => stream(&None, &Some(arn.clone())),
            None => none(),
        },
        Names::Subscription => match &target.consumer_arn {
            Some(arn) => consumer_resource(tenant, arn),
            None => none(),
        },
        Names::Consumer => match (
            &target.consumer_arn,
            &target.stream_arn,
            &target.consumer_name,
        ) {
            (Some(arn), _, _) => consumer_resource(tenant, arn),
            (None, Some(stream_arn), Some(name)) => {
                let found = crate::consumer::find(tenant, stream_arn, name, None)?;
                Ok(consumer_found(tenant, found))
            }
            _ => none(),
        },
        Names::Iterator => match &target.shard_iterator {
            Some(token) => match tenant.engine.iterator_from_token(token) {
                Ok(iterator) => stream_resource(tenant, iterator.stream_name()),
                // GetRecords refuses it the same way.
                Err(e) => Err(e.into()),
            },
            None => none(),
        },
        Names::ShardPage => match (&target.stream_name, &target.stream_arn, &target.next_token) {
            (None, None, Some(token)) => {
                let page = tenant.engine.list_shards(&sluice_core::ListShards {
                    next_token: Some(token.clone()),
                    max_results: Some(1),
                    ..Default::default()
                })?;
                stream_resource(tenant, &page.stream)
            }
            _ => stream(&target.stream_name, &target.stream_arn),
        },
    }
}

/// In cluster mode, the stream or consumer a call names (by name, ARN, iterator or
/// ListShards page): its ARN and policy, from the cluster's map. `None`: the call names
/// none, or not in cluster mode.
#[cfg(feature = "cluster")]
fn cluster_resource(
    service: &Service,
    tenant: &Tenant,
    names: Names,
    target: &Target,
) -> Result<Option<(String, Option<String>)>, ApiError> {
    let Some(cluster) = service.cluster() else {
        return Ok(None);
    };
    // The cluster serves its own account and region only (the call is refused after): its
    // map says nothing of another tenant's resources.
    if !std::ptr::eq(tenant, service.default_tenant().as_ref()) {
        return Ok(None);
    }
    if let Some(named) = consumer_named(names, target) {
        return cluster.consumer_resource(&named).map(Some);
    }
    use crate::cluster::Token;
    let stream = match (names, &target.shard_iterator, &target.next_token) {
        (Names::Iterator, Some(token), _) => cluster.stream_of(Token::Iterator(token))?,
        (Names::ShardPage, _, Some(token))
            if target.stream_name.is_none() && target.stream_arn.is_none() =>
        {
            cluster.stream_of(Token::ShardPage(token))?
        }
        (Names::Stream | Names::ShardPage, _, _) => {
            tenant.resolve(&target.stream_name, &target.stream_arn)?
        }
        (Names::Resource, _, _) => match &target.resource_arn {
            Some(arn) => tenant.resolve(&None, &Some(arn.clone()))?,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some((
        tenant.stream_arn(&stream),
        cluster.stream_policy(&stream),
    )))
}

/// The consumer a call names, if it names one.
#[cfg(feature = "cluster")]
fn consumer_named(names: Names, target: &Target) -> Option<crate::ops::consumers::ConsumerRef> {
    use crate::ops::consumers::ConsumerRef;
    let by_arn = |arn: &String| ConsumerRef {
        consumer_arn: Some(arn.clone()),
        stream_arn: None,
        consumer_name: None,
    };
    match names {
        Names::Resource => (target.resource_arn.as_ref())
            .filter(|arn| ConsumerArn::parse(arn).is_some())
            .map(by_arn),
        Names::Subscription => target.consumer_arn.as_ref().map(by_arn),
        Names::Consumer => match &target.consumer_arn {
            Some(arn) => Some(by_arn(arn)),
            None => Some(ConsumerRef {
                consumer_arn: None,
                stream_arn: Some(target.stream_arn.clone()?),
                consumer_name: Some(target.consumer_name.clone()?),
            }),
        },
        _ => None,
    }
}

#[cfg(not(feature = "cluster"))]
fn cluster_resource(
    _: &Service,
    _: &Tenant,
    _: Names,
    _: &Target,
) -> Result<Option<(String, Option<String>)>, ApiError> {
    Ok(None)
}

/// A stream of `tenant`: its ARN and policy (none for a stream that does not exist yet,
/// as CreateStream names).
fn stream_resource(tenant: &Tenant, name: &str) -> Result<(String, Option<String>), ApiError> {
    let created_ms = tenant
        .engine
        .stream(name)
        .and_then(|stream| stream.summary())
        .map(|summary| summary.created_ms);
    let policy = created_ms.ok().and_then(|created_ms| {
        tenant.state.read(|state| {
            state
                .stream(name, created_ms)
                .and_then(|extras| extras.policy.clone())
        })
    });
    Ok((tenant.stream_arn(name), policy))
}

/// A consumer named by ARN: its canonical ARN and policy.
fn consumer_resource(tenant: &Tenant, arn: &str) -> Result<(String, Option<String>), ApiError> {
    let found = crate::consumer::find_by_arn(tenant, arn)?;
    Ok(consumer_found(tenant, found))
}

fn consumer_found(
    tenant: &Tenant,
    found: crate::consumer::FoundConsumer,
) -> (String, Option<String>) {
    let arn = ConsumerArn::format(
        &tenant.stream_arn(&found.stream),
        &found.consumer.name,
        found.consumer.created_ms / 1000,
    );
    (arn, found.consumer.policy)
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
    identity_allows(caller, policy, &tenant, &action, &resource, transport)?;
    Ok(tenant)
}

/// Authorizes a Firehose call: the caller's identity policy must allow `firehose:<op>` on the
/// delivery stream's ARN (every delivery stream, `*`, for ListDeliveryStreams). The tenant
/// is the caller's own account and region.
#[cfg(feature = "firehose")]
pub async fn authorize_firehose(
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
    struct Target {
        delivery_stream_name: Option<String>,
        kinesis_stream_source_configuration: Option<Source>,
    }
    #[derive(Default, Deserialize)]
    struct Source {
        #[serde(rename = "KinesisStreamARN")]
        kinesis_stream_arn: Option<String>,
    }
    let target: Target = protocol.decode(body).unwrap_or_default();
    let resource = target.delivery_stream_name.map_or_else(
        || "*".to_owned(),
        |name| crate::firehose::arn(&tenant, &name),
    );
    let mut checks = vec![(format!("firehose:{operation}"), resource)];
    // A delivery stream reading a stream reads it for its creator: who may not read the
    // stream may not make one.
    if let Some(source) = target
        .kinesis_stream_source_configuration
        .and_then(|s| s.kinesis_stream_arn)
    {
        checks.push(("kinesis:GetRecords".to_owned(), source));
    }
    for (action, resource) in checks {
        identity_allows(caller, policy, &tenant, &action, &resource, transport)?;
    }
    Ok(tenant)
}

/// Authorizes a Kinesis Data Analytics call: the caller's identity policy must allow
/// `kinesisanalytics:<op>` on the application's ARN (`ResourceARN` for the tag operations;
/// `*` for ListApplications and DiscoverInputSchema). An application reads and writes
/// streams for its creator: who names a stream as an input (or DiscoverInputSchema's
/// source) needs `kinesis:GetRecords` on it, as an output `kinesis:PutRecords`, and as a
/// reference table's object `s3:GetObject`.
#[cfg(feature = "analytics")]
pub async fn authorize_analytics(
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
    let request: serde_json::Value = protocol.decode(body).unwrap_or_default();
    let member = |name: &str| {
        request
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let application = match operation {
        "TagResource" | "UntagResource" | "ListTagsForResource" => member("ResourceARN"),
        "ListApplications" | "DiscoverInputSchema" => None,
        _ => member("ApplicationName").map(|name| crate::analytics::arn(&tenant, &name)),
    };
    let mut checks = vec![(
        format!("kinesisanalytics:{operation}"),
        application.unwrap_or_else(|| "*".to_owned()),
    )];
    if operation == "DiscoverInputSchema"
        && let Some(stream) = member("ResourceARN")
    {
        checks.push(("kinesis:GetRecords".to_owned(), stream));
    }
    streams_named(&request, &mut checks);
    if operation == "UpdateApplication" {
        reference_updates_named(&tenant, &request, &mut checks).await?;
    }
    for (action, resource) in checks {
        identity_allows(caller, policy, &tenant, &action, &resource, transport)?;
    }
    Ok(tenant)
}

/// The streams an analytics request names as inputs (`kinesis:GetRecords`) and outputs
/// (`kinesis:PutRecords`), the delivery streams (`firehose:DescribeDeliveryStream`,
/// `firehose:PutRecordBatch`), and the reference objects (`s3:GetObject`), wherever in it
/// they are.
#[cfg(feature = "analytics")]
fn streams_named(value: &serde_json::Value, checks: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(members) => {
            for (name, inner) in members {
                // An update's object is checked with the application's (its bucket or key
                // may be the one kept): see reference_updates_named.
                if name == "S3ReferenceDataSource" {
                    let part = |member: &str| inner.get(member).and_then(|v| v.as_str());
                    if let (Some(bucket), Some(key)) = (part("BucketARN"), part("FileKey")) {
                        checks.push(("s3:GetObject".to_owned(), format!("{bucket}/{key}")));
                    }
                    continue;
                }
                let (action, arn_member) = match name.as_str() {
                    "KinesisStreamsInput" => ("kinesis:GetRecords", "ResourceARN"),
                    "KinesisStreamsInputUpdate" => ("kinesis:GetRecords", "ResourceARNUpdate"),
                    "KinesisStreamsOutput" => ("kinesis:PutRecords", "ResourceARN"),
                    "KinesisStreamsOutputUpdate" => ("kinesis:PutRecords", "ResourceARNUpdate"),
                    // An application reads a delivery stream's records as they come in,
                    // and puts rows into one as PutRecordBatch does.
                    "KinesisFirehoseInput" => ("firehose:DescribeDeliveryStream", "ResourceARN"),
                    "KinesisFirehoseInputUpdate" => {
                        ("firehose:DescribeDeliveryStream", "ResourceARNUpdate")
                    }
                    "KinesisFirehoseOutput" => ("firehose:PutRecordBatch", "ResourceARN"),
                    "KinesisFirehoseOutputUpdate" => {
                        ("firehose:PutRecordBatch", "ResourceARNUpdate")
                    }
                    _ => {
                        streams_named(inner, checks);
                        continue;
                    }
                };
                if let Some(arn) = inner.get(arn_member).and_then(|v| v.as_str()) {
                    checks.push((action.to_owned(), arn.to_owned()));
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                streams_named(item, checks);
            }
        }
        _ => {}
    }
}

/// The objects an UpdateApplication's reference data source updates make the application
/// read (`s3:GetObject`): the bucket or key an update leaves is the one the application
/// has, so a Deny on it holds.
#[cfg(feature = "analytics")]
async fn reference_updates_named(
    tenant: &Tenant,
    request: &serde_json::Value,
    checks: &mut Vec<(String, String)>,
) -> Result<(), ApiError> {
    let Some(updates) = request
        .pointer("/ApplicationUpdate/ReferenceDataSourceUpdates")
        .and_then(|u| u.as_array())
        .filter(|u| !u.is_empty())
    else {
        return Ok(());
    };
    let name = request
        .get("ApplicationName")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    // An application not found fails the call on its own.
    let Ok(detail) = tenant.analytics().await?.describe(name).await else {
        return Ok(());
    };
    for update in updates {
        let Some(s3) = update.get("S3ReferenceDataSourceUpdate") else {
            continue;
        };
        let id = update.get("ReferenceId").and_then(|i| i.as_str());
        let Some((_, current)) = detail
            .stored
            .references
            .iter()
            .find(|(at, _)| Some(at.as_str()) == id)
        else {
            continue;
        };
        let bucket = s3
            .get("BucketARNUpdate")
            .and_then(|b| b.as_str())
            .map_or_else(|| format!("arn:aws:s3:::{}", current.bucket), str::to_owned);
        let key = s3
            .get("FileKeyUpdate")
            .and_then(|k| k.as_str())
            .unwrap_or(&current.key);
        checks.push(("s3:GetObject".to_owned(), format!("{bucket}/{key}")));
    }
    Ok(())
}

/// The caller's identity `policy` alone (no resource policy) decides `action` on `resource`.
fn identity_allows(
    caller: &Caller,
    policy: &Policy,
    tenant: &Tenant,
    action: &str,
    resource: &str,
    transport: Transport,
) -> Result<(), ApiError> {
    let request = policy_request(caller, action, resource, Some(transport));
    match iam::decide(Some(policy), None, &tenant.account, &request) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(access_denied(caller, action, resource, reason)),
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

/// `POST /_sluice/reset` deletes every account's streams: only a credential of the server's
/// own account may, and only when its identity policy (if it has one) allows
/// `sluice:ResetServer`.
pub fn authorize_reset(service: &Service, caller: &Caller) -> Result<(), ApiError> {
    let action = "sluice:ResetServer";
    let reason = if caller.scope.account != service.config.account {
        Some(iam::DenyReason::NoIdentityAllow)
    } else if let Some(policy) = caller.policy.as_deref() {
        let request = policy_request(caller, action, "*", None);
        match iam::decide(Some(policy), None, &caller.scope.account, &request) {
            Decision::Allow => None,
            Decision::Deny(reason) => Some(reason),
        }
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(access_denied(caller, action, "*", reason)),
    }
}

/// `action` on `resource` by `caller`, as policies see it (`transport` is what a request's
/// connection tells: its address and TLS).
fn policy_request<'a>(
    caller: &'a Caller,
    action: &'a str,
    resource: &'a str,
    transport: Option<Transport>,
) -> iam::Request<'a> {
    iam::Request {
        action,
        resource,
        principal: &caller.principal,
        source_ip: transport.and_then(|t| t.peer),
        secure_transport: transport.is_some_and(|t| t.secure),
        now: SystemTime::now(),
        region: &caller.scope.region,
    }
}

/// Authorizes a CloudWatch call: the caller's identity policy must allow
/// `cloudwatch:<op>` (CloudWatch's metric calls take no resource: `*`). The tenant is the
/// caller's own account and region.
pub async fn authorize_cloudwatch(
    service: &Service,
    caller: &Caller,
    operation: &str,
    transport: Transport,
) -> Result<Arc<Tenant>, ApiError> {
    let tenant = service.tenant(Some(caller.scope.clone())).await?;
    if let Some(policy) = caller.policy.as_deref() {
        identity_allows(
            caller,
            policy,
            &tenant,
            &format!("cloudwatch:{operation}"),
            "*",
            transport,
        )?;
    }
    Ok(tenant)
}

/// A caller may name a stream as an alarm action only when it may put to the stream itself:
/// the same decision as its own PutRecord there (its identity policy and the stream's
/// resource policy), so an alarm does not widen what its author may write.
pub async fn authorize_alarm_actions(
    service: &Service,
    caller: &Caller,
    streams: &[String],
    transport: Transport,
) -> Result<(), ApiError> {
    for arn in streams {
        let put = serde_json::json!({"StreamARN": arn, "PartitionKey": "alarm", "Data": ""});
        let body = serde_json::to_vec(&put).expect("JSON");
        authorize(
            service,
            caller,
            "PutRecord",
            Protocol::Json,
            &body,
            transport,
        )
        .await?;
    }
    Ok(())
}
