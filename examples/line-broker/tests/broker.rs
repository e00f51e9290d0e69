//! The example broker, run as its users run it: the binary on a port, a client on a socket.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `request` and reads reply lines until one starts with OK, END or ERR.
fn ask(writer: &mut TcpStream, reader: &mut impl BufRead, request: &str) -> Vec<String> {
    writer.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "broker closed the connection"
        );
        let line = line.trim_end().to_owned();
        let last = ["OK", "END", "ERR"].iter().any(|p| line.starts_with(p));
        lines.push(line);
        if last {
            return lines;
        }
    }
}

#[test]
fn published_messages_are_read_back_in_order_and_resumed_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_line-broker"))
        .args([dir.path().to_str().unwrap(), "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let _running = Running(child);
    let address = banner.trim().rsplit(' ').next().unwrap().to_owned();
    let mut writer = TcpStream::connect(&address).unwrap();
    let mut reader = BufReader::new(writer.try_clone().unwrap());

    assert_eq!(ask(&mut writer, &mut reader, "CREATE orders 1"), ["OK"]);
    let mut offsets = Vec::new();
    for message in ["first order", "second order", "third order"] {
        let reply = ask(
            &mut writer,
            &mut reader,
            &format!("PUB orders c-7 {message}"),
        );
        let words: Vec<&str> = reply[0].split(' ').collect();
        assert_eq!(words[..2], ["OK", "0"], "{reply:?}");
        offsets.push(words[2].to_owned());
    }
    let all = ask(&mut writer, &mut reader, "SUB orders 0 0 10");
    let expected: Vec<String> = ["first order", "second order", "third order"]
        .iter()
        .zip(&offsets)
        .map(|(m, o)| format!("MSG {o} c-7 {m}"))
        .chain([format!("END {}", offsets[2])])
        .collect();
    assert_eq!(all, expected);
    // A consumer resumes after the last offset it saw.
    let rest = ask(
        &mut writer,
        &mut reader,
        &format!("SUB orders 0 {} 10", offsets[0]),
    );
    assert_eq!(rest[..2], expected[1..3]);
    // Bad requests get an error line and the connection stays usable.
    assert!(ask(&mut writer, &mut reader, "PUB nope k v")[0].starts_with("ERR"));
    assert!(ask(&mut writer, &mut reader, "FLY me")[0].starts_with("ERR"));
    assert_eq!(ask(&mut writer, &mut reader, "SUB orders 0 0 1").len(), 2);
}
