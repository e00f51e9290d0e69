//! The lab's network: one network namespace per node, each joined to a bridge in the test's
//! namespace by a veth pair, on a /24 of its own (10.A.B.0, from the process id), with an
//! nftables table per namespace for partitions and packet loss. The test's namespace (the
//! clients, etcd) is 10.A.B.254. Everything is removed when the `Net` drops,
//! also when the test fails.

use std::process::Command;

/// Runs `program args`, failing the test with its output if it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The namespaces, the bridge and their addresses.
pub struct Net {
    tag: String,
    /// The /24's second and third octets.
    subnet: (u32, u32),
    nodes: usize,
}

impl Net {
    /// Namespaces for `nodes` nodes (needs root, iproute2 and nftables).
    pub fn create(nodes: usize) -> Net {
        let pid = std::process::id();
        let net = Net {
            tag: format!("sl{}", pid % 100_000),
            subnet: (100 + (pid >> 8) % 100, pid & 0xff),
            nodes,
        };
        net.remove(); // a previous run of the same pid, killed before it cleaned up
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.host_ip()),
                "dev",
                &bridge,
            ],
        );
        run("ip", &["link", "set", &bridge, "up"]);
        for i in 0..nodes {
            let (ns, outer, inner) = (net.namespace(i), net.outer(i), net.inner(i));
            run("ip", &["netns", "add", &ns]);
            run(
                "ip",
                &[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                ],
            );
            run("ip", &["link", "set", &inner, "netns", &ns]);
            run("ip", &["link", "set", &outer, "master", &bridge]);
            run("ip", &["link", "set", &outer, "up"]);
            let address = format!("{}/24", net.node_ip(i));
            net.in_ns(i, "ip", &["addr", "add", &address, "dev", &inner]);
            net.in_ns(i, "ip", &["link", "set", &inner, "up"]);
            net.in_ns(i, "ip", &["link", "set", "lo", "up"]);
            net.in_ns(i, "nft", &["add", "table", "inet", "lab"]);
            for (chain, hook) in [("in", "input"), ("out", "output")] {
                let spec = format!("{{ type filter hook {hook} priority 0; }}");
                net.in_ns(i, "nft", &["add", "chain", "inet", "lab", chain, &spec]);
            }
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn namespace(&self, node: usize) -> String {
        format!("{}n{node}", self.tag)
    }

    fn outer(&self, node: usize) -> String {
        format!("{}o{node}", self.tag)
    }

    fn inner(&self, node: usize) -> String {
        format!("{}i{node}", self.tag)
    }

    /// The test's address on the bridge (clients, etcd).
    pub fn host_ip(&self) -> String {
        format!("10.{}.{}.254", self.subnet.0, self.subnet.1)
    }

    /// Node `node`'s address.
    pub fn node_ip(&self, node: usize) -> String {
        format!("10.{}.{}.{}", self.subnet.0, self.subnet.1, node + 1)
    }

    fn in_ns(&self, node: usize, program: &str, args: &[&str]) {
        let ns = self.namespace(node);
        let mut full = vec!["netns", "exec", &ns, program];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// A command that runs `program` in node `node`'s namespace.
    pub fn command(&self, node: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(node)])
            .arg(program);
        command
    }

    /// Node `node` drops every packet to and from `addresses`.
    pub fn block(&self, node: usize, addresses: &[String]) {
        for address in addresses {
            let from = format!("ip saddr {address} drop");
            let to = format!("ip daddr {address} drop");
            self.in_ns(node, "nft", &["add", "rule", "inet", "lab", "in", &from]);
            self.in_ns(node, "nft", &["add", "rule", "inet", "lab", "out", &to]);
        }
    }

    /// Node `node` drops what it sends to `address` (it still hears from it).
    pub fn block_outgoing(&self, node: usize, address: &str) {
        let to = format!("ip daddr {address} drop");
        self.in_ns(node, "nft", &["add", "rule", "inet", "lab", "out", &to]);
    }

    /// Node `node` loses `percent` of the packets it sends (an nftables rule drawing a random
    /// number per packet: netem's qdisc is not in every kernel).
    pub fn lose(&self, node: usize, percent: u32) {
        let rule = format!("numgen random mod 100 < {percent} drop");
        self.in_ns(node, "nft", &["add", "rule", "inet", "lab", "out", &rule]);
    }

    /// Every partition and loss removed.
    pub fn heal(&self) {
        for i in 0..self.nodes {
            self.in_ns(i, "nft", &["flush", "chain", "inet", "lab", "in"]);
            self.in_ns(i, "nft", &["flush", "chain", "inet", "lab", "out"]);
        }
    }

    fn remove(&self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.namespace(i)])
                .output();
            let _ = Command::new("ip")
                .args(["link", "del", &self.outer(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}
