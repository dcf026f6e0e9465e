//! Settings of the live sources (the `sources:` section of the configuration file).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::duration;

/// Every live source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Containers of the local Docker engine.
    pub docker: DockerConfig,
    /// Plain files to tail.
    pub files: Vec<FileConfig>,
    /// Read stdin as one more source.
    pub stdin: bool,
    /// Records buffered between the sources and the pipeline; beyond it sources wait.
    pub channel_capacity: usize,
    /// How often read positions are written to the state directory.
    #[serde(with = "duration")]
    pub checkpoint_interval: Duration,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            docker: DockerConfig::default(),
            files: Vec::new(),
            stdin: false,
            channel_capacity: 8192,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// How container logs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerMode {
    /// `GET /containers/{id}/logs?follow`: works with every log driver that supports reading.
    Api,
    /// Tail `<root>/<id>/<id>-json.log` directly (json-file driver, the root mounted in).
    JsonFile,
}

/// The Docker source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Follow the engine's containers.
    pub enabled: bool,
    /// Engine address; null means `DOCKER_HOST`, else the local unix socket.
    pub host: Option<String>,
    /// How logs are read.
    pub mode: DockerMode,
    /// Container name globs to read; empty means all.
    pub include: Vec<String>,
    /// Container name globs never to read.
    pub exclude: Vec<String>,
    /// Image globs to read; empty means all.
    pub include_images: Vec<String>,
    /// Image globs never to read.
    pub exclude_images: Vec<String>,
    /// Labels (`key` or `key=value`) a container must all have to be read.
    pub include_labels: Vec<String>,
    /// Labels (`key` or `key=value`) that exclude a container.
    pub exclude_labels: Vec<String>,
    /// Where to start a container with no checkpoint: this far back from now.
    #[serde(with = "duration")]
    pub lookback: Duration,
    /// Where the engine keeps json-file logs (`mode: json_file`).
    pub json_file_root: PathBuf,
    /// First wait before reconnecting to a lost engine; doubles up to `reconnect_max`.
    #[serde(with = "duration")]
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    #[serde(with = "duration")]
    pub reconnect_max: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            enabled: true,
            host: None,
            mode: DockerMode::Api,
            include: Vec::new(),
            exclude: Vec::new(),
            include_images: Vec::new(),
            exclude_images: Vec::new(),
            include_labels: Vec::new(),
            exclude_labels: Vec::new(),
            lookback: Duration::from_secs(300),
            json_file_root: PathBuf::from("/var/lib/docker/containers"),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Where a file with no checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// The first byte.
    #[default]
    Beginning,
    /// The current end: only lines written from now on.
    End,
}

/// One tailed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The path; rotation by rename-and-create and by copytruncate is followed.
    pub path: PathBuf,
    /// Service name for incidents; the file name when absent.
    #[serde(default)]
    pub service: Option<String>,
    /// Where to start without a checkpoint.
    #[serde(default)]
    pub read_from: ReadFrom,
}
