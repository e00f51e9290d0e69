//! The cluster fault lab's parts: the network (`net`), the clients' record and the checker
//! (`history`), and a Kinesis JSON client with timeouts (a node that is stopped or cut off
//! must not hang a writer).

pub mod history;
pub mod net;

use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One Kinesis call to `address`: the status and the JSON reply, or why no reply came
/// within `timeout`.
pub fn call(
    address: SocketAddr,
    operation: &str,
    body: &Value,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let body = body.to_string();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: Kinesis_20131202.{operation}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let reply = String::from_utf8(reply).map_err(|e| e.to_string())?;
    let status = reply
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP reply: {reply:?}"))?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}
