//! Online template mining.
//!
//! 1. **Shape.** Each message is tokenized and masked ([`super::mask`]); its *skeleton* is
//!    the token sequence with variables replaced. A hash map from skeleton hash to cluster
//!    is the fast path: in the steady state a line costs one tokenize, one hash and one
//!    lookup.
//! 2. **Cardinality.** A new skeleton is compared with the clusters of its bucket (same
//!    token count and same first word: the first word is never generalised, as in Drain).
//!    A cluster *covers* it when every constant position agrees. Otherwise clusters that
//!    differ from it in exactly one constant position are its siblings at that position,
//!    and the position becomes a variable when it takes a typed variable in one line and
//!    a word in another, or when it has taken [`MinerConfig::min_distinct`] distinct
//!    words, so user and host names merge while templates differing by one fixed word of
//!    two values stay apart. Generalising never leaves fewer than
//!    [`MinerConfig::min_constant_words`] constant words.
//!
//! Merged clusters point at their root; every id ever handed out resolves to its current
//! root in O(1). Memory is bounded: past [`MinerConfig::max_templates`] live templates the
//! least recently used ones are evicted (and counted), with generation-checked ids so a
//! stale id never resolves to a reused slot.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::mask::{self, Token};
use crate::event::Fingerprint;

/// The masking and mining version, folded into every fingerprint: bump it when a change
/// would give a different template for the same line.
pub const TEMPLATE_VERSION: u32 = 1;

/// The per-position hash of a variable.
const VAR: u64 = 0x9e37_79b9_7f4a_7c15;

/// Miner settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Live templates kept at most; the least recently used are evicted beyond it.
    pub max_templates: usize,
    /// Distinct words a position must take before it becomes a variable.
    pub min_distinct: usize,
    /// Constant words a template must keep when a position is generalised.
    pub min_constant_words: usize,
    /// Clusters compared per bucket on the slow path; bounds the cost of a flood of new
    /// templates with the same length and first word.
    pub max_bucket_scan: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            max_templates: 20_000,
            min_distinct: 3,
            min_constant_words: 3,
            max_bucket_scan: 2_000,
        }
    }
}

/// A handle to a cluster: slot plus generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterId {
    slot: u32,
    generation: u32,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    /// Root slot (itself when a root). Always a root: merges repoint every child.
    root: u32,
    /// What every line of a live root reads or bumps, kept in the slot rather than behind
    /// `data`: the steady state then touches the skeleton cache and one slot, not a third,
    /// scattered allocation as well.
    hot: Hot,
    /// Present only on live roots.
    data: Option<Box<ClusterData>>,
}

/// The per-line fields of a live root.
#[derive(Debug, Clone, Copy)]
struct Hot {
    fingerprint: Fingerprint,
    bucket: u64,
    last_used: u64,
    count: u64,
}

impl Default for Hot {
    fn default() -> Self {
        Hot {
            fingerprint: Fingerprint(0),
            bucket: 0,
            last_used: 0,
            count: 0,
        }
    }
}

#[derive(Debug)]
struct ClusterData {
    tpl: Vec<u64>,
    rep_text: Box<str>,
    rep_spans: Box<[(u32, u32)]>,
    /// Shared: every hit of the template carries it.
    template: Arc<str>,
    children: Vec<u32>,
}

/// What the miner says about one message.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// The cluster the line belongs to (stable for its lifetime; resolve it later with
    /// [`Miner::template_of`] to get the final template).
    pub cluster: ClusterId,
    /// The cluster's current fingerprint.
    pub fingerprint: Fingerprint,
    /// Whether this line created a new template.
    pub new_template: bool,
    /// A shard key that survives template merges: merges only happen within a bucket.
    pub route: u64,
}

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Keys are already xxh3 hashes; only u64 writes happen.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Counters of the miner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinerStats {
    /// Messages observed.
    pub lines: u64,
    /// Lines that missed the skeleton cache.
    pub slow_path: u64,
    /// Templates created.
    pub created: u64,
    /// Templates merged into another by generalisation.
    pub merged: u64,
    /// Templates evicted by the cap.
    pub evicted: u64,
}

/// The online template miner.
pub struct Miner {
    cfg: MinerConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    buckets: IdMap<Vec<u32>>,
    cache: IdMap<ClusterId>,
    tokens: Vec<Token>,
    skeleton: Vec<u8>,
    /// The message with padding, for [`Miner::skeleton_hash`].
    padded: Vec<u8>,
    hashes: Vec<u64>,
    tick: u64,
    stats: MinerStats,
    /// Fingerprints retired by merges since the last `take_merges`: (old, new).
    merges: Vec<(Fingerprint, Fingerprint)>,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Miner")
            .field("live", &self.live)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Miner {
    /// A miner with the given settings (zero values are raised to 1).
    pub fn new(mut cfg: MinerConfig) -> Miner {
        cfg.max_templates = cfg.max_templates.max(1);
        cfg.min_distinct = cfg.min_distinct.max(2);
        cfg.max_bucket_scan = cfg.max_bucket_scan.max(1);
        Miner {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            buckets: IdMap::default(),
            cache: IdMap::default(),
            tokens: Vec::with_capacity(64),
            skeleton: Vec::with_capacity(256),
            padded: Vec::with_capacity(256),
            hashes: Vec::with_capacity(64),
            tick: 0,
            stats: MinerStats::default(),
            merges: Vec::new(),
        }
    }

    /// Move the (old, new) fingerprint pairs of merges since the last call into `out`.
    /// Downstream state keyed by an old fingerprint should follow it to the new one.
    pub fn take_merges(&mut self, out: &mut Vec<(Fingerprint, Fingerprint)>) {
        out.append(&mut self.merges);
    }

    /// Counters so far.
    pub fn stats(&self) -> &MinerStats {
        &self.stats
    }

    /// Live templates.
    pub fn live_templates(&self) -> usize {
        self.live
    }

    /// The `n` live templates with the most lines: (template, fingerprint, lines).
    pub fn top(&self, n: usize) -> Vec<(String, Fingerprint, u64)> {
        let mut all: Vec<(&ClusterData, Hot)> = self
            .slots
            .iter()
            .filter_map(|s| s.data.as_deref().map(|d| (d, s.hot)))
            .collect();
        let n = n.min(all.len());
        if n == 0 {
            return Vec::new();
        }
        all.select_nth_unstable_by(n - 1, |a, b| b.1.count.cmp(&a.1.count));
        all.truncate(n);
        all.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then(a.0.template.cmp(&b.0.template))
        });
        all.into_iter()
            .map(|(d, h)| (d.template.to_string(), h.fingerprint, h.count))
            .collect()
    }

    /// Observe one message.
    pub fn observe(&mut self, msg: &str) -> Observation {
        self.tick += 1;
        self.stats.lines += 1;
        mask::tokenize(msg, &mut self.tokens);
        let key = self.skeleton_hash(msg);
        if let Some(&id) = self.cache.get(&key) {
            if let Some(root) = self.resolve(id) {
                let h = &mut self.slots[root as usize].hot;
                h.last_used = self.tick;
                h.count += 1;
                return Observation {
                    cluster: id,
                    fingerprint: h.fingerprint,
                    new_template: false,
                    route: h.bucket,
                };
            }
            self.cache.remove(&key);
        }
        self.stats.slow_path += 1;
        let (id, new_template) = self.slow_path(msg);
        if self.cache.len() >= self.cfg.max_templates.saturating_mul(4) {
            // A cache, not state: the clusters themselves still cover every skeleton.
            self.cache.clear();
        }
        self.cache.insert(key, id);
        let (fingerprint, route) = self.resolve(id).map_or((Fingerprint(0), 0), |root| {
            let h = &self.slots[root as usize].hot;
            (h.fingerprint, h.bucket)
        });
        if self.live > self.cfg.max_templates {
            self.evict();
        }
        Observation {
            cluster: id,
            fingerprint,
            new_template,
            route,
        }
    }

    /// The current template and fingerprint of a cluster, or `None` if it was evicted.
    pub fn template_of(&self, id: ClusterId) -> Option<(&str, Fingerprint)> {
        let root = self.resolve(id)?;
        let s = &self.slots[root as usize];
        s.data.as_deref().map(|d| (&*d.template, s.hot.fingerprint))
    }

    /// [`Miner::template_of`], shared rather than borrowed.
    pub fn shared_template_of(&self, id: ClusterId) -> Option<Arc<str>> {
        self.data_of(id).map(|d| Arc::clone(&d.template))
    }

    /// The live cluster an id resolves to.
    fn data_of(&self, id: ClusterId) -> Option<&ClusterData> {
        let root = self.resolve(id)?;
        self.slots[root as usize].data.as_deref()
    }

    fn resolve(&self, id: ClusterId) -> Option<u32> {
        let s = self.slots.get(id.slot as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let root = s.root;
        self.slots[root as usize].data.as_ref().map(|_| root)
    }

    fn skeleton_hash(&mut self, msg: &str) -> u64 {
        let b = msg.as_bytes();
        // The message, 16 zeros, then a variable's mark: every token and the mark can be
        // copied as one fixed 16-byte chunk (the bytes past it are overwritten next or lie
        // past the end), and which of the two is copied is a choice of offset, not a branch:
        // whether a token is a variable is as hard to predict as the text.
        let mark = b.len() + 16;
        self.padded.clear();
        self.padded.extend_from_slice(b);
        self.padded.resize(mark + 16, 0);
        self.padded[mark] = 0x01;
        // Every token takes at most its length plus a separator, a variable two bytes.
        let room = b.len() + 2 * self.tokens.len() + 16;
        if self.skeleton.len() < room {
            self.skeleton.resize(room, 0);
        }
        let (out, src) = (&mut self.skeleton, &self.padded);
        let mut w = 0;
        for t in &self.tokens {
            let (start, len) = if t.var {
                (mark, 1)
            } else {
                (t.start as usize, (t.end - t.start) as usize)
            };
            out[w..w + 16].copy_from_slice(&src[start..start + 16]);
            if len > 16 {
                out[w + 16..w + len].copy_from_slice(&src[start + 16..start + len]);
            }
            w += len;
            out[w] = 0x00;
            w += 1;
        }
        xxh3_64(&out[..w])
    }

    fn slow_path(&mut self, msg: &str) -> (ClusterId, bool) {
        let b = msg.as_bytes();
        self.hashes.clear();
        self.hashes.extend(self.tokens.iter().map(|t| {
            if t.var {
                VAR
            } else {
                xxh3_64(&b[t.start as usize..t.end as usize])
            }
        }));
        let words: Vec<usize> = (0..self.tokens.len())
            .filter(|&i| mask::is_word(b, self.tokens[i]))
            .collect();
        // The bucket's first word is never generalised, so it must be a word that names the
        // event: a package- or host-like name (`com.apple.cache.daily`) is a value, and is
        // left to cardinality like any other position.
        let first_word = words
            .iter()
            .copied()
            .find(|&i| {
                let t = self.tokens[i];
                b[t.start as usize..t.end as usize]
                    .iter()
                    .filter(|c| **c == b'.')
                    .count()
                    < 2
            })
            .or(words.first().copied());
        let bucket = {
            let fw = first_word.map_or(0, |i| self.hashes[i]);
            let pos = first_word.map_or(u64::MAX, |i| i as u64);
            xxh3_64(
                &[self.hashes.len() as u64, pos, fw]
                    .map(u64::to_le_bytes)
                    .concat(),
            )
        };

        // Covering cluster (most constants wins) and one-mismatch siblings by position.
        let mut best: Option<(usize, u32)> = None;
        let mut near: Vec<(usize, u32)> = Vec::new();
        if let Some(list) = self.buckets.get(&bucket) {
            for &slot in list.iter().rev().take(self.cfg.max_bucket_scan) {
                let Some(d) = self.slots[slot as usize].data.as_deref() else {
                    continue;
                };
                let mut mismatch = None;
                let mut n_mismatch = 0;
                let mut constants = 0;
                for (i, (&t, &s)) in d.tpl.iter().zip(&self.hashes).enumerate() {
                    if t == VAR {
                        continue;
                    }
                    constants += 1;
                    if t != s {
                        n_mismatch += 1;
                        mismatch = Some(i);
                        if n_mismatch > 1 {
                            break;
                        }
                    }
                }
                match (n_mismatch, mismatch) {
                    (0, _) if best.is_none_or(|(c, _)| constants > c) => {
                        best = Some((constants, slot));
                    }
                    (1, Some(p)) => near.push((p, slot)),
                    _ => {}
                }
            }
        }
        if let Some((_, slot)) = best {
            let h = &mut self.slots[slot as usize].hot;
            h.last_used = self.tick;
            h.count += 1;
            let generation = self.slots[slot as usize].generation;
            return (ClusterId { slot, generation }, false);
        }

        let id = self.create(msg, bucket);
        self.stats.created += 1;
        near.sort_unstable();
        let mut i = 0;
        while i < near.len() {
            let p = near[i].0;
            let j = near[i..]
                .iter()
                .position(|n| n.0 != p)
                .map_or(near.len(), |k| i + k);
            let siblings: Vec<u32> = near[i..j].iter().map(|n| n.1).collect();
            i = j;
            self.maybe_generalise(id.slot, p, &siblings, &words);
        }
        (id, true)
    }

    /// Generalise position `p` of the new cluster `slot` with its one-mismatch siblings
    /// there, when the shape or the number of distinct words says it is a variable.
    fn maybe_generalise(&mut self, slot: u32, p: usize, siblings: &[u32], words: &[usize]) {
        let live: Vec<u32> = siblings
            .iter()
            .copied()
            .filter(|&s| {
                s != slot
                    && self.slots[s as usize].data.is_some()
                    && self.slots[s as usize].root == s
            })
            .collect();
        if live.is_empty() {
            return;
        }
        let Some(me) = self.slots[slot as usize].data.as_deref() else {
            return;
        };
        // Constant words that would survive the merge.
        let remaining = words
            .iter()
            .filter(|&&w| w != p && me.tpl[w] != VAR)
            .filter(|&&w| {
                live.iter().all(|&s| {
                    self.slots[s as usize]
                        .data
                        .as_deref()
                        .is_some_and(|d| d.tpl[w] == me.tpl[w])
                })
            })
            .count();
        if remaining < self.cfg.min_constant_words {
            return;
        }
        let typed = me.tpl[p] == VAR;
        if !typed && live.len() + 1 < self.cfg.min_distinct {
            return;
        }
        // Merge: the new cluster becomes the root of its siblings.
        let mut tpl = me.tpl.clone();
        tpl[p] = VAR;
        let mut children = Vec::new();
        let mut retired = Vec::new();
        let mut absorbed = 0;
        for &s in &live {
            let Some(d) = self.slots[s as usize].data.take() else {
                continue;
            };
            let h = self.slots[s as usize].hot;
            retired.push(h.fingerprint);
            absorbed += h.count;
            for (t, o) in tpl.iter_mut().zip(&d.tpl) {
                if *t != *o {
                    *t = VAR;
                }
            }
            if let Some(list) = self.buckets.get_mut(&h.bucket) {
                list.retain(|&x| x != s);
            }
            children.push(s);
            children.extend_from_slice(&d.children);
            self.live -= 1;
            self.stats.merged += 1;
        }
        for &c in &children {
            self.slots[c as usize].root = slot;
        }
        let tick = self.tick;
        let root = &mut self.slots[slot as usize];
        if let Some(me) = root.data.as_deref_mut() {
            me.tpl = tpl;
            me.children.extend(children);
            root.hot.last_used = tick;
            root.hot.count += absorbed;
            root.hot.fingerprint = render(me);
            let new = root.hot.fingerprint;
            self.merges.extend(
                retired
                    .into_iter()
                    .filter(|old| *old != new)
                    .map(|old| (old, new)),
            );
        }
    }

    fn create(&mut self, msg: &str, bucket: u64) -> ClusterId {
        let mut d = ClusterData {
            tpl: self.hashes.clone(),
            rep_text: msg.into(),
            rep_spans: self.tokens.iter().map(|t| (t.start, t.end)).collect(),
            template: "".into(),
            children: Vec::new(),
        };
        let hot = Hot {
            fingerprint: render(&mut d),
            bucket,
            last_used: self.tick,
            count: 1,
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.root = slot;
        s.hot = hot;
        s.data = Some(Box::new(d));
        self.buckets.entry(bucket).or_default().push(slot);
        self.live += 1;
        ClusterId {
            slot,
            generation: s.generation,
        }
    }

    /// Evict the least recently used tenth of the live templates (at least one): sorting
    /// once per batch keeps eviction amortised O(log n) per template.
    fn evict(&mut self) {
        let mut roots: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.data
                    .as_deref()
                    .filter(|_| s.root == i as u32)
                    .map(|_| (s.hot.last_used, i as u32))
            })
            .collect();
        roots.sort_unstable();
        let n = (self.cfg.max_templates / 10).max(1).min(roots.len());
        for &(_, slot) in &roots[..n] {
            let Some(d) = self.slots[slot as usize].data.take() else {
                continue;
            };
            let bucket = self.slots[slot as usize].hot.bucket;
            if let Some(list) = self.buckets.get_mut(&bucket) {
                list.retain(|&x| x != slot);
                if list.is_empty() {
                    self.buckets.remove(&bucket);
                }
            }
            for c in d.children.iter().copied().chain(std::iter::once(slot)) {
                let s = &mut self.slots[c as usize];
                s.generation = s.generation.wrapping_add(1);
                s.root = c;
                self.free.push(c);
            }
            self.live -= 1;
            self.stats.evicted += 1;
        }
    }
}

/// Render the template from the representative line: the original text with variable
/// positions replaced by `<*>`; returns its fingerprint over whitespace-normalised text.
fn render(d: &mut ClusterData) -> Fingerprint {
    let text = &*d.rep_text;
    let mut out = String::with_capacity(text.len());
    let mut last = 0usize;
    for (&(s, e), &t) in d.rep_spans.iter().zip(&d.tpl) {
        let (s, e) = (s as usize, e as usize);
        out.push_str(&text[last..s]);
        if t == VAR {
            out.push_str("<*>");
        } else {
            out.push_str(&text[s..e]);
        }
        last = e;
    }
    out.push_str(&text[last..]);
    let fingerprint = fingerprint_of(&out);
    d.template = out.into();
    fingerprint
}

/// The fingerprint of a template text: xxh3 over the version and the text with whitespace
/// runs collapsed, so the same template gives the same fingerprint on every host.
pub fn fingerprint_of(template: &str) -> Fingerprint {
    let mut norm = Vec::with_capacity(template.len() + 8);
    norm.extend_from_slice(b"medic-template-v");
    norm.extend_from_slice(TEMPLATE_VERSION.to_string().as_bytes());
    norm.push(0);
    for (i, w) in template.split_whitespace().enumerate() {
        if i > 0 {
            norm.push(b' ');
        }
        norm.extend_from_slice(w.as_bytes());
    }
    Fingerprint(xxh3_64(&norm))
}
