//! IAM-style policies: the policy language (`policy`), conditions (`condition`) and AWS'
//! evaluation logic (`evaluate`), independent of any one service. docs/design/authorization.md
//! says what is supported and why.

mod condition;
mod evaluate;
mod glob;
mod policy;

pub use evaluate::{Decision, DenyReason, decide};
pub use policy::{Policy, PolicyError};

use std::net::IpAddr;
use std::time::SystemTime;

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// 12-digit account id.
    pub account: String,
    /// User name (the access key id).
    pub user: String,
}

impl Principal {
    /// `arn:aws:iam::<account>:user/<user>`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account, self.user)
    }
}

/// One request as policies see it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `kinesis:PutRecord`...
    pub action: &'a str,
    /// The resource's ARN, or `*`.
    pub resource: &'a str,
    /// Who.
    pub principal: &'a Principal,
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// Whether it came over TLS.
    pub secure_transport: bool,
    /// When.
    pub now: SystemTime,
    /// The region the request is signed for.
    pub region: &'a str,
}
