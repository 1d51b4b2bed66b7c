//! The overlay's data plane, measured side by side in one run on three
//! hosts made of network namespaces (root needed; otherwise SKIPPED):
//!
//! - HTTP through three paths to one task on h1, from h2: straight to the
//!   task's overlay address, through the service's VIP, and through the
//!   routing mesh (h2's published port); 64 connections at once, with a
//!   small reply and with a 1 MiB reply. Throughput and latency (p50/p99).
//! - DNS answers per second at a task's resolver (127.0.0.11).
//! - The time from a task reaching `running` to being resolvable
//!   (`tasks.<service>`) on every node, p50/p99.
//!
//! `cargo bench -p swarm-examples --bench overlay [-- --secs 5 --tasks 20]`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use swarm_examples::netns::{Hosts, in_task, skip_reason, task_addr, wait_for};

const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");
const CONNECTIONS: usize = 64;

struct Args {
    secs: f64,
    tasks: usize,
}

fn args() -> Args {
    let mut a = Args {
        secs: 3.0,
        tasks: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.secs),
            "--tasks" => a.tasks = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.tasks),
            "--quick" => {
                a.secs = 0.5;
                a.tasks = 4;
            }
            _ => {} // cargo's own (--bench)
        }
    }
    a
}

/// Runs `f` on a thread inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).expect("the namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// One GET of `path` at `to`, read to the end; the bytes read.
fn get(to: SocketAddr, path: &str) -> std::io::Result<usize> {
    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(c, "GET /{path} HTTP/1.0\r\n\r\n")?;
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        match c.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

struct Load {
    requests: usize,
    errors: usize,
    bytes: usize,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

/// `CONNECTIONS` clients in `netns` GETting `path` at `to` for `secs`.
fn load(netns: &Path, to: SocketAddr, path: &'static str, secs: f64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(CONNECTIONS + 1));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (stop, start) = (stop.clone(), start.clone());
            in_netns(netns, move || {
                start.wait();
                let (mut lat, mut bytes, mut errors) = (Vec::new(), 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match get(to, path) {
                        Ok(n) => {
                            lat.push(t.elapsed());
                            bytes += n;
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, bytes, errors)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut out = Load {
        requests: 0,
        errors: 0,
        bytes: 0,
        secs: 0.0,
        latencies: Vec::new(),
    };
    for w in workers {
        let (lat, bytes, errors) = w.join().unwrap();
        out.requests += lat.len();
        out.latencies.extend(lat);
        out.bytes += bytes;
        out.errors += errors;
    }
    out.secs = began.elapsed().as_secs_f64();
    out.latencies.sort_unstable();
    out
}

/// A DNS query for `name`, type A.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// The A records of a DNS answer.
fn answers(reply: &[u8]) -> Vec<std::net::Ipv4Addr> {
    // Header, then the question (name, type, class), then records whose
    // name is a pointer (2 bytes): type, class, ttl, length, data.
    let Some(count) = reply.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return Vec::new();
    };
    let mut at = 12;
    while at < reply.len() && reply[at] != 0 {
        at += 1 + usize::from(reply[at]);
    }
    at += 5;
    let mut out = Vec::new();
    for _ in 0..count {
        let Some(rec) = reply.get(at..at + 12) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([rec[10], rec[11]]));
        if rec[3] == 1
            && len == 4
            && let Some(d) = reply.get(at + 12..at + 16)
        {
            out.push(std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]));
        }
        at += 12 + len;
    }
    out
}

/// DNS answers per second, 4 clients in `netns` asking for `name`.
fn dns_rate(netns: &Path, name: &'static str, secs: f64) -> (f64, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u16)
        .map(|k| {
            let stop = stop.clone();
            in_netns(netns, move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect("127.0.0.11:53").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut buf = [0u8; 512];
                let (mut ok, mut id) = (0usize, k << 12);
                while !stop.load(Ordering::Relaxed) {
                    id = id.wrapping_add(1);
                    s.send(&query(id, name)).unwrap();
                    if s.recv(&mut buf).is_ok() && !answers(&buf).is_empty() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let n: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    (n as f64 / t.elapsed().as_secs_f64(), n)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn pid_netns(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

fn main() {
    let a = args();
    if let Some(why) = skip_reason() {
        println!("SKIPPED: {why}");
        return;
    }
    let testd = swarm_runtime_docker::testing::testd().unwrap();
    let h = Hosts::cluster(3, Path::new(SWARMD), Path::new(SWARMCTL));
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("small"), vec![b'x'; 100]).unwrap();
    std::fs::write(root.path().join("big"), vec![b'x'; 1 << 20]).unwrap();
    h.ctl(&["network", "create", "--driver", "overlay", "appnet"]);
    let testd = testd.to_str().unwrap();
    let root_s = root.path().to_str().unwrap();
    h.ctl(&[
        "service",
        "create",
        "--name",
        "web",
        "--network",
        "appnet",
        "-p",
        "8080:80",
        "--constraint",
        "node.hostname==h1",
        testd,
        "http",
        "80",
        root_s,
    ]);
    h.ctl(&[
        "service",
        "create",
        "--name",
        "client",
        "--mode",
        "global",
        "--network",
        "appnet",
        "sleep",
        "3600",
    ]);
    // Two clients on h2: the direct and the VIP runs each have one, so
    // that neither meets the other's TIME_WAIT connections at the server
    // (the same source port seen through two destinations looks like
    // timestamps going backwards, and the server drops the SYN).
    h.ctl(&[
        "service",
        "create",
        "--name",
        "load",
        "--replicas",
        "2",
        "--network",
        "appnet",
        "--constraint",
        "node.hostname==h2",
        "sleep",
        "3600",
    ]);
    let load_pids: Vec<u32> = h.tasks("load").values().map(|(_, pid)| *pid).collect();
    let web = h.tasks("web");
    let (_, (_, web_pid)) = web.iter().next().unwrap();
    let clients = h.tasks("client");
    let on = |host: &str| {
        clients
            .values()
            .find(|(hst, _)| hst == host)
            .map(|(_, pid)| *pid)
            .unwrap()
    };
    let client = on("h2");
    let _ = &load_pids;
    let task_addr: SocketAddr = format!("{}:80", task_addr(*web_pid, "eth0"))
        .parse()
        .unwrap();
    let vip = String::from_utf8_lossy(
        &in_task(client, "getent ahostsv4 web | awk '{print $1}' | head -1").stdout,
    )
    .trim()
    .to_owned();
    let vip: SocketAddr = format!("{vip}:80").parse().unwrap();
    let mesh: SocketAddr = format!("{}:8080", Hosts::addr(2)).parse().unwrap();
    wait_for("the task answers", Duration::from_secs(10), || {
        in_netns(&pid_netns(client), move || get(task_addr, "small").is_ok())
            .join()
            .unwrap()
    });
    let h2 = PathBuf::from(format!("/run/netns/{}", h.ns(2)));

    println!(
        "HTTP to one task on h1 from h2, {CONNECTIONS} connections, {:.1} s per row (new connection per request)",
        a.secs
    );
    println!(
        "{:<8}{:<8}{:>10}{:>10}{:>10}{:>10}{:>9}",
        "reply", "path", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors"
    );
    for (size, path) in [("100 B", "small"), ("1 MiB", "big")] {
        let mut direct = (0.0, Duration::ZERO);
        for (name, netns, to) in [
            ("direct", pid_netns(load_pids[0]), task_addr),
            ("VIP", pid_netns(load_pids[1]), vip),
            ("mesh", h2.clone(), mesh),
        ] {
            let l = load(&netns, to, path, a.secs);
            let rps = l.requests as f64 / l.secs;
            let mib = l.bytes as f64 / l.secs / f64::from(1 << 20);
            let p99 = l.pct(0.99);
            let vs = if name == "direct" {
                direct = (mib, p99);
                String::new()
            } else {
                format!(
                    "   ({:.0} % of direct, p99 {:+.2} ms)",
                    100.0 * mib / direct.0.max(f64::MIN_POSITIVE),
                    (p99.as_secs_f64() - direct.1.as_secs_f64()) * 1e3
                )
            };
            println!(
                "{size:<8}{name:<8}{rps:>10.0}{mib:>10.1}{:>10}{:>10}{:>9}{vs}",
                ms(l.pct(0.5)),
                ms(p99),
                l.errors
            );
        }
    }

    let (rate, n) = dns_rate(&pid_netns(client), "web", a.secs);
    println!(
        "\nDNS: {rate:.0} answers/s at 127.0.0.11 ({n} in {:.1} s, 4 clients)",
        a.secs
    );

    // Running -> resolvable on every node.
    let seen: Arc<std::sync::Mutex<Vec<(String, usize, SystemTime)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = (1..=3)
        .map(|i| {
            let (seen, stop) = (seen.clone(), stop.clone());
            in_netns(&pid_netns(on(&format!("h{i}"))), move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect("127.0.0.11:53").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut known = std::collections::HashSet::new();
                let mut buf = [0u8; 4096];
                let mut id = 0u16;
                while !stop.load(Ordering::Relaxed) {
                    id = id.wrapping_add(1);
                    let _ = s.send(&query(id, "tasks.probe"));
                    if let Ok(n) = s.recv(&mut buf) {
                        let now = SystemTime::now();
                        for a in answers(&buf[..n]) {
                            if known.insert(a) {
                                seen.lock().unwrap().push((a.to_string(), i, now));
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    let tasks = a.tasks.to_string();
    h.ctl(&[
        "service",
        "create",
        "--name",
        "probe",
        "--replicas",
        &tasks,
        "--network",
        "appnet",
        "sleep",
        "3600",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.join().unwrap();
    }
    let ps: serde_json::Value =
        serde_json::from_str(&h.ctl(&["service", "ps", "probe", "--format", "json"])).unwrap();
    let seen = seen.lock().unwrap();
    let mut delays: Vec<Duration> = Vec::new();
    for t in ps.as_array().unwrap() {
        let Some(addr) = t["networks"][0]["addr"].as_str() else {
            continue;
        };
        let ts = &t["status"]["timestamp"];
        let running = SystemTime::UNIX_EPOCH
            + Duration::new(
                ts["secs_since_epoch"].as_u64().unwrap(),
                u32::try_from(ts["nanos_since_epoch"].as_u64().unwrap()).unwrap(),
            );
        let on_nodes: Vec<&SystemTime> = seen
            .iter()
            .filter(|(a, _, _)| a == addr)
            .map(|(_, _, t)| t)
            .collect();
        if on_nodes.len() == 3 {
            let last = **on_nodes.iter().max().unwrap();
            delays.push(last.duration_since(running).unwrap_or_default());
        }
    }
    delays.sort_unstable();
    let pct = |p: f64| delays[((delays.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "running -> resolvable on all 3 nodes: {} of {} tasks, p50 {} ms, p99 {} ms (polling every 2 ms)",
        delays.len(),
        a.tasks,
        ms(pct(0.5)),
        ms(pct(0.99))
    );
}
