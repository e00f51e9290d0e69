//! CloudWatch requests: verified (signatures scoped to `monitoring`), authorized, answered
//! from the caller's tenant, every reply and error in the form the request came in.

use super::connection::Connection;
use super::{ReplyBody, body, whole};
use crate::cloudwatch::{self, Form};
use crate::service::Service;
use crate::wire::ApiError;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

/// The name CloudWatch's signatures are scoped to.
const SIGNING_NAME: &str = "monitoring";
/// Largest CloudWatch request body (CloudWatch's own limit on PutMetricData is 1 MB).
const BODY_MAX: usize = 1 << 20;

/// Answers one CloudWatch request.
pub(super) async fn serve(
    service: Arc<Service>,
    connection: &Arc<Connection>,
    (parts, body): (hyper::http::request::Parts, Incoming),
    form: Form,
) -> Response<ReplyBody> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let reply = answer(&service, connection, (&parts, body), form, &request_id).await;
    let response = Response::builder()
        .header("x-amzn-requestid", &request_id)
        .header("content-type", form.content_type());
    let response = match form {
        Form::Cbor => response.header("smithy-protocol", "rpc-v2-cbor"),
        _ => response,
    };
    match reply {
        Ok(body) => response
            .status(StatusCode::OK)
            .body(whole(body))
            .expect("a valid response"),
        Err(error) => {
            metrics::counter!("sluice_request_errors_total", "operation" => "cloudwatch", "error" => error.name)
                .increment(1);
            let (body, headers) = form.error(&error, &request_id);
            let mut response = response
                .status(StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST));
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(whole(body)).expect("a valid response")
        }
    }
}

async fn answer(
    service: &Service,
    connection: &Arc<Connection>,
    (parts, body): (&hyper::http::request::Parts, Incoming),
    form: Form,
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(verifier) = &service.verifier {
        let unsigned = super::signed_request(parts, &[], SIGNING_NAME);
        verifier.verify_headers(&unsigned, SystemTime::now())?;
    }
    let declared_len = header("content-length").and_then(|v| v.parse().ok());
    let limit = BODY_MAX.min(service.config.body_bytes_max);
    let read = body::read(body, declared_len, limit, &service.body_budget, connection);
    let (body, _reservation) = read.await?;
    let caller = match &service.verifier {
        Some(verifier) => Some(verifier.verify(
            &super::signed_request(parts, &body, SIGNING_NAME),
            SystemTime::now(),
        )?),
        None => None,
    };
    let operation = form.operation(parts.uri.path(), header("x-amz-target"), &body);
    if !cloudwatch::OPERATIONS.contains(&operation.as_str()) {
        return Err(ApiError::with_status(
            "InvalidAction",
            400,
            format!(
                "The action {operation:?} is not valid for this web service; this endpoint serves CloudWatch's {}.",
                cloudwatch::OPERATIONS.join(", ")
            ),
        ));
    }
    let tenant = match &caller {
        Some(caller) => {
            crate::authorize::authorize_cloudwatch(
                service,
                caller,
                &operation,
                connection.transport,
            )
            .await?
        }
        None => service.tenant(None).await?,
    };
    if operation == "PutMetricAlarm"
        && let Some(caller) = &caller
    {
        let input: serde_json::Value = form.decode(&body)?;
        let streams = cloudwatch::alarms::stream_actions(&input);
        crate::authorize::authorize_alarm_actions(service, caller, &streams, connection.transport)
            .await?;
    }
    let (out, changes) = cloudwatch::call(&tenant, &operation, form, &body)?;
    if !changes.is_empty() {
        // The actions run on their own: the caller has its answer once the state is saved.
        tokio::spawn(cloudwatch::actions::deliver(tenant.clone(), changes));
    }
    Ok(form.encode(&operation, &out, request_id))
}
