//! The incidents the API shows: the latest notification of each recent incident, bounded,
//! and a broadcast of every notification for live updates.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::event::Incident;

/// Recent incidents by id.
#[derive(Debug)]
pub struct Board {
    incidents: Mutex<HashMap<String, Incident>>,
    max: usize,
    live: broadcast::Sender<Incident>,
}

impl Board {
    /// A board keeping the `max` most recently updated incidents.
    pub fn new(max: usize) -> Board {
        Board {
            incidents: Mutex::new(HashMap::new()),
            max: max.max(1),
            live: broadcast::channel(1024).0,
        }
    }

    /// Take a notification: it replaces the incident's previous one and is broadcast.
    pub fn record(&self, inc: &Incident) {
        if let Ok(mut m) = self.incidents.lock() {
            m.insert(inc.id.clone(), inc.clone());
            if m.len() > self.max {
                // Forget the least recently updated; this runs only past the bound.
                if let Some(oldest) = m
                    .values()
                    .min_by_key(|i| i.last_seen_ms)
                    .map(|i| i.id.clone())
                {
                    m.remove(&oldest);
                }
            }
        }
        // No subscriber is fine.
        let _ = self.live.send(inc.clone());
    }

    /// Every incident, most recently seen first.
    pub fn list(&self) -> Vec<Incident> {
        let mut v: Vec<Incident> = self
            .incidents
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        v
    }

    /// One incident.
    pub fn get(&self, id: &str) -> Option<Incident> {
        self.incidents.lock().ok()?.get(id).cloned()
    }

    /// Live notifications from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Incident> {
        self.live.subscribe()
    }
}
