//! The routing mesh's PROXY protocol v2 ports: where a published port
//! asks for it (`proxy=v2`), the node accepts the connection itself, opens
//! one to a serving task (round robin) and sends a PROXY v2 header with the
//! client's real address before the bytes, so the task learns who called
//! (Docker's mesh hides it, moby#25526). Other ports stay in the kernel
//! (nftables DNAT).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The PROXY protocol v2 signature.
const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The PROXY v2 header of a proxied TCP connection from `src` to `dst`.
#[must_use]
pub fn header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.push(0x21); // version 2, PROXY
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            h.push(0x11); // TCP over IPv4
            h.extend(12u16.to_be_bytes());
            h.extend(s.ip().octets());
            h.extend(d.ip().octets());
            h.extend(s.port().to_be_bytes());
            h.extend(d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a {
                SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
                SocketAddr::V6(a) => *a.ip(),
            };
            h.push(0x21); // TCP over IPv6
            h.extend(36u16.to_be_bytes());
            h.extend(v6(s).octets());
            h.extend(v6(d).octets());
            h.extend(s.port().to_be_bytes());
            h.extend(d.port().to_be_bytes());
        }
    }
    h
}

type Backends = Arc<RwLock<Vec<SocketAddr>>>;

struct Port {
    backends: Backends,
    listener: JoinHandle<()>,
}

/// The node's PROXY v2 ports, each with its backends.
#[derive(Default)]
pub(crate) struct Proxies {
    ports: HashMap<u16, Port>,
}

impl Proxies {
    /// Serves exactly `want` (published port -> backends): listeners for
    /// new ports, new backends for the others, none for ports gone.
    /// Connections already made keep going.
    pub(crate) async fn sync(&mut self, want: HashMap<u16, Vec<SocketAddr>>) {
        self.ports.retain(|port, p| {
            let keep = want.contains_key(port);
            if !keep {
                p.listener.abort();
            }
            keep
        });
        for (port, backends) in want {
            if let Some(p) = self.ports.get(&port) {
                *p.backends
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = backends;
                continue;
            }
            let listener = match TcpListener::bind(("0.0.0.0", port)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot publish a PROXY protocol port on this node");
                    continue;
                }
            };
            let shared: Backends = Arc::new(RwLock::new(backends));
            let listener = tokio::spawn(serve(listener, shared.clone()));
            self.ports.insert(
                port,
                Port {
                    backends: shared,
                    listener,
                },
            );
        }
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for p in self.ports.values() {
            p.listener.abort();
        }
    }
}

async fn serve(listener: TcpListener, backends: Backends) {
    let turn = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        let (backends, turn) = (backends.clone(), turn.clone());
        tokio::spawn(async move {
            if let Err(e) = forward(client, peer, &backends, &turn).await {
                tracing::debug!(%peer, error = %e, "a PROXY protocol connection failed");
            }
        });
    }
}

/// Connects `client` to the next backend that answers, announcing the
/// client with a PROXY v2 header, then copies both ways until either end
/// closes.
async fn forward(
    mut client: TcpStream,
    peer: SocketAddr,
    backends: &Backends,
    turn: &AtomicUsize,
) -> std::io::Result<()> {
    let list = backends
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let local = client.local_addr()?;
    let start = turn.fetch_add(1, Ordering::Relaxed);
    for i in 0..list.len() {
        let to = list[(start + i) % list.len()];
        let Ok(Ok(mut task)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to)).await
        else {
            continue;
        };
        task.write_all(&header(peer, local)).await?;
        tokio::io::copy_bidirectional(&mut client, &mut task).await?;
        return Ok(());
    }
    Err(std::io::Error::other("no serving task answered"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_v2_with_both_addresses() {
        let h = header(
            "192.0.2.10:40000".parse().unwrap(),
            "198.51.100.1:8080".parse().unwrap(),
        );
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 0, 2, 10]);
        assert_eq!(&h[20..24], &[198, 51, 100, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 8080);
        assert_eq!(h.len(), 28);
    }

    #[tokio::test]
    async fn connections_reach_a_backend_with_the_client_s_address_first() {
        use tokio::io::AsyncReadExt;
        let task = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let task_addr = task.local_addr().unwrap();
        let mut proxies = Proxies::default();
        // Port 0 cannot be published; find a free one.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        proxies.sync(HashMap::from([(free, vec![task_addr])])).await;
        let mut client = TcpStream::connect(("127.0.0.1", free)).await.unwrap();
        let me = client.local_addr().unwrap();
        client.write_all(b"hello").await.unwrap();
        let (mut conn, _) = task.accept().await.unwrap();
        let mut got = vec![0u8; 28 + 5];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..12], &SIGNATURE);
        assert_eq!(
            u16::from_be_bytes([got[24], got[25]]),
            me.port(),
            "the client's own port"
        );
        assert_eq!(&got[28..], b"hello");
        proxies.sync(HashMap::new()).await;
        assert!(proxies.ports.is_empty());
    }
}
