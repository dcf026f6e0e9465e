//! The Docker source: every container of the local engine, followed through the Engine API
//! (bollard) or by tailing its json-file log.
//!
//! A session connects, subscribes to container events *before* listing the running
//! containers (so no start is missed between the two), attaches every container that the
//! selectors admit, and then follows events: start, unpause and rename (re)attach, destroy
//! forgets the checkpoint. When the engine or the events stream goes away, every follower
//! is stopped and a new session starts after an exponential backoff. Followers resume from
//! the position of the last record they sent, so a reconnect neither loses nor repeats.

mod logs;
mod raw;
mod select;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;
use tokio::sync::watch;

pub use logs::{DockerLine, LineAssembler, split_timestamp};
pub use select::{Selector, own_container_id};

use super::SentPositions as Sent;
use super::file::{self, Tail};
use super::{
    DockerConfig, DockerMode, ReadFrom, Sender, SourceError, SourceInfo, SourceMsg, StartCursors,
    Stop,
};
use crate::event::Origin;

/// The Docker source.
#[derive(Debug)]
pub struct DockerSource {
    cfg: DockerConfig,
    selector: Selector,
    max_line_bytes: usize,
    start: StartCursors,
    sent: Sent,
    tx: Sender,
    connected: Arc<std::sync::atomic::AtomicBool>,
}

enum Follower {
    Task(tokio::task::JoinHandle<()>),
    Thread(Stop, std::thread::JoinHandle<()>),
}

impl Follower {
    /// Stop and wait until it is gone, so the position it last published is final before a
    /// successor reads it.
    async fn stop(self) {
        match self {
            Follower::Task(h) => {
                h.abort();
                let _ = h.await;
            }
            Follower::Thread(s, h) => {
                s.stop();
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        }
    }

    fn finished(&self) -> bool {
        match self {
            Follower::Task(h) => h.is_finished(),
            Follower::Thread(_, h) => h.is_finished(),
        }
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Connect to `host`, or to `DOCKER_HOST`, or to the local socket, at the highest API
/// version both sides speak.
pub async fn connect(host: Option<&str>) -> Result<Docker, SourceError> {
    let docker = match host {
        Some(h) => Docker::connect_with_host(h),
        None => Docker::connect_with_defaults(),
    }
    .map_err(|e| SourceError::Docker(format!("cannot connect: {e}")))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| SourceError::Docker(format!("cannot reach the engine: {e}")))
}

impl DockerSource {
    /// A source that sends into `tx`, starting containers at their stored positions.
    pub fn new(
        cfg: DockerConfig,
        max_line_bytes: usize,
        start: StartCursors,
        tx: Sender,
    ) -> DockerSource {
        let selector = Selector::new(&cfg, own_container_id());
        DockerSource {
            cfg,
            selector,
            max_line_bytes,
            start,
            sent: Arc::default(),
            tx,
            connected: Arc::default(),
        }
    }

    /// Whether a session with the engine is up now (for readiness).
    pub fn connected(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.connected)
    }

    /// Follow the engine until `shutdown` turns true, reconnecting whenever it is lost.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = self.cfg.reconnect_min;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut followers = HashMap::new();
            let started = tokio::time::Instant::now();
            let ended = self.session(&mut shutdown, &mut followers).await;
            self.connected
                .store(false, std::sync::atomic::Ordering::Relaxed);
            for (_, f) in followers.drain() {
                f.stop().await;
            }
            match ended {
                Ended::Shutdown => return,
                Ended::Lost(why) => {
                    // A session that lasted resets the backoff: this is a new outage.
                    if started.elapsed() > self.cfg.reconnect_max {
                        backoff = self.cfg.reconnect_min;
                    }
                    tracing::warn!(reason = %why, retry_in = ?backoff, "docker engine lost; reconnecting");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(self.cfg.reconnect_max);
        }
    }

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        followers: &mut HashMap<String, Follower>,
    ) -> Ended {
        let docker = match connect(self.cfg.host.as_deref()).await {
            Ok(d) => d,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..EventsOptions::default()
        }));
        let running = match docker
            .list_containers(Some(ListContainersOptions {
                all: false,
                ..ListContainersOptions::default()
            }))
            .await
        {
            Ok(l) => l,
            Err(e) => return Ended::Lost(format!("cannot list containers: {e}")),
        };
        tracing::info!(containers = running.len(), "connected to the docker engine");
        self.connected
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.forget_removed(&docker).await;
        for c in running {
            if let Some(id) = c.id {
                self.attach(&docker, &id, followers, false).await;
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ended::Shutdown,
                ev = events.next() => match ev {
                    None => return Ended::Lost("the events stream ended".into()),
                    Some(Err(e)) => return Ended::Lost(format!("events stream: {e}")),
                    Some(Ok(msg)) => {
                        let action = msg.action.as_deref().unwrap_or("");
                        let Some(id) = msg.actor.and_then(|a| a.id) else { continue };
                        match action {
                            // A follower of the previous run may still be draining its
                            // stream: replace it, so the new run is surely followed.
                            "start" | "restart" | "rename" => {
                                self.attach(&docker, &id, followers, true).await;
                            }
                            "unpause" => self.attach(&docker, &id, followers, false).await,
                            "destroy" => {
                                if let Some(f) = followers.remove(&id) {
                                    f.stop().await;
                                }
                                let key = key_of(&id);
                                if let Ok(mut s) = self.sent.lock() {
                                    s.remove(&key);
                                }
                                if self.tx.send(SourceMsg::Forget(key)).await.is_err() {
                                    return Ended::Shutdown;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Drop the checkpoints of containers removed while medic was away, so the state file
    /// does not grow with every container the host ever ran.
    async fn forget_removed(&self, docker: &Docker) {
        let Ok(all) = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..ListContainersOptions::default()
            }))
            .await
        else {
            return;
        };
        let exist: std::collections::HashSet<String> = all
            .into_iter()
            .filter_map(|c| c.id)
            .map(|id| key_of(&id))
            .collect();
        for key in self.start.keys() {
            if key.starts_with("docker:") && !exist.contains(key) {
                let _ = self.tx.send(SourceMsg::Forget(key.clone())).await;
            }
        }
    }

    /// Start following one container unless it is already followed (or `again`: restart
    /// the follower, after a rename) or the selectors exclude it.
    async fn attach(
        &self,
        docker: &Docker,
        id: &str,
        followers: &mut HashMap<String, Follower>,
        again: bool,
    ) {
        if let Some(f) = followers.get(id)
            && !again
            && !f.finished()
        {
            return;
        }
        let c = match docker.inspect_container(id, None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(container = id, error = %e, "cannot inspect");
                return;
            }
        };
        let name = c
            .name
            .as_deref()
            .unwrap_or(id)
            .trim_start_matches('/')
            .to_string();
        let config = c.config.unwrap_or_default();
        let image = config.image.unwrap_or_default();
        let labels: HashMap<String, String> = config.labels.unwrap_or_default();
        if !self.selector.admits(id, &name, &image, &labels) {
            tracing::debug!(container = %name, "excluded by the selectors");
            return;
        }
        if let Some(f) = followers.remove(id) {
            f.stop().await;
        }
        let mut sorted: Vec<(String, String)> = labels.clone().into_iter().collect();
        sorted.sort();
        let info = Arc::new(SourceInfo {
            key: key_of(id),
            origin: Origin {
                kind: "docker",
                service: Some(
                    labels
                        .get("medic.service")
                        .map_or_else(|| name.as_str().into(), |s| s.as_str().into()),
                ),
                name: name.as_str().into(),
                image: Some(image),
                labels: sorted,
            },
            container_id: Some(id.to_string()),
            log_format: labels.get("medic.log-format").cloned(),
            multiline: labels
                .get("medic.multiline")
                .map(|v| !matches!(v.as_str(), "false" | "off" | "0" | "no")),
        });
        let resume = self
            .sent
            .lock()
            .ok()
            .and_then(|s| s.get(&info.key).copied())
            .or_else(|| self.start.get(&info.key).copied());
        tracing::info!(container = %name, resume = ?resume, "following");
        let follower = match self.cfg.mode {
            DockerMode::Api if raw::unix_socket(self.cfg.host.as_deref()).is_some() => {
                let v = docker.client_version();
                let stop = Stop::default();
                let job = raw::RawFollow {
                    socket: raw::unix_socket(self.cfg.host.as_deref()).unwrap_or_default(),
                    api_version: format!("{}.{}", v.major_version, v.minor_version),
                    info,
                    resume,
                    since: logs::since_secs(resume, self.cfg.lookback),
                    max_line_bytes: self.max_line_bytes,
                    tx: self.tx.clone(),
                    sent: Arc::clone(&self.sent),
                    stop: stop.clone(),
                };
                Follower::Thread(stop, std::thread::spawn(move || job.run()))
            }
            DockerMode::Api => {
                let tty = config.tty.unwrap_or(false);
                let job = logs::Follow {
                    docker: docker.clone(),
                    info,
                    resume,
                    lookback: self.cfg.lookback,
                    tty,
                    max_line_bytes: self.max_line_bytes,
                    tx: self.tx.clone(),
                    sent: Arc::clone(&self.sent),
                };
                Follower::Task(tokio::spawn(job.run()))
            }
            DockerMode::JsonFile => {
                let path = self
                    .cfg
                    .json_file_root
                    .join(id)
                    .join(format!("{id}-json.log"));
                let stop = Stop::default();
                let tail = Tail {
                    path,
                    info,
                    start: resume,
                    read_from: ReadFrom::Beginning,
                    max_line_bytes: self.max_line_bytes,
                    poll: Duration::from_millis(100),
                    docker_json: true,
                    sent: Some(Arc::clone(&self.sent)),
                };
                let tx = self.tx.clone();
                let s = stop.clone();
                Follower::Thread(stop, std::thread::spawn(move || file::run(tail, tx, s)))
            }
        };
        followers.insert(id.to_string(), follower);
    }
}

/// The checkpoint key of a container.
pub fn key_of(id: &str) -> String {
    format!("docker:{id}")
}
