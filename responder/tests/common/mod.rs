//! Network namespaces for tests: a "victim" and an "attacker" joined by a veth pair, with
//! addresses on the test's own link only, removed when dropped.
#![allow(dead_code)]

use std::process::{Command as Proc, Stdio};

pub struct Netns {
    pub victim: String,
    pub attacker: String,
    /// Third octet of the test's addresses.
    pub net: u32,
    servers: Vec<std::process::Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in [&self.victim, &self.attacker] {
            let _ = Proc::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

pub fn run(args: &[&str]) -> Result<(), String> {
    let out = Proc::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    pub fn victim_ip(&self) -> String {
        format!("10.231.{}.1", self.net)
    }
    pub fn attacker_ip(&self, host: u32) -> String {
        format!("10.231.{}.{host}", self.net)
    }

    /// Two namespaces joined by a veth pair; the attacker holds .2 and .66 (IPv4) and ::2
    /// (IPv6); the victim runs a TCP listener on port 8080 answering "ok".
    pub fn create() -> Result<Netns, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id());
        let mut ns = Netns {
            victim: format!("socv{id}"),
            attacker: format!("soca{id}"),
            net: (std::process::id() + n * 7) % 250,
            servers: Vec::new(),
        };
        let (v, a) = (ns.victim.clone(), ns.attacker.clone());
        let (vi, ai) = (format!("sv{id}"), format!("sa{id}"));
        run(&["ip", "netns", "add", &v])?;
        run(&["ip", "netns", "add", &a])?;
        run(&[
            "ip", "link", "add", &vi, "type", "veth", "peer", "name", &ai,
        ])?;
        run(&["ip", "link", "set", &vi, "netns", &v])?;
        run(&["ip", "link", "set", &ai, "netns", &a])?;
        let n = ns.net;
        for (nsn, dev, addrs) in [
            (
                &v,
                &vi,
                vec![format!("10.231.{n}.1/24"), "fd00:231::1/64".into()],
            ),
            (
                &a,
                &ai,
                vec![
                    format!("10.231.{n}.2/24"),
                    format!("10.231.{n}.66/24"),
                    "fd00:231::2/64".into(),
                ],
            ),
        ] {
            for addr in addrs {
                let mut args = vec!["ip", "-n", nsn, "addr", "add", &addr, "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                run(&args)?;
            }
            run(&["ip", "-n", nsn, "link", "set", dev, "up"])?;
            run(&["ip", "-n", nsn, "link", "set", "lo", "up"])?;
        }
        ns.serve(&v, 8080)?;
        Ok(ns)
    }

    /// A TCP listener answering "ok" on `port` in namespace `nsn`.
    pub fn serve(&mut self, nsn: &str, port: u16) -> Result<(), String> {
        let server = Proc::new("ip")
            .args([
                "netns",
                "exec",
                nsn,
                "python3",
                "-c",
                SERVER,
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        self.servers.push(server);
        Ok(())
    }

    /// Whether a TCP connection from `src` in the attacker namespace gets the victim's
    /// answer within a second.
    pub fn reaches(&self, src: &str, dst: &str) -> bool {
        self.connects(&self.attacker, src, dst, 8080)
    }

    pub fn connects(&self, from_ns: &str, src: &str, dst: &str, port: u16) -> bool {
        let out = Proc::new("ip")
            .args(["netns", "exec", from_ns, "python3", "-c", CLIENT, src, dst])
            .arg(port.to_string())
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).trim() == "ok"
    }

    pub fn ruleset(&self) -> String {
        let out = Proc::new("ip")
            .args(["netns", "exec", &self.victim, "nft", "list", "ruleset"])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const SERVER: &str = r#"
import socket, sys, threading
port = int(sys.argv[1])
def serve(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()
threading.Thread(target=serve, args=(socket.AF_INET6, "::"), daemon=True).start()
serve(socket.AF_INET, "0.0.0.0")
"#;

const CLIENT: &str = r#"
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
try:
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.0)
    s.bind((src, 0)); s.connect((dst, port)); print(s.recv(2).decode())
except Exception as e:
    print("no", e)
"#;

pub fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces and nftables)".into());
    }
    for tool in ["ip", "nft", "python3"] {
        if Proc::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Some(format!(
                "`{tool}` is not installed (apt-get install nftables iproute2 python3)"
            ));
        }
    }
    None
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
