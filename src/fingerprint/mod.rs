//! Fingerprint: one bug, one fingerprint.
//!
//! Owns tokenizing and masking ([`mask`]), online template mining ([`Miner`]) and stack-trace
//! signatures ([`stack`]). A fingerprint is a stable 64-bit hash of the template text and
//! [`TEMPLATE_VERSION`], identical across restarts and hosts for the same template.
//!
//! The seam is [`Fingerprinter::fingerprint`]: events with a stack trace are identified by
//! exception type and top in-app frames; all others by their mined message template.

pub mod mask;
mod miner;
pub mod stack;
#[cfg(test)]
mod tests;

pub use miner::{
    ClusterId, Miner, MinerConfig, MinerStats, Observation, TEMPLATE_VERSION, fingerprint_of,
};

use std::sync::Arc;

use crate::event::{Event, Fingerprint};

/// The fingerprint of one event.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprinted {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// The mined cluster, when the message was mined (not for stack traces).
    pub cluster: Option<ClusterId>,
    /// Whether this event created a new template.
    pub new_template: bool,
    /// Shard key for downstream state: stable when templates merge.
    pub route: u64,
}

/// The fingerprint stage: a miner plus stack-trace signatures.
#[derive(Debug)]
pub struct Fingerprinter {
    miner: Miner,
    stack_traces: u64,
}

impl Fingerprinter {
    /// A fingerprinter with the given miner settings.
    pub fn new(cfg: MinerConfig) -> Fingerprinter {
        Fingerprinter {
            miner: Miner::new(cfg),
            stack_traces: 0,
        }
    }

    /// The miner (for templates and counters).
    pub fn miner(&self) -> &Miner {
        &self.miner
    }

    /// Events identified by their stack trace so far.
    pub fn stack_traces(&self) -> u64 {
        self.stack_traces
    }

    /// Fingerprint one event.
    pub fn fingerprint(&mut self, ev: &Event) -> Fingerprinted {
        if (ev.lines > 1 || !ev.stack.is_empty())
            && let Some(sig) = stack::signature(&ev.text)
        {
            self.stack_traces += 1;
            let fingerprint = sig.fingerprint();
            return Fingerprinted {
                fingerprint,
                cluster: None,
                new_template: false,
                // Stack signatures never merge: their fingerprint is their route.
                route: fingerprint.0,
            };
        }
        let o = self.miner.observe(ev.message());
        Fingerprinted {
            fingerprint: o.fingerprint,
            cluster: Some(o.cluster),
            new_template: o.new_template,
            route: o.route,
        }
    }

    /// Move the (old, new) fingerprint pairs of template merges since the last call into
    /// `out`.
    pub fn take_merges(&mut self, out: &mut Vec<(Fingerprint, Fingerprint)>) {
        self.miner.take_merges(out);
    }

    /// [`Fingerprinter::template`], shared: a mined template is not copied.
    pub fn shared_template(&self, ev: &Event, f: &Fingerprinted) -> Arc<str> {
        match f.cluster.and_then(|c| self.miner.shared_template_of(c)) {
            Some(t) => t,
            None => self.template(ev, f).into(),
        }
    }

    /// The template text of a fingerprinted event, as of now.
    pub fn template(&self, ev: &Event, f: &Fingerprinted) -> String {
        match f.cluster {
            Some(c) => self
                .miner
                .template_of(c)
                .map(|(t, _)| t.to_string())
                .unwrap_or_else(|| ev.message().to_string()),
            None => stack::signature(&ev.text)
                .map_or_else(|| ev.message().to_string(), |s| s.template()),
        }
    }
}
