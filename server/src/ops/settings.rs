//! Stream and account settings: stream encryption (which new records get: encryption.rs),
//! enhanced monitoring (reported; the metrics are always on at `/metrics`), resource policies
//! (evaluated by authorize.rs), account settings and warm throughput (stored and reported).

use crate::arn::{ConsumerArn, StreamArn};
use crate::clock::now_ms;
use crate::consumer::{FoundConsumer, find_by_arn};
use crate::shapes::{Empty, timestamp};
use crate::tenant::Tenant;
use crate::wire::bounded::BoundedVec;
use crate::wire::{ApiError, Timestamp, Validate, Validator};
use serde::{Deserialize, Serialize};
use sluice_core::{StreamMode, StreamStatus};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

impl EncryptionInput {
    /// The KMS key named; an encryption type other than KMS is refused.
    pub(crate) fn kms_key(&self) -> Result<String, ApiError> {
        let kind = self.encryption_type.as_deref().expect("validated");
        if kind != "KMS" {
            return Err(ApiError::invalid_argument(format!(
                "EncryptionType {kind} is not supported; use KMS."
            )));
        }
        Ok(self.key_id.clone().expect("validated"))
    }
}

impl Validate for EncryptionInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("encryptionType", &self.encryption_type);
        v.one_of("encryptionType", &self.encryption_type, &["NONE", "KMS"]);
        v.required("keyId", &self.key_id);
        v.length("keyId", &self.key_id, 1, 2048);
    }
}

async fn set_encryption(
    tenant: &Tenant,
    input: EncryptionInput,
    start: bool,
) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let created_ms = tenant.engine.stream(&name)?.summary()?.created_ms;
    let key = input.kms_key()?;
    // The key must exist in the account's keyring (the KMS API on this endpoint makes
    // them); Kinesis' own managed key needs no making.
    if start && key != "alias/aws/kinesis" {
        match tenant.keyring.find(&key) {
            Ok(found) if !found.enabled => {
                return Err(ApiError::new(
                    "KMSDisabledException",
                    format!("The KMS key {key} is disabled."),
                ));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(ApiError::new(
                    "KMSNotFoundException",
                    format!(
                        "Key '{key}' does not exist in account {} in {}.",
                        tenant.account, tenant.region
                    ),
                ));
            }
        }
    }
    tenant
        .state
        .update(|state| {
            state.stream_mut(&name, created_ms)?.encryption = start.then(|| ("KMS".into(), key));
            Ok(())
        })
        .await?;
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(Empty {})
}

pub async fn start_encryption(tenant: &Tenant, input: EncryptionInput) -> Result<Empty, ApiError> {
    set_encryption(tenant, input, true).await
}

pub async fn stop_encryption(tenant: &Tenant, input: EncryptionInput) -> Result<Empty, ApiError> {
    set_encryption(tenant, input, false).await
}

const METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) shard_level_metrics: Option<BoundedVec<String, 7>>,
}

impl MonitoringInput {
    /// The metrics named (`ALL` stands for every one).
    pub(crate) fn metrics(self) -> Vec<String> {
        let asked: Vec<String> = self.shard_level_metrics.expect("validated").into_items();
        if asked.iter().any(|m| m == "ALL") {
            return METRICS.iter().map(|m| (*m).to_owned()).collect();
        }
        asked
    }
}

impl Validate for MonitoringInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("shardLevelMetrics", &self.shard_level_metrics);
        v.size(
            "shardLevelMetrics",
            self.shard_level_metrics.as_ref().map(|m| m.count),
            1,
            7,
        );
        let mut allowed = METRICS.to_vec();
        allowed.push("ALL");
        for (i, metric) in self
            .shard_level_metrics
            .iter()
            .flat_map(|m| &m.items)
            .enumerate()
        {
            v.one_of(
                &format!("shardLevelMetrics.{}.member", i + 1),
                &Some(metric.clone()),
                &allowed,
            );
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringOutput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) current_shard_level_metrics: Vec<String>,
    pub(crate) desired_shard_level_metrics: Vec<String>,
}

async fn set_monitoring(
    tenant: &Tenant,
    input: MonitoringInput,
    enable: bool,
) -> Result<MonitoringOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let created_ms = tenant.engine.stream(&name)?.summary()?.created_ms;
    let names = input.metrics();
    let (current, desired) = tenant
        .state
        .update(|state| {
            let metrics = &mut state.stream_mut(&name, created_ms)?.shard_level_metrics;
            let current: Vec<String> = metrics.iter().cloned().collect();
            for metric in names {
                if enable {
                    metrics.insert(metric);
                } else {
                    metrics.remove(&metric);
                }
            }
            Ok((current, metrics.iter().cloned().collect()))
        })
        .await?;
    Ok(MonitoringOutput {
        stream_arn: tenant.stream_arn(&name),
        stream_name: name,
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
    })
}

pub async fn enable_monitoring(
    tenant: &Tenant,
    input: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    set_monitoring(tenant, input, true).await
}

pub async fn disable_monitoring(
    tenant: &Tenant,
    input: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    set_monitoring(tenant, input, false).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyInput {
    #[serde(rename = "ResourceARN")]
    pub(crate) resource_arn: Option<String>,
    pub(crate) policy: Option<String>,
}

impl Validate for PolicyInput {
    fn validate(&self, v: &mut Validator) {
        v.required("resourceARN", &self.resource_arn);
        v.length("resourceARN", &self.resource_arn, 1, 2048);
    }
}

/// Longest policy document accepted (the size AWS allows for resource policies).
const POLICY_CHARS_MAX: usize = 20_480;

/// Where a policy lives: on a stream (created at), or on one of its consumers.
enum PolicyTarget {
    Stream { name: String, created_ms: u64 },
    Consumer(FoundConsumer),
}

/// The resource must exist: a stream of this server's region and account, or a registered
/// consumer of one.
fn policy_target(tenant: &Tenant, arn: &str) -> Result<PolicyTarget, ApiError> {
    if ConsumerArn::parse(arn).is_some() {
        return find_by_arn(tenant, arn).map(PolicyTarget::Consumer);
    }
    let stream = StreamArn::parse(arn)
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid ResourceARN {arn}")))?;
    tenant.check_arn_scope(&stream)?;
    let created_ms = tenant.engine.stream(stream.stream)?.summary()?.created_ms;
    Ok(PolicyTarget::Stream {
        name: stream.stream.to_owned(),
        created_ms,
    })
}

/// The policy slot of `target` in `state`; an error when its stream or consumer is gone.
fn policy_slot<'a>(
    state: &'a mut crate::state::Persisted,
    target: &PolicyTarget,
) -> Result<&'a mut Option<String>, ApiError> {
    match target {
        PolicyTarget::Stream { name, created_ms } => {
            Ok(&mut state.stream_mut(name, *created_ms)?.policy)
        }
        PolicyTarget::Consumer(found) => state
            .stream_mut(&found.stream, found.stream_created_ms)?
            .consumers
            .iter_mut()
            .find(|c| c.name == found.consumer.name && c.created_ms == found.consumer.created_ms)
            .map(|c| &mut c.policy)
            .ok_or_else(consumer_gone),
    }
}

fn consumer_gone() -> ApiError {
    ApiError::not_found("The consumer was deregistered.")
}

/// PutResourcePolicy's policy: given, within the size allowed, and one the server can apply
/// (a stored policy means what it says).
pub(crate) fn checked_policy(policy: Option<String>) -> Result<String, ApiError> {
    let Some(policy) = policy else {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'policy' failed to satisfy constraint: Member must not be null",
        ));
    };
    if policy.chars().count() > POLICY_CHARS_MAX {
        return Err(ApiError::limit_exceeded(format!(
            "The policy is longer than {POLICY_CHARS_MAX} characters."
        )));
    }
    if let Err(error) = crate::iam::Policy::parse_resource(&policy) {
        return Err(ApiError::invalid_argument(format!(
            "The Policy cannot be applied: {error}"
        )));
    }
    Ok(policy)
}

pub async fn put_policy(tenant: &Tenant, input: PolicyInput) -> Result<Empty, ApiError> {
    let arn = input.resource_arn.expect("validated");
    let policy = checked_policy(input.policy)?;
    let target = policy_target(tenant, &arn)?;
    tenant.note_policy();
    tenant
        .state
        .update(|state| {
            *policy_slot(state, &target)? = Some(policy);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPolicyOutput {
    pub(crate) policy: String,
}

pub async fn get_policy(tenant: &Tenant, input: PolicyInput) -> Result<GetPolicyOutput, ApiError> {
    let arn = input.resource_arn.expect("validated");
    let policy = match policy_target(tenant, &arn)? {
        PolicyTarget::Stream { name, created_ms } => tenant.state.read(|state| {
            state
                .stream(&name, created_ms)
                .and_then(|e| e.policy.clone())
        }),
        PolicyTarget::Consumer(found) => found.consumer.policy,
    };
    // Kinesis answers an empty document for a resource without a policy.
    Ok(GetPolicyOutput {
        policy: policy.unwrap_or_else(|| "{}".to_owned()),
    })
}

pub async fn delete_policy(tenant: &Tenant, input: PolicyInput) -> Result<Empty, ApiError> {
    let arn = input.resource_arn.expect("validated");
    let target = policy_target(tenant, &arn)?;
    tenant
        .state
        .update(|state| {
            policy_slot(state, &target)?
                .take()
                .map(|_| ())
                .ok_or_else(|| ApiError::not_found(format!("No resource policy found for {arn}.")))
        })
        .await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommitmentInput {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettingsInput {
    minimum_throughput_billing_commitment: Option<CommitmentInput>,
}

impl Validate for AccountSettingsInput {
    fn validate(&self, v: &mut Validator) {
        v.required(
            "minimumThroughputBillingCommitment",
            &self.minimum_throughput_billing_commitment,
        );
        if let Some(commitment) = &self.minimum_throughput_billing_commitment {
            v.required(
                "minimumThroughputBillingCommitment.status",
                &commitment.status,
            );
            v.one_of(
                "minimumThroughputBillingCommitment.status",
                &commitment.status,
                &["ENABLED", "DISABLED"],
            );
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommitmentOutput {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettingsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum_throughput_billing_commitment: Option<CommitmentOutput>,
}

/// The account's settings as DescribeAccountSettings reports them.
pub(crate) fn account_settings(status: Option<String>) -> AccountSettingsOutput {
    AccountSettingsOutput {
        minimum_throughput_billing_commitment: status.map(|status| CommitmentOutput {
            status,
            started_at: None,
        }),
    }
}

pub async fn describe_account_settings(
    tenant: &Tenant,
    _input: Empty,
) -> Result<AccountSettingsOutput, ApiError> {
    Ok(account_settings(
        tenant.state.read(|s| s.billing_commitment.clone()),
    ))
}

pub async fn update_account_settings(
    tenant: &Tenant,
    input: AccountSettingsInput,
) -> Result<AccountSettingsOutput, ApiError> {
    let status = input.commitment();
    tenant
        .state
        .update(|state| {
            state.billing_commitment = Some(status.clone());
            Ok(())
        })
        .await?;
    Ok(account_settings_updated(status))
}

impl AccountSettingsInput {
    /// The billing commitment's status asked for (ENABLED or DISABLED).
    pub(crate) fn commitment(self) -> String {
        self.minimum_throughput_billing_commitment
            .and_then(|c| c.status)
            .expect("validated")
    }
}

/// The reply to UpdateAccountSettings that set the commitment to `status` (started now when
/// enabled).
pub(crate) fn account_settings_updated(status: String) -> AccountSettingsOutput {
    let mut output = account_settings(Some(status));
    if let Some(commitment) = &mut output.minimum_throughput_billing_commitment {
        commitment.started_at = (commitment.status == "ENABLED").then(|| timestamp(now_ms()));
    }
    output
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) warm_throughput_mi_bps: Option<i64>,
}

impl Validate for WarmThroughputInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("warmThroughputMiBps", &self.warm_throughput_mi_bps);
        v.range(
            "warmThroughputMiBps",
            self.warm_throughput_mi_bps,
            Some(0),
            Some(10240),
        );
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputObject {
    #[serde(rename = "TargetMiBps")]
    target_mibps: u64,
    #[serde(rename = "CurrentMiBps")]
    current_mibps: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputOutput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_name: String,
    warm_throughput: WarmThroughputObject,
}

impl WarmThroughputOutput {
    /// The reply for stream `name` (of ARN `stream_arn`), now warm at `mibps`.
    pub(crate) fn new(stream_arn: String, name: String, mibps: u64) -> WarmThroughputOutput {
        WarmThroughputOutput {
            stream_arn,
            stream_name: name,
            warm_throughput: WarmThroughputObject {
                target_mibps: mibps,
                current_mibps: mibps,
            },
        }
    }
}

/// The refusal of warm throughput on a PROVISIONED stream.
pub(crate) fn not_on_demand() -> ApiError {
    ApiError::validation("Warm throughput can only be set on an ON_DEMAND stream.")
}

pub async fn update_warm_throughput(
    tenant: &Tenant,
    input: WarmThroughputInput,
) -> Result<WarmThroughputOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    let summary = tenant.engine.stream(&name)?.summary()?;
    tenant.require_active(&name)?;
    if summary.mode != StreamMode::OnDemand {
        return Err(not_on_demand());
    }
    let mibps = input.warm_throughput_mi_bps.expect("validated") as u64;
    crate::ops::streams::store_warm_throughput(tenant, &name, mibps).await?;
    Ok(WarmThroughputOutput::new(
        tenant.stream_arn(&name),
        name,
        mibps,
    ))
}
