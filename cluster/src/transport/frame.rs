//! The heartbeat batch's body: requests as `uid u64 | shard u32 | len u32 | payload`,
//! answers in the same order as `ok u8 | len u32 | payload` (a failed answer's payload is its
//! message), all little-endian. Decoding checks every length against what is left.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::GroupId;

/// Encodes a batch of heartbeat requests.
pub(crate) fn encode_requests(items: &[(GroupId, Bytes)]) -> Bytes {
    let mut out = BytesMut::with_capacity(items.iter().map(|(_, b)| 16 + b.len()).sum());
    for (group, payload) in items {
        out.put_u64_le(group.stream_uid);
        out.put_u32_le(group.shard);
        out.put_u32_le(u32::try_from(payload.len()).expect("a heartbeat is far below 4 GiB"));
        out.put_slice(payload);
    }
    out.freeze()
}

/// Decodes a batch of heartbeat requests.
pub(crate) fn decode_requests(mut body: Bytes) -> Result<Vec<(GroupId, Bytes)>, String> {
    let mut items = Vec::new();
    while body.has_remaining() {
        if body.remaining() < 16 {
            return Err(format!(
                "a heartbeat frame cut short ({} bytes left)",
                body.remaining()
            ));
        }
        let group = GroupId {
            stream_uid: body.get_u64_le(),
            shard: body.get_u32_le(),
        };
        let len = body.get_u32_le() as usize;
        if body.remaining() < len {
            return Err(format!(
                "a heartbeat of {len} bytes with {} left",
                body.remaining()
            ));
        }
        items.push((group, body.split_to(len)));
    }
    Ok(items)
}

/// Encodes the answers, in request order.
pub(crate) fn encode_answers(answers: &[Result<Bytes, String>]) -> Bytes {
    let mut out = BytesMut::new();
    for answer in answers {
        let (ok, payload) = match answer {
            Ok(bytes) => (1, bytes.as_ref()),
            Err(message) => (0, message.as_bytes()),
        };
        out.put_u8(ok);
        out.put_u32_le(u32::try_from(payload.len()).expect("an answer is far below 4 GiB"));
        out.put_slice(payload);
    }
    out.freeze()
}

/// Decodes `count` answers.
pub(crate) fn decode_answers(
    mut body: Bytes,
    count: usize,
) -> Result<Vec<Result<Bytes, String>>, String> {
    let mut answers = Vec::with_capacity(count);
    while body.has_remaining() {
        if body.remaining() < 5 {
            return Err("an answer frame cut short".into());
        }
        let ok = body.get_u8();
        let len = body.get_u32_le() as usize;
        if body.remaining() < len {
            return Err(format!(
                "an answer of {len} bytes with {} left",
                body.remaining()
            ));
        }
        let payload = body.split_to(len);
        answers.push(match ok {
            1 => Ok(payload),
            0 => Err(String::from_utf8_lossy(&payload).into_owned()),
            other => return Err(format!("an answer flagged {other}")),
        });
    }
    if answers.len() != count {
        return Err(format!("{} answers to {count} heartbeats", answers.len()));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn batches_read_back_and_cut_ones_are_refused(
            items in prop::collection::vec((any::<u64>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..40)), 0..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let items: Vec<(GroupId, Bytes)> = items
                .into_iter()
                .map(|(uid, shard, p)| (GroupId { stream_uid: uid, shard }, Bytes::from(p)))
                .collect();
            let body = encode_requests(&items);
            prop_assert_eq!(decode_requests(body.clone()).unwrap(), items.clone());
            if !body.is_empty() {
                let at = cut.index(body.len());
                let decoded = decode_requests(body.slice(..at));
                // A prefix either ends on a frame boundary (fewer items) or is refused.
                if let Ok(fewer) = decoded {
                    prop_assert!(fewer.len() < items.len() || at == body.len());
                    prop_assert_eq!(&fewer[..], &items[..fewer.len()]);
                }
            }
            let answers: Vec<Result<Bytes, String>> = items
                .iter()
                .map(|(g, p)| if g.shard % 2 == 0 { Ok(p.clone()) } else { Err(format!("no group {g}")) })
                .collect();
            prop_assert_eq!(decode_answers(encode_answers(&answers), answers.len()).unwrap(), answers.clone());
            prop_assert!(decode_answers(encode_answers(&answers), answers.len() + 1).is_err());
        }
    }
}
