//! Headless Chromium driven over its DevTools protocol, for the
//! visualizer's test and cost benchmark: open pages, evaluate JavaScript
//! in them, take screenshots. Only loopback is spoken to.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// A headless Chromium, killed when dropped.
pub struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Its helpers first (they would outlive it), then the browser.
        for pid in descendants(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    /// The browser's binary, if one is installed (`chromium`, Debian's).
    #[must_use]
    pub fn find() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
            .find(|p| p.is_file())
    }

    /// Starts `binary` headless, with a fresh profile and a window of
    /// `width`×`height`, and waits for its DevTools endpoint.
    ///
    /// # Errors
    /// If it does not start, or says no endpoint within 30 s.
    pub fn launch(binary: &std::path::Path, width: u32, height: u32) -> anyhow::Result<Self> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                // The rest of its chatter is drained, so that it never
                // blocks on a full pipe.
            }
        });
        let ws = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("{} said no DevTools endpoint", binary.display()))?;
        // ws://127.0.0.1:PORT/devtools/browser/ID
        let devtools = ws
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .ok_or_else(|| anyhow!("an odd DevTools endpoint: {ws}"))?
            .to_owned();
        Ok(Self {
            child,
            _profile: profile,
            devtools,
        })
    }

    /// The browser's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Opens a new tab at `url`, and waits until it has loaded.
    ///
    /// # Errors
    /// If the browser does not answer.
    pub async fn open(&self, url: &str) -> anyhow::Result<Page> {
        let answer = http(&self.devtools, "PUT", &format!("/json/new?{url}")).await?;
        let target: Value = serde_json::from_str(&answer)
            .with_context(|| format!("DevTools answered {answer:?}"))?;
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .ok_or_else(|| anyhow!("no debugger URL in {target}"))?;
        let (socket, _) = tokio_tungstenite::connect_async(ws).await?;
        let mut page = Page { socket, next: 0 };
        page.call("Runtime.enable", json!({})).await?;
        // The tab answers before it has left about:blank: wait for the
        // page's document (its scripts may still be loading more).
        let began = std::time::Instant::now();
        loop {
            let now = page
                .eval("[location.href, document.readyState].join(' ')")
                .await?;
            let now = now.as_str().unwrap_or_default().to_owned();
            if !now.starts_with("about:blank") && !now.ends_with(" loading") {
                return Ok(page);
            }
            if began.elapsed() > Duration::from_secs(60) {
                bail!("{url} did not load within 60 s: the tab is at {now}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The processes under `root` (children, theirs, ...), from `/proc`.
#[must_use]
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The parent is the field after the state, after the last `)`.
        if let Some(ppid) = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent.insert(pid, ppid);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..32 {
                match parent.get(&p) {
                    Some(&pp) if pp == root => return true,
                    Some(&pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// A request to the DevTools HTTP endpoint; the body of its answer.
async fn http(host: &str, method: &str, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    // DevTools keeps the connection open whatever the request says: read
    // the head, then Content-Length bytes.
    let mut bytes = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| anyhow!("no Content-Length in {head:?}"))?;
            if body.len() >= length {
                return Ok(body[..length].to_owned());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .map_err(|_| anyhow!("DevTools did not answer {method} {path}"))??;
        if n == 0 {
            bail!("DevTools closed the connection: {text:?}");
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// One tab.
pub struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
}

impl Page {
    /// Calls a DevTools method; its result (events on the way are
    /// skipped).
    ///
    /// # Errors
    /// If the browser answers with an error, or goes.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "params": params });
        self.socket.send(Message::text(request.to_string())).await?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .map_err(|_| anyhow!("{method}: no answer within 30 s"))?
                .ok_or_else(|| anyhow!("{method}: the browser went"))??;
            let Message::Text(text) = message else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    bail!("{method}: {e}");
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// The value of the JavaScript `expression` (JSON-serializable).
    ///
    /// # Errors
    /// If it throws, or the browser fails.
    pub async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!("{expression}: {e}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// A PNG of the page as it is drawn.
    ///
    /// # Errors
    /// If the browser fails.
    pub async fn screenshot(&mut self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = r["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}
