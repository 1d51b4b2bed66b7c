//! `swarm-testd`: the server the Docker tests run inside their image
//! (feature `testing`). It uses only the standard library, so the image
//! needs nothing but this program and the libraries `ldd` names.
//!
//! - `swarm-testd http PORT [ROOT]`: an HTTP/1.x server on `0.0.0.0:PORT`.
//!   `GET /PATH` answers with the file `ROOT/PATH` (`ROOT` defaults to
//!   `/`); `GET /` answers with `ROOT/index.html` when there is one, and
//!   otherwise with the task's id (`$SWARM_TASK_ID`) or, without one, the
//!   hostname. A missing file is `404 Not Found`.
//! - `swarm-testd http PORT ROOT --proxy-protocol`: the same, behind the
//!   routing mesh's PROXY protocol v2: each connection starts with the
//!   header, and `GET /` answers `<task id> <client address>`.
//! - `swarm-testd probe PORT`: exits 0 if something accepts a TCP
//!   connection on `127.0.0.1:PORT` within a second, 1 otherwise: a health
//!   check for the server above.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: swarm-testd http PORT [ROOT [--proxy-protocol]] | probe PORT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["http", port, rest @ ..]
            if rest.len() <= 1 || (rest.len() == 2 && rest[1] == "--proxy-protocol") =>
        {
            let proxied = rest.len() == 2;
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("swarm-testd: {port:?} is not a port number: {USAGE}");
                return ExitCode::from(2);
            };
            let root = PathBuf::from(rest.first().copied().unwrap_or("/"));
            match serve(port, &root, proxied) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("swarm-testd: cannot serve on port {port}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["probe", port] => {
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("swarm-testd: {port:?} is not a port number: {USAGE}");
                return ExitCode::from(2);
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            match TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("swarm-testd: nothing answers on {addr}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("swarm-testd: {USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(port: u16, root: &Path, proxied: bool) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let root = root.to_owned();
        std::thread::spawn(move || {
            if let Err(e) = answer(conn, &root, proxied) {
                eprintln!("swarm-testd: {e}");
            }
        });
    }
    Ok(())
}

/// Reads one request and answers it, then closes the connection.
fn answer(conn: TcpStream, root: &Path, proxied: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let client = if proxied {
        Some(proxy_header(&mut reader)?)
    } else {
        None
    };
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers are read and ignored.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let found = match (&client, path) {
        (Some(from), "/") => Some(format!("{} {from}\n", task_id()).into_bytes()),
        _ => body(root, path),
    };
    let (status, body) = match found {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", format!("{path} not found\n").into_bytes()),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)?;
    conn.flush()
}

/// What `GET path` answers, or `None` for 404.
fn body(root: &Path, path: &str) -> Option<Vec<u8>> {
    let relative = Path::new(path.trim_start_matches('/'));
    // No way out of the root.
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    if relative.as_os_str().is_empty() {
        if let Ok(index) = std::fs::read(root.join("index.html")) {
            return Some(index);
        }
        return Some(format!("{}\n", task_id()).into_bytes());
    }
    std::fs::read(root.join(relative)).ok()
}

/// The task's id, or the hostname outside a task.
fn task_id() -> String {
    std::env::var("SWARM_TASK_ID")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Reads a PROXY protocol v2 header; the client's address (IPv4) it names.
fn proxy_header(reader: &mut impl std::io::Read) -> std::io::Result<String> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let mut fixed = [0u8; 16];
    reader.read_exact(&mut fixed)?;
    if &fixed[..12] != b"\r\n\r\n\0\r\nQUIT\n" || fixed[12] >> 4 != 2 {
        return Err(bad("no PROXY protocol v2 header"));
    }
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
    reader.read_exact(&mut rest)?;
    if fixed[13] >> 4 == 1 && rest.len() >= 12 {
        let ip = std::net::Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
        let port = u16::from_be_bytes([rest[8], rest[9]]);
        return Ok(format!("{ip}:{port}"));
    }
    Ok("unknown".into())
}
