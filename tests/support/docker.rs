//! Helpers for tests against the machine's real Docker engine: the test image (built here,
//! with no registry), containers that clean up after themselves, medic processes whose
//! output is collected as it arrives, and a unix-socket proxy in front of the engine.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "medic-loggen:test";

/// Docker tests run one at a time: they start many processes on two cores, and the pickup
/// latency they check should not measure the other tests.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Build the log generator as a static binary and an image `FROM scratch` around it.
pub fn image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loggen-image");
        std::fs::create_dir_all(&dir).expect("image dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker/loggen.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        run(Command::new(rustc)
            .args([
                "-O",
                "-C",
                "target-feature=+crt-static",
                "--edition",
                "2021",
            ])
            .arg(&src)
            .arg("-o")
            .arg(dir.join("loggen")));
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM scratch\nCOPY loggen /loggen\nENTRYPOINT [\"/loggen\"]\n",
        )
        .expect("Dockerfile");
        run(Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(&dir));
    });
}

/// A container removed when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME [docker_args] IMAGE [args]`.
    pub fn start(name: &str, docker_args: &[&str], args: &[&str]) -> Container {
        image();
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        run(Command::new("docker")
            .args(["run", "-d", "--name", name])
            .args(docker_args)
            .arg(IMAGE)
            .args(args));
        Container {
            name: name.to_string(),
        }
    }

    /// What the engine has for it: every line of stdout and stderr, in no particular
    /// order between the two.
    pub fn logs(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .expect("docker logs");
        let mut lines: Vec<String> = Vec::new();
        for part in [&out.stdout, &out.stderr] {
            lines.extend(
                String::from_utf8_lossy(part)
                    .lines()
                    .map(|l| l.trim_end_matches('\r').to_string()),
            );
        }
        lines
    }

    pub fn docker(&self, verb: &[&str]) {
        run(Command::new("docker").args(verb).arg(&self.name));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// One line of medic's stdout, with when it arrived.
#[derive(Debug, Clone)]
pub struct Out {
    pub at: Instant,
    pub line: String,
}

/// A medic process; stdout and stderr are collected by threads as they arrive.
pub struct Medic {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<Out>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Medic {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Medic {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medic"));
        cmd.args(args)
            .env("MEDIC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn medic");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (o, e) = (Arc::clone(&stdout), Arc::clone(&stderr));
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    o.lock().expect("lock").push(Out {
                        at: Instant::now(),
                        line,
                    });
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    e.lock().expect("lock").push(line);
                }
            }),
        ];
        Medic {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn lines(&self) -> Vec<Out> {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// Wait until `f` holds on stdout so far, or panic after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, f: impl Fn(&[Out]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f(&self.stdout.lock().expect("lock")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; stderr:\n{}",
            self.stderr_text()
        );
    }

    /// Wait until stderr mentions `needle`.
    pub fn wait_stderr(&self, secs: u64, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.stderr_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {needle:?} on stderr:\n{}", self.stderr_text());
    }

    fn finish(mut self) -> (Vec<Out>, String, std::process::ExitStatus) {
        let status = self.child.wait().expect("wait");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let err = self.stderr_text();
        (self.lines(), err, status)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(self) -> (Vec<Out>, String) {
        let pid = self.child.id().to_string();
        run(Command::new("kill").args(["-TERM", &pid]));
        let (lines, err, status) = self.finish();
        assert!(status.success(), "medic exited with {status}:\n{err}");
        (lines, err)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) -> (Vec<Out>, String) {
        self.child.kill().expect("kill -9");
        let (lines, err, _) = self.finish();
        (lines, err)
    }
}

impl Drop for Medic {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A connected stream that can be cloned and half-closed: unix and TCP.
trait Duplex: std::io::Read + std::io::Write + Send + Sized + 'static {
    fn dup(&self) -> std::io::Result<Self>;
    fn close_write(&self);
}

impl Duplex for UnixStream {
    fn dup(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Duplex for std::net::TcpStream {
    fn dup(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// Copy one way on a thread of its own, then pass the end of data on.
fn pump<A: Duplex, B: Duplex>(mut from: A, mut to: B) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        to.close_write();
    });
}

/// Connect `client` to the engine's socket, both ways. Returns the engine side, so a
/// caller can cut the connection.
fn splice<C: Duplex>(client: C) -> Option<UnixStream> {
    let upstream = UnixStream::connect("/var/run/docker.sock").ok()?;
    pump(client.dup().ok()?, upstream.dup().ok()?);
    pump(upstream.dup().ok()?, client);
    Some(upstream)
}

/// A unix-socket proxy in front of the engine's socket, to cut medic off from the engine
/// without touching the machine's daemon.
pub struct Proxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(path: &Path) -> Proxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let kept = client.try_clone();
                        if let (Some(upstream), Ok(client)) = (splice(client), kept)
                            && let Ok(mut all) = c.lock()
                        {
                            all.push(client);
                            all.push(upstream);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            path: path.to_path_buf(),
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// Close the socket and every connection through it, as if the daemon died.
    pub fn kill(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The numbered lines of a `loggen count` run: "PREFIX BOOT I stream".
pub fn numbered(lines: impl IntoIterator<Item = String>, prefix: &str) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| l.starts_with(&format!("{prefix} ")))
        .collect()
}

/// A TCP listener on loopback forwarding to the engine's unix socket, so medic can be
/// pointed at `tcp://127.0.0.1:PORT` (the transport that reads logs through bollard).
pub struct TcpBridge {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl TcpBridge {
    pub fn start() -> TcpBridge {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        splice(client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpBridge { port, stop }
    }
}

impl Drop for TcpBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
