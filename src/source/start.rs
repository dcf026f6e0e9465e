//! Starting and stopping every configured live source around one bounded channel.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::docker::DockerSource;
use super::file::{self, Tail};
use super::{
    Framing, LineReader, Record, SourceInfo, SourceMsg, SourcesConfig, StartCursors, Stop,
};
use crate::event::{Origin, Stream};

/// The live sources, running.
#[derive(Debug)]
pub struct Running {
    shutdown: watch::Sender<bool>,
    threads: Stop,
    docker: Option<tokio::task::JoinHandle<()>>,
    /// Whether the Docker source is connected to the engine (false when it is disabled).
    pub docker_connected: Arc<std::sync::atomic::AtomicBool>,
}

/// The source info of a tailed file.
pub fn file_info(path: &Path, service: Option<String>) -> Arc<SourceInfo> {
    let name = path.display().to_string();
    Arc::new(SourceInfo {
        key: format!("file:{name}"),
        origin: Origin {
            kind: "file",
            service: Some(
                service
                    .unwrap_or_else(|| {
                        path.file_stem()
                            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned())
                    })
                    .into(),
            ),
            name: name.into(),
            ..Origin::default()
        },
        container_id: None,
        log_format: None,
        multiline: None,
    })
}

/// Start every enabled source on `rt`. Files and stdin get threads of their own. Returns
/// the handle to stop them and the receiving end of their channel.
pub fn start(
    cfg: &SourcesConfig,
    max_line_bytes: usize,
    start: StartCursors,
    rt: &tokio::runtime::Handle,
) -> (Running, mpsc::Receiver<SourceMsg>) {
    let (tx, rx) = mpsc::channel(cfg.channel_capacity.max(1));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let threads = Stop::default();
    let mut docker_connected = Arc::default();
    let docker = cfg.docker.enabled.then(|| {
        let src = DockerSource::new(
            cfg.docker.clone(),
            max_line_bytes,
            Arc::clone(&start),
            tx.clone(),
        );
        docker_connected = src.connected();
        rt.spawn(src.run(shutdown_rx))
    });
    for f in &cfg.files {
        let info = file_info(&f.path, f.service.clone());
        let tail = Tail {
            path: f.path.clone(),
            start: start.get(&info.key).copied(),
            info,
            read_from: f.read_from,
            max_line_bytes,
            poll: Duration::from_millis(100),
            docker_json: false,
            sent: None,
        };
        let (tx, stop) = (tx.clone(), threads.clone());
        std::thread::spawn(move || file::run(tail, tx, stop));
    }
    if cfg.stdin {
        let tx = tx.clone();
        std::thread::spawn(move || read_stdin(tx, max_line_bytes));
    }
    (
        Running {
            shutdown,
            threads,
            docker,
            docker_connected,
        },
        rx,
    )
}

impl Running {
    /// Ask every source to stop, and wait for the Docker source to let go of the channel.
    /// The receiver stays open so the consumer can drain what is queued.
    pub async fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        self.threads.stop();
        if let Some(d) = self.docker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), d).await;
        }
    }
}

/// Stdin as a source: lines until end of input. It cannot be resumed, so it has no cursor.
fn read_stdin(tx: super::Sender, max_line_bytes: usize) {
    let info = Arc::new(SourceInfo {
        key: "stdin".into(),
        origin: Origin {
            kind: "stdin",
            name: "stdin".into(),
            service: Some("stdin".into()),
            ..Origin::default()
        },
        container_id: None,
        log_format: None,
        multiline: None,
    });
    let mut reader = LineReader::new(std::io::stdin().lock(), max_line_bytes);
    loop {
        match reader.next_line() {
            Ok(Some((line, truncated))) => {
                let rec = Record {
                    source: Arc::clone(&info),
                    stream: Stream::Unknown,
                    time_ns: None,
                    line: line.to_vec(),
                    truncated,
                    framing: Framing::Line,
                    cursor: None,
                };
                if tx.blocking_send(SourceMsg::Record(rec)).is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "stdin read failed");
                break;
            }
        }
    }
    let _ = tx.blocking_send(SourceMsg::Closed(info));
}
