//! What `sluice serve` prints when it starts: where it listens, where the data is, and a
//! command that works when pasted into another shell.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The address a client on this machine connects to: a wildcard listen address (0.0.0.0,
/// ::) is reached through loopback.
pub fn client_address(listening: SocketAddr) -> SocketAddr {
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listening.port())
}

/// An AWS CLI command to try. Without SigV4 verification any keys do, but the AWS CLI
/// refuses to send a request without some (“Unable to locate credentials”), so the command
/// carries dummy ones and the region; with verification it names what to fill in.
pub fn try_command(scheme: &str, listening: SocketAddr, region: &str, signed: bool) -> String {
    let keys = if signed {
        "AWS_ACCESS_KEY_ID=<a --credential key> AWS_SECRET_ACCESS_KEY=<its secret>"
    } else {
        "AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any"
    };
    let ca = if scheme == "https" {
        " --ca-bundle <the CA of --tls-cert>"
    } else {
        ""
    };
    format!(
        "{keys} AWS_DEFAULT_REGION={region} aws kinesis list-streams --endpoint-url {scheme}://{}{ca}",
        client_address(listening)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_command_carries_dummy_keys_and_the_region() {
        let command = try_command(
            "http",
            "127.0.0.1:4567".parse().unwrap(),
            "eu-west-1",
            false,
        );
        assert_eq!(
            command,
            "AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any AWS_DEFAULT_REGION=eu-west-1 \
             aws kinesis list-streams --endpoint-url http://127.0.0.1:4567"
        );
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_through_loopback() {
        let v4 = try_command("http", "0.0.0.0:4567".parse().unwrap(), "us-east-1", false);
        assert!(v4.ends_with("--endpoint-url http://127.0.0.1:4567"), "{v4}");
        let v6 = try_command("http", "[::]:80".parse().unwrap(), "us-east-1", false);
        assert!(v6.ends_with("--endpoint-url http://[::1]:80"), "{v6}");
        let named = client_address("10.1.2.3:9".parse().unwrap());
        assert_eq!(named, "10.1.2.3:9".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn a_signed_tls_server_says_which_keys_and_ca_to_use() {
        let command = try_command("https", "127.0.0.1:443".parse().unwrap(), "us-east-1", true);
        assert!(
            command.starts_with("AWS_ACCESS_KEY_ID=<a --credential key>"),
            "{command}"
        );
        assert!(
            command.contains("https://127.0.0.1:443 --ca-bundle"),
            "{command}"
        );
    }
}
