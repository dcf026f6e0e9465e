//! Which containers are read: name, image and label selectors, the `medic.enable` label,
//! and never medic's own container.

use std::collections::HashMap;

use crate::source::{DockerConfig, glob_match};

/// The compiled selectors.
#[derive(Debug, Clone)]
pub struct Selector {
    include: Vec<String>,
    exclude: Vec<String>,
    include_images: Vec<String>,
    exclude_images: Vec<String>,
    include_labels: Vec<(String, Option<String>)>,
    exclude_labels: Vec<(String, Option<String>)>,
    own_id: Option<String>,
}

fn label_pairs(v: &[String]) -> Vec<(String, Option<String>)> {
    v.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (l.clone(), None),
        })
        .collect()
}

fn has_label(labels: &HashMap<String, String>, (k, v): &(String, Option<String>)) -> bool {
    match (labels.get(k), v) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Selector {
    /// Selectors from the configuration; `own_id` is medic's own container, if any.
    pub fn new(cfg: &DockerConfig, own_id: Option<String>) -> Selector {
        Selector {
            include: cfg.include.clone(),
            exclude: cfg.exclude.clone(),
            include_images: cfg.include_images.clone(),
            exclude_images: cfg.exclude_images.clone(),
            include_labels: label_pairs(&cfg.include_labels),
            exclude_labels: label_pairs(&cfg.exclude_labels),
            own_id,
        }
    }

    /// Whether a container is read. Exclusion wins over inclusion.
    pub fn admits(
        &self,
        id: &str,
        name: &str,
        image: &str,
        labels: &HashMap<String, String>,
    ) -> bool {
        if self.own_id.as_deref().is_some_and(|own| own == id) {
            return false;
        }
        if labels
            .get("medic.enable")
            .is_some_and(|v| matches!(v.as_str(), "false" | "off" | "0" | "no"))
        {
            return false;
        }
        let any = |globs: &[String], s: &str| globs.iter().any(|g| glob_match(g, s));
        if any(&self.exclude, name) || any(&self.exclude_images, image) {
            return false;
        }
        if self.exclude_labels.iter().any(|l| has_label(labels, l)) {
            return false;
        }
        (self.include.is_empty() || any(&self.include, name))
            && (self.include_images.is_empty() || any(&self.include_images, image))
            && self.include_labels.iter().all(|l| has_label(labels, l))
    }
}

/// medic's own container id, when it runs in one: the 64-hex id Docker puts in the cgroup
/// and mount paths of its containers.
pub fn own_container_id() -> Option<String> {
    for file in ["/proc/self/cgroup", "/proc/self/mountinfo"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for marker in ["/docker/containers/", "/docker/", "docker-"] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
                if id.len() == 64 {
                    return Some(id);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let cfg = DockerConfig {
            include: vec!["web-*".into(), "db".into()],
            exclude: vec!["web-canary".into()],
            exclude_labels: vec!["tier=debug".into()],
            ..DockerConfig::default()
        };
        let s = Selector::new(&cfg, Some("self".into()));
        let none = labels(&[]);
        assert!(s.admits("1", "web-1", "nginx", &none));
        assert!(s.admits("2", "db", "postgres", &none));
        assert!(!s.admits("3", "api", "x", &none));
        assert!(!s.admits("4", "web-canary", "x", &none));
        assert!(!s.admits("self", "web-2", "x", &none));
        assert!(!s.admits("5", "web-3", "x", &labels(&[("tier", "debug")])));
        assert!(s.admits("6", "web-3", "x", &labels(&[("tier", "prod")])));
        assert!(!s.admits("7", "web-4", "x", &labels(&[("medic.enable", "false")])));
        let all = Selector::new(
            &DockerConfig {
                include_labels: vec!["team".into()],
                include_images: vec!["shop/*".into()],
                ..DockerConfig::default()
            },
            None,
        );
        assert!(all.admits("1", "a", "shop/cart:1", &labels(&[("team", "x")])));
        assert!(!all.admits("1", "a", "shop/cart:1", &none));
        assert!(!all.admits("1", "a", "other:1", &labels(&[("team", "x")])));
    }
}
