//! The incidents the API shows: the latest notification of each recent incident with its
//! recent counts (for sparklines), bounded, and a broadcast of every notification for live
//! updates.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::event::Incident;

/// (last seen ms, count) points of one incident, oldest first.
type Counts = VecDeque<(u64, u64)>;

/// Recent incidents by id.
#[derive(Debug)]
pub struct Board {
    incidents: Mutex<HashMap<String, (Incident, Counts)>>,
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

    /// Count points kept per incident.
    pub const HISTORY: usize = 32;

    /// Take a notification: it replaces the incident's previous one, adds a (last seen,
    /// count) point to its history, and is broadcast.
    pub fn record(&self, inc: &Incident) {
        if let Ok(mut m) = self.incidents.lock() {
            let e = m
                .entry(inc.id.clone())
                .or_insert_with(|| (inc.clone(), VecDeque::new()));
            e.0 = inc.clone();
            if e.1.len() == Self::HISTORY {
                e.1.pop_front();
            }
            e.1.push_back((inc.last_seen_ms, inc.count));
            if m.len() > self.max {
                // Forget the least recently updated; this runs only past the bound.
                if let Some(oldest) = m
                    .values()
                    .min_by_key(|(i, _)| i.last_seen_ms)
                    .map(|(i, _)| i.id.clone())
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
            .map(|m| m.values().map(|(i, _)| i.clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        v
    }

    /// One incident.
    pub fn get(&self, id: &str) -> Option<Incident> {
        self.incidents.lock().ok()?.get(id).map(|(i, _)| i.clone())
    }

    /// An incident's recent (last seen ms, count) points, oldest first.
    pub fn history(&self, id: &str) -> Vec<(u64, u64)> {
        self.incidents
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|(_, h)| h.iter().copied().collect()))
            .unwrap_or_default()
    }

    /// Live notifications from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Incident> {
        self.live.subscribe()
    }
}
