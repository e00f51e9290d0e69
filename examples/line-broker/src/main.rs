//! A tiny custom broker on the Sluice engine, as an embedder writes one: its own line protocol
//! over TCP, a thread per connection, the engine's blocking calls.
//!
//! ```text
//! line-broker DATA_DIR [LISTEN]          (LISTEN defaults to 127.0.0.1:7070)
//!
//! CREATE <topic> <partitions>            -> OK
//! PUB <topic> <key> <message...>         -> OK <partition> <offset>   (durable)
//! SUB <topic> <partition> <offset|0> <n> -> MSG <offset> <key> <message> ... then END <next>
//! ```
//! Offsets are the engine's sequence numbers; `SUB ... 0` reads from the oldest retained
//! message, any other offset from just after it (a consumer passes its last offset back).

use sluice_core::{
    CreateStream, Engine, EngineConfig, IteratorStart, PutRecord, SequenceNumber, Stream,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Messages one SUB returns at most.
const SUB_MESSAGES_MAX: usize = 1000;

/// The broker: the engine and a cache of topic handles (looked up once, used for every call).
struct Broker {
    engine: Engine,
    topics: Mutex<HashMap<String, Stream>>,
}

impl Broker {
    fn topic(&self, name: &str) -> Result<Stream, String> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(topic) = topics.get(name).filter(|t| !t.is_deleted()) {
            return Ok(topic.clone());
        }
        let topic = self.engine.stream(name).map_err(|e| e.to_string())?;
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Answers one request line.
    fn handle(&self, line: &str) -> Result<String, String> {
        match line.splitn(4, ' ').collect::<Vec<_>>().as_slice() {
            ["CREATE", topic, partitions] => {
                let partitions = partitions.parse().map_err(|_| "bad partition count")?;
                let request = CreateStream::provisioned(*topic, partitions);
                self.engine
                    .create_stream(request)
                    .wait()
                    .map_err(|e| e.to_string())?;
                Ok("OK\n".into())
            }
            ["PUB", topic, key, message] => {
                let record = PutRecord::new(key, message.as_bytes());
                let put = self
                    .topic(topic)?
                    .put(record)
                    .wait()
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "OK {} {}\n",
                    put.shard_id.index(),
                    put.sequence_number
                ))
            }
            ["SUB", topic, partition, rest] => self.subscribe(topic, partition, rest),
            _ => Err(format!("unknown request {line:?}")),
        }
    }

    fn subscribe(&self, topic: &str, partition: &str, rest: &str) -> Result<String, String> {
        let (offset, n) = rest.split_once(' ').ok_or("want <offset> <n>")?;
        let partition: u32 = partition.parse().map_err(|_| "bad partition")?;
        let n: usize = n.parse().map_err(|_| "bad count")?;
        let start = match offset {
            "0" => IteratorStart::TrimHorizon,
            offset => IteratorStart::AfterSequenceNumber(
                SequenceNumber::parse(offset).map_err(|e| e.to_string())?,
            ),
        };
        let shard = sluice_core::ShardId::new(partition);
        let mut iterator = self
            .topic(topic)?
            .shard_iterator(&shard, start)
            .map_err(|e| e.to_string())?;
        let limit = Some(n.clamp(1, SUB_MESSAGES_MAX));
        let records = self
            .engine
            .get_records(&mut iterator, limit)
            .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        let mut last = offset.to_owned();
        for record in records.records() {
            let message = String::from_utf8_lossy(record.data);
            reply += &format!(
                "MSG {} {} {message}\n",
                record.sequence_number, record.partition_key
            );
            last = record.sequence_number.to_string();
        }
        Ok(reply + &format!("END {last}\n"))
    }
}

fn serve(broker: &Broker, connection: TcpStream) -> std::io::Result<()> {
    let mut writer = connection.try_clone()?;
    for line in BufReader::new(connection).lines() {
        let reply = broker
            .handle(line?.trim_end())
            .unwrap_or_else(|e| format!("ERR {e}\n"));
        writer.write_all(reply.as_bytes())?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: line-broker DATA_DIR [LISTEN]")?;
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:7070".into());
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    let broker = Arc::new(Broker {
        engine: Engine::open(config)?,
        topics: Mutex::new(HashMap::new()),
    });
    let listener = TcpListener::bind(&listen)?;
    println!("line-broker listening on {}", listener.local_addr()?);
    for connection in listener.incoming() {
        let (broker, connection) = (broker.clone(), connection?);
        std::thread::spawn(move || serve(&broker, connection));
    }
    Ok(())
}
