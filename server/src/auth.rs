//! Optional SigV4 verification (`sluice serve --credential AKID:SECRET`): the header form
//! (`Authorization: AWS4-HMAC-SHA256 …`) and the presigned form (`X-Amz-Algorithm`… in the
//! query), with a 5-minute clock skew, errors named as Kinesis names them.
//!
//! Written over the hmac and sha2 crates rather than aws-sigv4: that crate is a signer, and
//! verifying with it would mean re-deriving which headers it chooses to sign, for a handful
//! of canonicalization rules that fit in this file.

use crate::config::Credential;
use crate::iam::{Policy, PolicyError, Principal};
use crate::regions::Regions;
use crate::wire::ApiError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Requests dated further than this from the server's clock are refused.
pub const CLOCK_SKEW_MAX: Duration = Duration::from_secs(300);
/// Longest lifetime of a presigned request (AWS' limit).
const PRESIGNED_EXPIRES_MAX_S: u64 = 604_800;

/// The credentials the server accepts, by access key id, and the regions it serves.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: HashMap<String, Key>,
    regions: Regions,
}

/// What a signature is checked against.
#[derive(Debug, Clone)]
struct Key {
    secret: String,
    /// The account the key's requests act as.
    account: String,
    /// Temporary credentials: the token every request must carry.
    session_token: Option<String>,
    /// Its identity policy.
    policy: Option<Arc<Policy>>,
}

/// Who a verified request is.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant it acts in.
    pub scope: Scope,
    /// The principal policies see.
    pub principal: Principal,
    /// Its identity policy; `None`: anything in its own account.
    pub policy: Option<Arc<Policy>>,
}

/// Who a verified request acts as: the credential's account, in the region its signature is
/// scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// 12-digit account id.
    pub account: String,
    /// Region name (`us-east-1`...).
    pub region: String,
}

/// What verification looks at in a request.
pub struct SignedRequest<'a> {
    /// `POST`…
    pub method: &'a str,
    /// The path as received (percent-encoded).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// Headers with lowercase names, in arrival order.
    pub headers: Vec<(String, &'a str)>,
    /// The host (the `Host` header, or the HTTP/2 authority).
    pub host: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// The service the request is for (`kinesis`, `kms`): its signature must be scoped to it.
    pub service: &'a str,
}

/// HTTP 403, as AWS' common errors list it (the signature errors are 400).
fn missing_token() -> ApiError {
    ApiError::with_status(
        "MissingAuthenticationTokenException",
        403,
        "Missing Authentication Token",
    )
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::with_status("IncompleteSignatureException", 403, message)
}

fn mismatch() -> ApiError {
    ApiError::new(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

/// The parts of a signature, from the header or the query.
struct Signature<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: String,
    signature: String,
    amz_date: String,
    /// Presigned only: lifetime in seconds.
    expires_s: Option<u64>,
}

impl Verifier {
    /// A verifier for `credentials` (those without an account act as `default_account`)
    /// accepting signatures scoped to `regions`.
    /// A credential's policy that does not parse is an error naming the credential.
    pub fn new(
        credentials: &[Credential],
        default_account: &str,
        regions: Regions,
    ) -> Result<Verifier, PolicyError> {
        let mut keys = HashMap::new();
        for c in credentials {
            let policy = match &c.policy {
                Some(text) => Some(Arc::new(Policy::parse(text).map_err(|e| {
                    PolicyError(format!("the policy of credential {}: {e}", c.access_key_id))
                })?)),
                None => None,
            };
            let key = Key {
                secret: c.secret.clone(),
                account: c
                    .account
                    .clone()
                    .unwrap_or_else(|| default_account.to_owned()),
                session_token: c.session_token.clone(),
                policy,
            };
            keys.insert(c.access_key_id.clone(), key);
        }
        Ok(Verifier { keys, regions })
    }

    /// Checks everything a request's headers (and query) can show before its body is
    /// read: a signature is present and well formed, by a known key, scoped to this service,
    /// a valid region and the request's own date, within the clock skew, carrying the
    /// credential's session token, and covering the headers that must be signed. A request
    /// that fails here is refused without its body being read or reserved.
    pub fn verify_headers(
        &self,
        request: &SignedRequest<'_>,
        now: SystemTime,
    ) -> Result<Scope, ApiError> {
        let query = parse_query(request.query.unwrap_or_default());
        self.check(request, &query, now)
            .map(|checked| checked.scope)
    }

    /// Checks a request's signature at time `now`; returns who it acts as.
    pub fn verify(&self, request: &SignedRequest<'_>, now: SystemTime) -> Result<Caller, ApiError> {
        let query = parse_query(request.query.unwrap_or_default());
        let checked = self.check(request, &query, now)?;
        let signature = &checked.signature;
        // The body is always hashed here: a client-sent x-amz-content-sha256 is only
        // checked against it, never trusted (else a captured signature could carry another
        // body). UNSIGNED-PAYLOAD and streaming payloads are S3's, not Kinesis'.
        let payload_hash = hex(&Sha256::digest(request.body));
        if let Some(claimed) = request.header("x-amz-content-sha256")
            && !claimed.eq_ignore_ascii_case(&payload_hash)
        {
            return Err(ApiError::new(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
        let canonical =
            canonical_request(request, &query, signature, checked.presigned, &payload_hash)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            signature.date, signature.region, signature.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            signature.amz_date,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            checked.secret,
            signature.date,
            signature.region,
            signature.service,
        );
        let expected = unhex(&signature.signature).ok_or_else(mismatch)?;
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(string_to_sign.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected)
            .map(|()| Caller {
                principal: Principal {
                    account: checked.scope.account.clone(),
                    user: signature.access_key.to_owned(),
                },
                policy: checked.policy.clone(),
                scope: checked.scope.clone(),
            })
            .map_err(|_| {
                // As AWS does: say what was signed, so a client author can diff it.
                let mut error = mismatch();
                error.message.push_str(&format!(
                    "\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
                ));
                error
            })
    }

    /// The checks of `verify_headers`, keeping what the signature check needs.
    fn check<'r>(
        &'r self,
        request: &SignedRequest<'r>,
        query: &'r [(String, String)],
        now: SystemTime,
    ) -> Result<Checked<'r>, ApiError> {
        let presigned = query.iter().any(|(k, _)| k == "X-Amz-Algorithm");
        let signature = match request.header("authorization") {
            Some(value) => parse_header(value, request.header("x-amz-date"))?,
            None if presigned => parse_presigned(query)?,
            None => return Err(missing_token()),
        };
        check_scope(&signature, &self.regions, request.service)?;
        let request_time = parse_amz_date(&signature.amz_date)
            .ok_or_else(|| incomplete(format!("Invalid X-Amz-Date {}", signature.amz_date)))?;
        check_time(request_time, now, signature.expires_s)?;
        let key = self
            .keys
            .get(signature.access_key)
            .ok_or_else(invalid_token)?;
        let token = match presigned {
            true => query
                .iter()
                .find(|(k, _)| k == "X-Amz-Security-Token")
                .map(|(_, v)| v.as_str()),
            false => request.header("x-amz-security-token"),
        };
        check_session_token(key.session_token.as_deref(), token)?;
        check_signed_headers(request, &signature, presigned)?;
        Ok(Checked {
            scope: Scope {
                account: key.account.clone(),
                region: signature.region.to_owned(),
            },
            secret: &key.secret,
            policy: key.policy.clone(),
            signature,
            presigned,
        })
    }
}

/// A request whose headers passed `Verifier::check`.
struct Checked<'r> {
    scope: Scope,
    secret: &'r str,
    policy: Option<Arc<Policy>>,
    signature: Signature<'r>,
    presigned: bool,
}

impl<'a> SignedRequest<'a> {
    /// The first value of a header (lowercase name).
    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

fn invalid_token() -> ApiError {
    ApiError::new(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

/// A credential with a session token (temporary credentials) needs that token in every
/// request; one without needs none. Compared in constant time.
fn check_session_token(expected: Option<&str>, sent: Option<&str>) -> Result<(), ApiError> {
    match (expected, sent) {
        (None, None) => Ok(()),
        (Some(expected), Some(sent)) if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) => {
            Ok(())
        }
        _ => Err(invalid_token()),
    }
}

/// The headers a signature must cover, as AWS requires: `host` (or HTTP/2's `:authority`),
/// and, when the request carries them, `x-amz-date` (header form), `x-amz-target` (which
/// names the operation: an unsigned one could turn a captured ListStreams into a
/// DeleteStream) and `x-amz-security-token`.
fn check_signed_headers(
    request: &SignedRequest<'_>,
    signature: &Signature<'_>,
    presigned: bool,
) -> Result<(), ApiError> {
    let signed: Vec<&str> = signature.signed_headers.split(';').collect();
    let names = |list: &[&str]| list.iter().any(|name| signed.contains(name));
    if !names(&["host", ":authority"]) {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let required = [
        ("x-amz-date", "X-Amz-Date", !presigned),
        ("x-amz-target", "X-Amz-Target", true),
        ("x-amz-security-token", "X-Amz-Security-Token", !presigned),
    ];
    for (name, display, applies) in required {
        if applies && request.header(name).is_some() && !signed.contains(&name) {
            return Err(incomplete(format!(
                "'{display}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    Ok(())
}

fn check_scope(
    signature: &Signature<'_>,
    regions: &Regions,
    service: &str,
) -> Result<(), ApiError> {
    if signature.service != service {
        return Err(ApiError::new(
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    // Each region is a tenant with an engine and a directory of its own: AWS' regions and
    // the configured ones only, so made-up names cannot use up the tenant cap.
    if !regions.serves(signature.region) {
        return Err(ApiError::new(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                signature.region
            ),
        ));
    }
    let date_matches = signature.date.len() == 8
        && signature.date.bytes().all(|b| b.is_ascii_digit())
        && signature.amz_date.get(..8) == Some(signature.date);
    if !date_matches {
        return Err(ApiError::new(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        ));
    }
    Ok(())
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_header<'a>(value: &'a str, amz_date: Option<&str>) -> Result<Signature<'a>, ApiError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "Unsupported Authorization Type {}",
                value.split(' ').next().unwrap_or_default()
            ))
        })?;
    let mut parts: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        if let Some((key, value)) = part.trim().split_once('=') {
            parts.insert(key, value);
        }
    }
    let field = |name: &str| {
        parts.get(name).copied().ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires '{name}' parameter. Authorization={value}"
            ))
        })
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?.to_owned();
    let signature = field("Signature")?.to_owned();
    let amz_date = amz_date
        .ok_or_else(|| incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))?
        .to_owned();
    credential_parts(credential, signed_headers, signature, amz_date, None)
}

fn parse_presigned<'a>(query: &'a [(String, String)]) -> Result<Signature<'a>, ApiError> {
    let field = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                incomplete(format!(
                    "AWS query-string parameters must include '{name}'."
                ))
            })
    };
    if field("X-Amz-Algorithm")? != ALGORITHM {
        return Err(incomplete(
            "X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256'",
        ));
    }
    let expires_s = match query.iter().find(|(k, _)| k == "X-Amz-Expires") {
        Some((_, v)) => Some(
            v.parse()
                .map_err(|_| incomplete("X-Amz-Expires must be a number"))?,
        ),
        None => None,
    };
    credential_parts(
        field("X-Amz-Credential")?,
        field("X-Amz-SignedHeaders")?.to_owned(),
        field("X-Amz-Signature")?.to_owned(),
        field("X-Amz-Date")?.to_owned(),
        expires_s,
    )
}

fn credential_parts<'a>(
    credential: &'a str,
    signed_headers: String,
    signature: String,
    amz_date: String,
    expires_s: Option<u64>,
) -> Result<Signature<'a>, ApiError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = parts[..] else {
        return Err(incomplete(format!(
            "Credential should have five slash-separated parts ending in aws4_request: {credential}"
        )));
    };
    Ok(Signature {
        access_key,
        date,
        region,
        service,
        signed_headers,
        signature,
        amz_date,
        expires_s,
    })
}

fn check_time(
    request: SystemTime,
    now: SystemTime,
    expires_s: Option<u64>,
) -> Result<(), ApiError> {
    let expired = |detail: String| ApiError::new("InvalidSignatureException", detail);
    match expires_s {
        Some(expires) if expires > PRESIGNED_EXPIRES_MAX_S => Err(incomplete(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {PRESIGNED_EXPIRES_MAX_S}"
        ))),
        Some(expires) => {
            let until = request + Duration::from_secs(expires);
            if now > until || request > now + CLOCK_SKEW_MAX {
                return Err(expired(
                    "Signature expired: the presigned request is no longer valid.".into(),
                ));
            }
            Ok(())
        }
        None => {
            let skew = now
                .duration_since(request)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .expect("either direction");
            if skew > CLOCK_SKEW_MAX {
                return Err(expired(format!(
                    "Signature expired: the request is dated {} s from the server's time (more than {} s).",
                    skew.as_secs(),
                    CLOCK_SKEW_MAX.as_secs()
                )));
            }
            Ok(())
        }
    }
}

fn canonical_request(
    request: &SignedRequest<'_>,
    query: &[(String, String)],
    signature: &Signature<'_>,
    presigned: bool,
    payload_hash: &str,
) -> Result<String, ApiError> {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signature.signed_headers.split(';') {
        // Over HTTP/2 the JavaScript SDK signs the `:authority` pseudo-header.
        let values: Vec<&str> = if name == "host" || name == ":authority" {
            request.host.into_iter().collect()
        } else {
            request
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .collect()
        };
        if values.is_empty() {
            let mut error = mismatch();
            error.message.push_str(&format!(
                " The signed header '{name}' is not in the request."
            ));
            return Err(error);
        }
        let joined: Vec<String> = values.iter().map(|v| collapse_spaces(v)).collect();
        canonical_headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    Ok(format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        request.method,
        uri_encode(path, false),
        signature.signed_headers
    ))
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    key
}

/// Query parameters, percent-decoded (`+` is a plain character in SigV4, not a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: unreserved characters as they are, everything else `%XX`
/// (uppercase); `/` kept in paths.
fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !encode_slash);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `20261126T101500Z`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if !text.is_ascii() || text.len() != 16 || &text[8..9] != "T" || !text.ends_with('Z') {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&iso).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS' published SigV4 example (the "get-vanilla" case of the SigV4 test suite): the
    /// signing key derivation and the canonical form must reproduce its signature.
    #[test]
    fn the_aws_test_suite_vanilla_get_verifies() {
        let verifier = Verifier::new(
            &[Credential {
                access_key_id: "AKIDEXAMPLE".into(),
                secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                account: None,
                session_token: None,
                policy: None,
            }],
            "000000000000",
            Regions::default(),
        )
        .unwrap();
        let mut request = SignedRequest {
            method: "GET",
            path: "/",
            query: None,
            headers: vec![
                ("x-amz-date".into(), "20150830T123600Z"),
                (
                    "authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
                ),
            ],
            host: Some("example.amazonaws.com"),
            body: b"",
            service: "kinesis",
        };
        let at = parse_amz_date("20150830T123600Z").unwrap();
        // The suite's service is "service"; this verifier only accepts "kinesis".
        let error = verifier.verify(&request, at).unwrap_err();
        assert_eq!(error.name, "InvalidSignatureException");
        let signature = parse_header(request.headers[1].1, Some("20150830T123600Z")).unwrap();
        let canonical =
            canonical_request(&request, &[], &signature, false, &hex(&Sha256::digest(b"")))
                .unwrap();
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(string_to_sign.as_bytes());
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        request.headers.clear();
        assert_eq!(
            verifier.verify(&request, at).unwrap_err().name,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn query_and_path_encoding_follow_sigv4() {
        assert_eq!(uri_encode("a b/c~", true), "a%20b%2Fc~");
        assert_eq!(uri_encode("/a b/", false), "/a%20b/");
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b+c%zz");
        assert_eq!(collapse_spaces("  a   b "), "a b");
        assert_eq!(parse_amz_date("2015083T123600Z"), None);
        // Percent-decoded query values can hold any character: no slicing inside one.
        assert_eq!(parse_amz_date("20260101\u{e9}00000Z"), None);
    }

    const AMZ_DATE: &str = "20261205T101500Z";

    fn verifier(session_token: Option<&str>) -> Verifier {
        Verifier::new(
            &[Credential {
                access_key_id: "AKID".into(),
                secret: "secret".into(),
                account: None,
                session_token: session_token.map(str::to_owned),
                policy: None,
            }],
            "000000000000",
            Regions::default(),
        )
        .unwrap()
    }

    /// A request for `target`, with `extra` headers, signed by AKID over the headers in
    /// `signed` (with `scope_date` in its credential).
    fn signed_request(
        target: &str,
        extra: &[(&str, &'static str)],
        signed: &str,
        scope_date: &str,
    ) -> (Vec<(String, String)>, String) {
        let mut headers: Vec<(String, String)> = vec![
            ("x-amz-date".into(), AMZ_DATE.into()),
            ("x-amz-target".into(), format!("Kinesis_20131202.{target}")),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: None,
            headers: headers
                .iter()
                .map(|(n, v)| (n.clone(), v.as_str()))
                .collect(),
            host: Some("localhost"),
            body: b"{}",
            service: "kinesis",
        };
        let authorization = format!(
            "{ALGORITHM} Credential=AKID/{scope_date}/us-east-1/kinesis/aws4_request, SignedHeaders={signed}, Signature="
        );
        let signature = parse_header(&authorization, Some(AMZ_DATE)).unwrap();
        let canonical = canonical_request(
            &request,
            &[],
            &signature,
            false,
            &hex(&Sha256::digest(b"{}")),
        )
        .unwrap();
        let string_to_sign = format!(
            "{ALGORITHM}\n{AMZ_DATE}\n{scope_date}/us-east-1/kinesis/aws4_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut mac =
            HmacSha256::new_from_slice(&signing_key("secret", scope_date, "us-east-1", "kinesis"))
                .unwrap();
        mac.update(string_to_sign.as_bytes());
        let authorization = format!("{authorization}{}", hex(&mac.finalize().into_bytes()));
        (headers, authorization)
    }

    fn check(
        verifier: &Verifier,
        headers: &[(String, String)],
        authorization: &str,
    ) -> Result<Scope, ApiError> {
        let mut all: Vec<(String, &str)> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str()))
            .collect();
        all.push(("authorization".into(), authorization));
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: None,
            headers: all,
            host: Some("localhost"),
            body: b"{}",
            service: "kinesis",
        };
        let at = parse_amz_date(AMZ_DATE).unwrap();
        verifier.verify_headers(&request, at)?;
        verifier.verify(&request, at).map(|caller| caller.scope)
    }

    #[test]
    fn host_and_the_target_must_be_signed() {
        let verifier = verifier(None);
        let (headers, auth) = signed_request(
            "ListStreams",
            &[],
            "host;x-amz-date;x-amz-target",
            "20261205",
        );
        assert!(check(&verifier, &headers, &auth).is_ok());
        // A signature over the date alone, replayed with another operation.
        let (mut headers, auth) = signed_request("ListStreams", &[], "host;x-amz-date", "20261205");
        headers[1].1 = "Kinesis_20131202.DeleteStream".into();
        let error = check(&verifier, &headers, &auth).unwrap_err();
        assert_eq!(error.name, "IncompleteSignatureException");
        assert!(
            error.message.contains("'X-Amz-Target'"),
            "{}",
            error.message
        );
        let (headers, auth) =
            signed_request("ListStreams", &[], "x-amz-date;x-amz-target", "20261205");
        let error = check(&verifier, &headers, &auth).unwrap_err();
        assert!(error.message.contains("'Host'"), "{}", error.message);
        let (headers, auth) = signed_request("ListStreams", &[], "host;x-amz-target", "20261205");
        let error = check(&verifier, &headers, &auth).unwrap_err();
        assert!(error.message.contains("'X-Amz-Date'"), "{}", error.message);
    }

    #[test]
    fn the_scope_date_must_be_the_request_date() {
        let verifier = verifier(None);
        for scope_date in ["", "2026120", "20261204", "2026120X"] {
            let (headers, auth) = signed_request(
                "ListStreams",
                &[],
                "host;x-amz-date;x-amz-target",
                scope_date,
            );
            let error = check(&verifier, &headers, &auth).unwrap_err();
            assert!(
                error.message.contains("Date in Credential scope"),
                "{scope_date}: {}",
                error.message
            );
        }
    }

    #[test]
    fn temporary_credentials_need_their_session_token_signed() {
        let with_token = verifier(Some("token-1"));
        let signed = "host;x-amz-date;x-amz-security-token;x-amz-target";
        let (headers, auth) = signed_request(
            "ListStreams",
            &[("x-amz-security-token", "token-1")],
            signed,
            "20261205",
        );
        assert!(check(&with_token, &headers, &auth).is_ok());
        let (headers, auth) = signed_request(
            "ListStreams",
            &[("x-amz-security-token", "token-2")],
            signed,
            "20261205",
        );
        assert_eq!(
            check(&with_token, &headers, &auth).unwrap_err().name,
            "UnrecognizedClientException"
        );
        let (headers, auth) = signed_request(
            "ListStreams",
            &[],
            "host;x-amz-date;x-amz-target",
            "20261205",
        );
        assert_eq!(
            check(&with_token, &headers, &auth).unwrap_err().name,
            "UnrecognizedClientException"
        );
        let (headers, auth) = signed_request(
            "ListStreams",
            &[("x-amz-security-token", "token-1")],
            "host;x-amz-date;x-amz-target",
            "20261205",
        );
        let error = check(&with_token, &headers, &auth).unwrap_err();
        assert!(
            error.message.contains("'X-Amz-Security-Token'"),
            "{}",
            error.message
        );
        // A token sent with a long-term credential is refused, as AWS refuses it.
        let (headers, auth) = signed_request(
            "ListStreams",
            &[("x-amz-security-token", "token-1")],
            signed,
            "20261205",
        );
        assert_eq!(
            check(&verifier(None), &headers, &auth).unwrap_err().name,
            "UnrecognizedClientException"
        );
    }
}
