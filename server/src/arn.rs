//! Stream and consumer ARNs: `arn:aws:kinesis:<region>:<account>:stream/<name>` and
//! `…:stream/<name>/consumer/<consumer>:<creation epoch seconds>`.

/// A parsed stream ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn<'a> {
    /// Region.
    pub region: &'a str,
    /// 12-digit account id.
    pub account: &'a str,
    /// Stream name.
    pub stream: &'a str,
}

/// A parsed consumer ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn<'a> {
    /// The stream's ARN parts.
    pub stream: StreamArn<'a>,
    /// Consumer name.
    pub consumer: &'a str,
    /// Creation time, epoch seconds.
    pub created_s: u64,
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `(region, account, resource)` of a Kinesis ARN.
fn split(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = prefix == "arn"
        && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && service == "kinesis"
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((region, account, resource))
}

impl<'a> StreamArn<'a> {
    /// Parses a stream ARN; `None` when it is not one.
    pub fn parse(arn: &'a str) -> Option<StreamArn<'a>> {
        let (region, account, resource) = split(arn)?;
        let stream = resource.strip_prefix("stream/")?;
        is_name(stream).then_some(StreamArn {
            region,
            account,
            stream,
        })
    }

    /// Formats a stream ARN.
    pub fn format(region: &str, account: &str, stream: &str) -> String {
        format!("arn:aws:kinesis:{region}:{account}:stream/{stream}")
    }
}

impl<'a> ConsumerArn<'a> {
    /// Parses a consumer ARN; `None` when it is not one.
    pub fn parse(arn: &'a str) -> Option<ConsumerArn<'a>> {
        let (region, account, resource) = split(arn)?;
        let rest = resource.strip_prefix("stream/")?;
        let (stream, rest) = rest.split_once("/consumer/")?;
        let (consumer, created) = rest.rsplit_once(':')?;
        // Plain digits: `+17…` or `017…` would name the same consumer in another spelling.
        let plain = !created.is_empty()
            && created.bytes().all(|b| b.is_ascii_digit())
            && (created == "0" || !created.starts_with('0'));
        let created_s = created.parse().ok().filter(|_| plain)?;
        (is_name(stream) && is_name(consumer)).then_some(ConsumerArn {
            stream: StreamArn {
                region,
                account,
                stream,
            },
            consumer,
            created_s,
        })
    }

    /// Formats a consumer ARN.
    pub fn format(stream_arn: &str, consumer: &str, created_s: u64) -> String {
        format!("{stream_arn}/consumer/{consumer}:{created_s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_consumer_arns_round_trip() {
        let stream = StreamArn::format("eu-west-1", "123456789012", "orders");
        assert_eq!(
            StreamArn::parse(&stream),
            Some(StreamArn {
                region: "eu-west-1",
                account: "123456789012",
                stream: "orders"
            })
        );
        let consumer = ConsumerArn::format(&stream, "app-1", 1_700_000_000);
        let parsed = ConsumerArn::parse(&consumer).unwrap();
        assert_eq!(
            (parsed.stream.stream, parsed.consumer, parsed.created_s),
            ("orders", "app-1", 1_700_000_000)
        );
        assert_eq!(
            StreamArn::parse(&consumer),
            None,
            "a consumer ARN is not a stream ARN"
        );
    }

    #[test]
    fn malformed_arns_are_refused() {
        for arn in [
            "",
            "arn:aws:kinesis:us-east-1:12345:stream/s",
            "arn:aws:sqs:us-east-1:123456789012:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:123456789012:stream/bad name",
            "arn:aws:kinesis:us-east-1:123456789012:table/s",
            // Another spelling of a partition would dodge a policy's exact ARN.
            "arn:aws-x:kinesis:us-east-1:123456789012:stream/s",
        ] {
            assert_eq!(StreamArn::parse(arn), None, "{arn}");
        }
        for created in ["x", "+1700000000", "01700000000", ""] {
            let arn = format!("arn:aws:kinesis:r:123456789012:stream/s/consumer/c:{created}");
            assert!(ConsumerArn::parse(&arn).is_none(), "{arn}");
        }
        assert!(
            ConsumerArn::parse("arn:aws-cn:kinesis:r:123456789012:stream/s/consumer/c:0").is_some()
        );
    }
}
