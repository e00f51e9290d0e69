//! CloudWatch's three wire forms: Smithy RPC v2 CBOR (boto3 and the AWS CLI today), AWS JSON
//! 1.0, and the query protocol (form bodies in, XML out) of older SDKs. Inputs of every form
//! become one JSON value, read into the operation's input type; replies are an [`Out`] tree,
//! encoded in the request's form.

use crate::wire::ApiError;
use serde::de::DeserializeOwned;

/// The target prefix and Smithy service name of CloudWatch.
pub const SERVICE: &str = "GraniteServiceVersion20100801";
/// The path prefix of Smithy RPC v2 requests.
pub const RPC_V2_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";
const XML_NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// How a CloudWatch request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Smithy RPC v2 CBOR: `POST /service/<service>/operation/<op>`.
    Cbor,
    /// AWS JSON 1.0: `X-Amz-Target: <service>.<op>`.
    Json,
    /// The query protocol: a form body with `Action=<op>`.
    Query,
}

impl Form {
    /// The form of a request, when it is CloudWatch's.
    pub fn of(path: &str, target: Option<&str>, content_type: Option<&str>) -> Option<Form> {
        if path.starts_with(RPC_V2_PATH) {
            return Some(Form::Cbor);
        }
        if target.is_some_and(|t| t.starts_with(SERVICE) && t[SERVICE.len()..].starts_with('.')) {
            return Some(Form::Json);
        }
        let form = content_type.is_some_and(|c| {
            c.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        (form && target.is_none()).then_some(Form::Query)
    }

    /// The operation a request names: the path's, the target's, or the form's `Action`.
    pub fn operation(self, path: &str, target: Option<&str>, body: &[u8]) -> String {
        match self {
            Form::Cbor => path[RPC_V2_PATH.len()..].to_owned(),
            Form::Json => target.unwrap_or_default()[SERVICE.len() + 1..].to_owned(),
            Form::Query => form_urlencoded::parse(body)
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        }
    }

    /// The `Content-Type` of replies.
    pub fn content_type(self) -> &'static str {
        match self {
            Form::Cbor => "application/cbor",
            Form::Json => "application/x-amz-json-1.0",
            Form::Query => "text/xml",
        }
    }

    /// Reads the request's input.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        let value = match self {
            Form::Json if body.iter().all(u8::is_ascii_whitespace) => serde_json::json!({}),
            Form::Json => serde_json::from_slice(body).map_err(ApiError::serialization)?,
            Form::Cbor if body.is_empty() => serde_json::json!({}),
            Form::Cbor => {
                let mut rest = body;
                let value: ciborium::Value =
                    ciborium::from_reader(&mut rest).map_err(ApiError::serialization)?;
                if !rest.is_empty() {
                    return Err(ApiError::serialization(
                        "The request body has bytes after its CBOR map.",
                    ));
                }
                from_cbor(value)?
            }
            Form::Query => from_form(body)?,
        };
        if !value.is_object() {
            return Err(ApiError::serialization(
                "The request body is not a structure.",
            ));
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }

    /// A reply's body.
    pub fn encode(self, operation: &str, out: &Out, request_id: &str) -> Vec<u8> {
        match self {
            Form::Json => serde_json::to_vec(&to_json(out)).expect("replies serialize"),
            Form::Cbor => {
                let mut body = Vec::new();
                ciborium::into_writer(&to_cbor(out), &mut body).expect("replies serialize");
                body
            }
            Form::Query => to_xml(operation, out, request_id),
        }
    }

    /// An error's body and headers.
    pub fn error(
        self,
        error: &ApiError,
        request_id: &str,
    ) -> (Vec<u8>, Vec<(&'static str, String)>) {
        let code = query_code(error.name);
        let fault = if error.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let headers = vec![
            ("x-amzn-query-error", format!("{code};{fault}")),
            ("x-amzn-errortype", error.name.to_owned()),
        ];
        let body = match self {
            Form::Query => {
                let mut xml = Xml::default();
                xml.open_ns("ErrorResponse");
                xml.open("Error");
                xml.leaf("Type", fault);
                xml.leaf("Code", code);
                xml.leaf("Message", &error.message);
                xml.close("Error");
                xml.leaf("RequestId", request_id);
                xml.close("ErrorResponse");
                xml.into_bytes()
            }
            _ => {
                let out = Out::Struct(vec![
                    (
                        "__type",
                        Out::Str(format!("com.amazonaws.cloudwatch#{}", error.name)),
                    ),
                    ("message", Out::Str(error.message.clone())),
                ]);
                self.encode("", &out, request_id)
            }
        };
        (body, headers)
    }
}

/// The code the query protocol (and `x-amzn-query-error`) gives an error.
fn query_code(name: &str) -> &str {
    match name {
        "InvalidParameterValueException" => "InvalidParameterValue",
        "MissingRequiredParameterException" => "MissingParameter",
        "InvalidParameterCombinationException" => "InvalidParameterCombination",
        "InternalServiceFault" | "InternalFailure" => "InternalServiceError",
        "LimitExceededFault" => "LimitExceeded",
        "InvalidFormatFault" => "InvalidFormat",
        "SerializationException" => "MalformedQueryString",
        "UnknownOperationException" => "InvalidAction",
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "AccessDeniedException" => "AccessDenied",
        other => other,
    }
}

/// A bad value in a request.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::with_status("InvalidParameterValueException", 400, message.into())
}

/// A reply value.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A string.
    Str(String),
    /// A double.
    Num(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A time, in seconds since the epoch.
    Time(f64),
    /// A list.
    List(Vec<Out>),
    /// A structure's members, in order; absent members are left out.
    Struct(Vec<(&'static str, Out)>),
}

fn to_json(out: &Out) -> serde_json::Value {
    use serde_json::Value;
    match out {
        Out::Str(s) => Value::String(s.clone()),
        Out::Num(n) | Out::Time(n) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Out::Int(i) => Value::from(*i),
        Out::Bool(b) => Value::Bool(*b),
        Out::List(items) => Value::Array(items.iter().map(to_json).collect()),
        Out::Struct(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| ((*k).to_owned(), to_json(v)))
                .collect(),
        ),
    }
}

fn to_cbor(out: &Out) -> ciborium::Value {
    use ciborium::Value;
    match out {
        Out::Str(s) => Value::Text(s.clone()),
        Out::Num(n) => Value::Float(*n),
        Out::Time(t) => Value::Tag(1, Box::new(Value::Float(*t))),
        Out::Int(i) => Value::Integer((*i).into()),
        Out::Bool(b) => Value::Bool(*b),
        Out::List(items) => Value::Array(items.iter().map(to_cbor).collect()),
        Out::Struct(members) => Value::Map(
            members
                .iter()
                .map(|(k, v)| (Value::Text((*k).to_owned()), to_cbor(v)))
                .collect(),
        ),
    }
}

/// `<OpResponse><OpResult>...</OpResult><ResponseMetadata>...</OpResponse>`.
fn to_xml(operation: &str, out: &Out, request_id: &str) -> Vec<u8> {
    let mut xml = Xml::default();
    let response = format!("{operation}Response");
    xml.open_ns(&response);
    if let Out::Struct(members) = out
        && !members.is_empty()
    {
        let result = format!("{operation}Result");
        xml.open(&result);
        xml.members(members);
        xml.close(&result);
    }
    xml.open("ResponseMetadata");
    xml.leaf("RequestId", request_id);
    xml.close("ResponseMetadata");
    xml.close(&response);
    xml.into_bytes()
}

/// An XML document written through quick-xml (which escapes text).
struct Xml {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Default for Xml {
    fn default() -> Xml {
        Xml {
            writer: quick_xml::Writer::new(Vec::new()),
        }
    }
}

impl Xml {
    fn open_ns(&mut self, name: &str) {
        let start =
            quick_xml::events::BytesStart::new(name).with_attributes([("xmlns", XML_NAMESPACE)]);
        self.event(quick_xml::events::Event::Start(start));
    }

    fn open(&mut self, name: &str) {
        self.event(quick_xml::events::Event::Start(
            quick_xml::events::BytesStart::new(name),
        ));
    }

    fn close(&mut self, name: &str) {
        self.event(quick_xml::events::Event::End(
            quick_xml::events::BytesEnd::new(name),
        ));
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.event(quick_xml::events::Event::Text(
            quick_xml::events::BytesText::new(text),
        ));
        self.close(name);
    }

    fn members(&mut self, members: &[(&'static str, Out)]) {
        for (name, value) in members {
            self.value(name, value);
        }
    }

    fn value(&mut self, name: &str, value: &Out) {
        match value {
            Out::Str(s) => self.leaf(name, s),
            Out::Num(n) => self.leaf(name, &n.to_string()),
            Out::Int(i) => self.leaf(name, &i.to_string()),
            Out::Bool(b) => self.leaf(name, if *b { "true" } else { "false" }),
            Out::Time(t) => self.leaf(name, &iso8601(*t)),
            Out::List(items) => {
                self.open(name);
                for item in items {
                    self.value("member", item);
                }
                self.close(name);
            }
            Out::Struct(members) => {
                self.open(name);
                self.members(members);
                self.close(name);
            }
        }
    }

    fn event(&mut self, event: quick_xml::events::Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing XML to memory");
    }

    fn into_bytes(self) -> Vec<u8> {
        self.writer.into_inner()
    }
}

/// `2026-12-05T10:00:00.000Z`.
pub fn iso8601(seconds: f64) -> String {
    let seconds = seconds.clamp(0.0, lenient::TIME_MAX);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds);
    humantime::format_rfc3339_millis(time).to_string()
}

/// A CBOR input as JSON: tags (timestamps' tag 1) give their value, byte strings base64.
fn from_cbor(value: ciborium::Value) -> Result<serde_json::Value, ApiError> {
    use ciborium::Value as C;
    use serde_json::Value as J;
    Ok(match value {
        C::Null => J::Null,
        C::Bool(b) => J::Bool(b),
        C::Integer(i) => {
            let i = i128::from(i);
            match i64::try_from(i) {
                Ok(i) => J::from(i),
                Err(_) => J::from(i as f64),
            }
        }
        C::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| invalid("A number in the request is not finite."))?,
        C::Text(s) => J::String(s),
        C::Bytes(b) => {
            use base64::Engine as _;
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        C::Tag(_, inner) => from_cbor(*inner)?,
        C::Array(items) => J::Array(items.into_iter().map(from_cbor).collect::<Result<_, _>>()?),
        C::Map(entries) => {
            let mut object = serde_json::Map::new();
            for (key, value) in entries {
                let C::Text(key) = key else {
                    return Err(ApiError::serialization("A CBOR map key is not a string."));
                };
                object.insert(key, from_cbor(value)?);
            }
            J::Object(object)
        }
        _ => {
            return Err(ApiError::serialization(
                "The request holds a CBOR value of no AWS type.",
            ));
        }
    })
}

/// Deepest key a query form may use (`A.member.1.B.member.2.C` is 6): CloudWatch's inputs
/// nest a few levels, and a bound keeps the tree (and every walk of it) shallow.
const FORM_DEPTH_MAX: usize = 16;

/// A query form's members as a tree: lists are sparse (by index), so a large index costs
/// nothing until it is read in order.
enum FormNode {
    Leaf(String),
    Map(std::collections::BTreeMap<String, FormNode>),
    List(std::collections::BTreeMap<usize, FormNode>),
}

/// A query-protocol form as JSON: `A.member.2.B=v` is `{"A": [.., {"B": "v"}]}`; every
/// value is a string (the inputs' types read numbers and booleans from strings). List
/// members come in index order; skipped indices leave no hole.
fn from_form(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut root = FormNode::Map(std::collections::BTreeMap::new());
    for (key, value) in form_urlencoded::parse(body) {
        if key == "Action" || key == "Version" {
            continue;
        }
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() > FORM_DEPTH_MAX {
            return Err(invalid(format!(
                "The parameter {key} nests deeper than any CloudWatch input."
            )));
        }
        let mut node = &mut root;
        let mut i = 0;
        while i < parts.len() {
            if parts[i] == "member" {
                let index: usize = parts
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        invalid(format!("{key}: a list member needs an index from 1."))
                    })?;
                if !matches!(node, FormNode::List(_)) {
                    *node = FormNode::List(std::collections::BTreeMap::new());
                }
                let FormNode::List(items) = node else {
                    unreachable!("made a list")
                };
                node = items
                    .entry(index)
                    .or_insert_with(|| FormNode::Map(std::collections::BTreeMap::new()));
                i += 2;
            } else {
                if !matches!(node, FormNode::Map(_)) {
                    *node = FormNode::Map(std::collections::BTreeMap::new());
                }
                let FormNode::Map(members) = node else {
                    unreachable!("made a map")
                };
                node = members
                    .entry(parts[i].to_owned())
                    .or_insert_with(|| FormNode::Map(std::collections::BTreeMap::new()));
                i += 1;
            }
        }
        *node = FormNode::Leaf(value.into_owned());
    }
    // An empty list is sent as `Name=` alone: a leaf of "" where a list belongs reads as
    // absent, so the input's default applies.
    fn to_json(node: FormNode) -> serde_json::Value {
        match node {
            FormNode::Leaf(text) => serde_json::Value::String(text),
            FormNode::Map(members) => serde_json::Value::Object(
                members
                    .into_iter()
                    .filter(|(_, v)| !matches!(v, FormNode::Leaf(t) if t.is_empty()))
                    .map(|(k, v)| (k, to_json(v)))
                    .collect(),
            ),
            FormNode::List(items) => {
                serde_json::Value::Array(items.into_values().map(to_json).collect())
            }
        }
    }
    Ok(to_json(root))
}

/// Readers of numbers, booleans and times sent as strings (the query protocol) or as
/// themselves (CBOR and JSON).
pub mod lenient {
    use serde::{Deserialize, Deserializer, de::Error as _};

    /// The last second of 9999, the latest time ISO 8601's four-digit years write.
    pub const TIME_MAX: f64 = 253_402_300_799.0;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Bool(bool),
        Text(String),
    }

    fn raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Raw>, D::Error> {
        Option::<Raw>::deserialize(d)
    }

    /// An optional double.
    /// A finite number from text (NaN and infinities are refused: no statistic or
    /// threshold can hold them).
    fn finite<E: serde::de::Error>(text: &str) -> Result<f64, E> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| E::custom(format!("{text:?} is not a finite number")))
    }

    /// An optional double.
    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match raw(d)? {
            None => Ok(None),
            Some(Raw::Num(n)) if n.is_finite() => Ok(Some(n)),
            Some(Raw::Num(n)) => Err(D::Error::custom(format!("{n} is not a finite number"))),
            Some(Raw::Text(t)) => finite(&t).map(Some),
            Some(Raw::Bool(_)) => Err(D::Error::custom("a boolean where a number belongs")),
        }
    }

    /// An optional integer.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match f64(d)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(Some(n as i64)),
            Some(n) => Err(D::Error::custom(format!("{n} is not an integer"))),
        }
    }

    /// An optional boolean.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match raw(d)? {
            None => Ok(None),
            Some(Raw::Bool(b)) => Ok(Some(b)),
            Some(Raw::Text(t)) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Raw::Text(t)) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(D::Error::custom(format!(
                "{} is not a boolean",
                match other {
                    Raw::Num(n) => n.to_string(),
                    Raw::Text(t) => t,
                    Raw::Bool(b) => b.to_string(),
                }
            ))),
        }
    }

    /// An optional time, as seconds since the epoch: a number, or ISO 8601 text.
    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match raw(d)? {
            None => Ok(None),
            Some(Raw::Num(n)) if (0.0..=TIME_MAX).contains(&n) => Ok(Some(n)),
            Some(Raw::Num(n)) => Err(D::Error::custom(format!(
                "{n} is not a time from 1970 to 9999"
            ))),
            Some(Raw::Text(t)) => {
                if let Ok(n) = finite::<D::Error>(&t) {
                    return if (0.0..=TIME_MAX).contains(&n) {
                        Ok(Some(n))
                    } else {
                        Err(D::Error::custom(format!(
                            "{n} is not a time from 1970 to 9999"
                        )))
                    };
                }
                let time = humantime::parse_rfc3339_weak(t.trim())
                    .map_err(|_| D::Error::custom(format!("{t:?} is not an ISO 8601 time")))?;
                let since = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| D::Error::custom(format!("{t:?} is before 1970")))?;
                Ok(Some(since.as_secs_f64()))
            }
            Some(Raw::Bool(_)) => Err(D::Error::custom("a boolean where a time belongs")),
        }
    }

    /// An optional list of doubles.
    pub fn f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        let Some(items) = Option::<Vec<Raw>>::deserialize(d)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|item| match item {
                Raw::Num(n) if n.is_finite() => Ok(n),
                Raw::Num(n) => Err(D::Error::custom(format!("{n} is not a finite number"))),
                Raw::Text(t) => finite(&t),
                Raw::Bool(_) => Err(D::Error::custom("a boolean where a number belongs")),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_form_becomes_nested_lists_and_structures() {
        let body = b"Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FKinesis\
&Dimensions.member.1.Name=StreamName&Dimensions.member.1.Value=s%201\
&Dimensions.member.2.Name=ShardId&Dimensions.member.2.Value=x&Statistics.member.1=Sum&Period=60";
        let value = from_form(body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "Namespace": "AWS/Kinesis",
                "Dimensions": [{"Name": "StreamName", "Value": "s 1"}, {"Name": "ShardId", "Value": "x"}],
                "Statistics": ["Sum"],
                "Period": "60",
            })
        );
        assert_eq!(
            Form::Query.operation("/", None, body),
            "GetMetricStatistics"
        );
        assert!(from_form(b"Dimensions.member.0.Name=a").is_err());
        // Deep keys are refused; a huge index costs nothing and holes leave no gap.
        let deep = format!("A{}=1", ".a".repeat(100_000));
        assert!(from_form(deep.as_bytes()).is_err());
        let sparse =
            from_form(b"Statistics.member.999999999=Sum&Statistics.member.2=Maximum").unwrap();
        assert_eq!(
            sparse,
            serde_json::json!({"Statistics": ["Maximum", "Sum"]})
        );
        assert_eq!(
            from_form(b"Dimensions=&Namespace=N").unwrap(),
            serde_json::json!({"Namespace": "N"})
        );
    }

    #[test]
    fn replies_in_each_form() {
        let out = Out::Struct(vec![
            ("Label", Out::Str("a<b".into())),
            (
                "Datapoints",
                Out::List(vec![Out::Struct(vec![
                    ("Timestamp", Out::Time(60.0)),
                    ("Sum", Out::Num(2.5)),
                ])]),
            ),
        ]);
        let xml = String::from_utf8(Form::Query.encode("GetMetricStatistics", &out, "id")).unwrap();
        assert!(
            xml.contains("<GetMetricStatisticsResult><Label>a&lt;b</Label><Datapoints><member><Timestamp>1970-01-01T00:01:00.000Z</Timestamp><Sum>2.5</Sum></member></Datapoints></GetMetricStatisticsResult>"),
            "{xml}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&Form::Json.encode("GetMetricStatistics", &out, "id")).unwrap();
        assert_eq!(json["Datapoints"][0]["Timestamp"], 60.0);
        let cbor: ciborium::Value =
            ciborium::from_reader(&Form::Cbor.encode("x", &out, "id")[..]).unwrap();
        let text = format!("{cbor:?}");
        assert!(text.contains("Tag(1, Float(60.0))"), "{text}");
    }

    #[test]
    fn numbers_booleans_and_times_read_from_strings_or_themselves() {
        #[derive(serde::Deserialize)]
        struct In {
            #[serde(default, deserialize_with = "lenient::i64")]
            period: Option<i64>,
            #[serde(default, deserialize_with = "lenient::time")]
            at: Option<f64>,
            #[serde(default, deserialize_with = "lenient::bool")]
            on: Option<bool>,
        }
        let a: In = serde_json::from_value(
            serde_json::json!({"period": "60", "at": "2026-12-05T00:00:00Z", "on": "true"}),
        )
        .unwrap();
        assert_eq!(
            (a.period, a.at, a.on),
            (Some(60), Some(1_796_428_800.0), Some(true))
        );
        let b: In = serde_json::from_value(serde_json::json!({"period": 60, "at": 1.5})).unwrap();
        assert_eq!((b.period, b.at, b.on), (Some(60), Some(1.5), None));
        assert!(serde_json::from_value::<In>(serde_json::json!({"period": "6.5"})).is_err());
        for bad in ["NaN", "inf", "1e999", "-Infinity"] {
            assert!(
                serde_json::from_value::<In>(serde_json::json!({"period": bad})).is_err(),
                "{bad}"
            );
            assert!(
                serde_json::from_value::<In>(serde_json::json!({"at": bad})).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<In>(serde_json::json!({"at": 1e18})).is_err());
    }
}
