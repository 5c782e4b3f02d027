//! Subscription tries: the prefixes a SUB has subscribed to ([`Trie`]),
//! and the subscribers of each prefix on a PUB ([`MTrie`]).
//!
//! Both sit on one radix tree ([`Radix`]): each edge carries a run of
//! bytes rather than one byte, so a prefix costs about its own length once
//! plus one node per branch point, and a megabyte-long prefix is one node,
//! not a million. Children are a sorted `Vec` keyed by their first byte and
//! found by binary search (at most eight probes for 256 children), which
//! keeps sparse nodes, by far the common case, small.
//!
//! Topics and prefixes come from the network and can be megabytes long, so
//! no operation recurses: lookups walk down in a loop, enumeration keeps
//! its own stack, and dropping a tree unlinks it node by node. A node whose
//! prefix loses its last subscription is removed, and a node left with one
//! child and nothing of its own is merged into that child, so memory
//! follows the subscriptions down as well as up.
//!
//! Matching a topic walks the one path the topic spells, so it costs the
//! topic's length plus the subscriptions found on the way, whatever the
//! number of subscriptions or subscribers held.

use super::PipeId;
use crate::id_map::{IdMap, IdSet};
use bytes::Bytes;
use std::collections::HashSet;
use std::fmt;

/// What a node holds for the prefix that ends at it. The default value
/// means "no subscription here".
trait Payload: Default {
    fn is_empty(&self) -> bool;
}

struct Node<V> {
    /// The bytes between the parent and this node; empty only at the root.
    label: Box<[u8]>,
    value: V,
    /// Sorted by first label byte, which is unique among siblings (two
    /// children sharing a first byte would have been split at their common
    /// part).
    children: Vec<(u8, Box<Node<V>>)>,
}

impl<V: Payload> Node<V> {
    fn new(label: &[u8]) -> Box<Node<V>> {
        Box::new(Node {
            label: label.into(),
            value: V::default(),
            children: Vec::new(),
        })
    }

    fn child_index(&self, byte: u8) -> Result<usize, usize> {
        self.children.binary_search_by_key(&byte, |(b, _)| *b)
    }

    fn child(&self, byte: u8) -> Option<&Node<V>> {
        let i = self.child_index(byte).ok()?;
        Some(&self.children[i].1)
    }

    /// Absorbs the only child: its label is appended to ours and its value
    /// and children become ours. Keeps the tree free of nodes that neither
    /// hold a value nor branch.
    fn merge_only_child(&mut self) {
        let Some((_, mut child)) = self.children.pop() else {
            return;
        };
        let mut label = Vec::with_capacity(self.label.len() + child.label.len());
        label.extend_from_slice(&self.label);
        label.extend_from_slice(&child.label);
        self.label = label.into_boxed_slice();
        self.value = std::mem::take(&mut child.value);
        self.children = std::mem::take(&mut child.children);
    }

    /// Gives back a children vector that emptied out after a burst.
    fn shrink_children(&mut self) {
        if self.children.capacity() > 2 * self.children.len() + 4 {
            self.children.shrink_to_fit();
        }
    }
}

impl<V> Drop for Node<V> {
    /// The derived drop would recurse once per level; a tree built from
    /// peer-chosen prefixes can be deep enough to overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some((_, mut node)) = stack.pop() {
            stack.append(&mut node.children);
        }
    }
}

/// A radix tree from byte strings to `V`, the shared core of [`Trie`] and
/// [`MTrie`].
///
/// Invariant: every node but the root holds a non-empty value or has at
/// least two children. Callers that obtain a value with [`Radix::entry`]
/// make it non-empty, and call [`Radix::prune`] when they empty one.
struct Radix<V> {
    root: Node<V>,
}

impl<V: Payload> Radix<V> {
    fn new() -> Self {
        Radix {
            root: Node {
                label: Box::default(),
                value: V::default(),
                children: Vec::new(),
            },
        }
    }

    /// The value stored for exactly `key`, if a node ends there.
    fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                return Some(&mut node.value);
            };
            let i = node.child_index(first).ok()?;
            let child = &mut *node.children[i].1;
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
        }
    }

    /// The value stored for exactly `key`, if a node ends there.
    fn get(&self, key: &[u8]) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                return Some(&node.value);
            };
            let child = node.child(first)?;
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
        }
    }

    /// The value for exactly `key`, creating the node (and splitting an
    /// edge) if needed. The caller must leave the value non-empty.
    fn entry(&mut self, key: &[u8]) -> &mut V {
        let mut node = &mut self.root;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                return &mut node.value;
            };
            let i = match node.child_index(first) {
                Ok(i) => i,
                Err(i) => {
                    node.children.insert(i, (first, Node::new(rest)));
                    return &mut node.children[i].1.value;
                }
            };
            let child = &mut node.children[i].1;
            let common = common_len(&child.label, rest);
            if common < child.label.len() {
                // `key` leaves this edge part-way: the edge becomes an
                // upper node for the shared bytes and a lower one, the old
                // child, for the rest.
                let mut lower = std::mem::replace(child, Node::new(&rest[..common]));
                lower.label = lower.label[common..].into();
                let lower_first = lower.label[0];
                child.children.push((lower_first, lower));
            }
            rest = &rest[common..];
            node = &mut **child;
        }
    }

    /// Restores the invariant after the value at `key` became empty:
    /// removes its node if it has no children, or merges it into its only
    /// child, then merges the parent likewise if that left it pointless.
    ///
    /// Two walks down, because safe code cannot climb back up: the first
    /// finds how deep the node is, the second stops at its parent.
    fn prune(&mut self, key: &[u8]) {
        let Some(depth) = self.depth_of(key) else {
            return;
        };
        // The root stays, even when empty.
        let Some(parent_depth) = depth.checked_sub(1) else {
            return;
        };
        let mut parent = &mut self.root;
        let mut rest = key;
        for _ in 0..parent_depth {
            let Some(i) = rest.first().and_then(|&b| parent.child_index(b).ok()) else {
                return;
            };
            let child = &mut *parent.children[i].1;
            rest = &rest[child.label.len().min(rest.len())..];
            parent = child;
        }
        let Some(i) = rest.first().and_then(|&b| parent.child_index(b).ok()) else {
            return;
        };
        let node = &mut parent.children[i].1;
        if !node.value.is_empty() {
            return;
        }
        match node.children.len() {
            0 => {
                parent.children.remove(i);
                parent.shrink_children();
                // A valueless parent had two children or more; with one
                // left it no longer branches. The root is never merged:
                // its label must stay empty.
                if parent_depth > 0 && parent.value.is_empty() && parent.children.len() == 1 {
                    parent.merge_only_child();
                }
            }
            1 => node.merge_only_child(),
            _ => {}
        }
    }

    /// How many edges lead from the root to the node for exactly `key`.
    fn depth_of(&self, key: &[u8]) -> Option<usize> {
        let mut node = &self.root;
        let mut rest = key;
        let mut depth = 0;
        loop {
            let Some(&first) = rest.first() else {
                return Some(depth);
            };
            let child = node.child(first)?;
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
            depth += 1;
        }
    }

    /// The values of the nodes on `topic`'s path: those of every stored key
    /// that is a prefix of `topic`, shortest first (empty values included).
    fn path<'a>(&'a self, topic: &'a [u8]) -> Path<'a, V> {
        Path {
            node: Some(&self.root),
            rest: topic,
        }
    }

    /// Every key with a non-empty value, in byte order.
    fn cursor(&self) -> Cursor<'_, V> {
        Cursor {
            stack: vec![(&self.root, 0)],
            key: Vec::new(),
        }
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            n += 1;
            stack.extend(node.children.iter().map(|(_, c)| &**c));
        }
        n
    }

    /// Checks the shape the operations rely on; panics on a violation.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert!(self.root.label.is_empty());
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            for w in node.children.windows(2) {
                assert!(w[0].0 < w[1].0, "children out of order");
            }
            for (b, c) in &node.children {
                assert_eq!(c.label.first(), Some(b), "child key is not its first byte");
                assert!(
                    !c.value.is_empty() || c.children.len() >= 2,
                    "a node neither holds a value nor branches"
                );
                stack.push(c);
            }
        }
    }
}

fn common_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// See [`Radix::path`].
struct Path<'a, V> {
    node: Option<&'a Node<V>>,
    rest: &'a [u8],
}

impl<'a, V: Payload> Iterator for Path<'a, V> {
    type Item = &'a V;

    fn next(&mut self) -> Option<&'a V> {
        let node = self.node.take()?;
        if let Some(child) = self.rest.first().and_then(|&b| node.child(b)) {
            if let Some(rest) = self.rest.strip_prefix(&*child.label) {
                self.node = Some(child);
                self.rest = rest;
            }
        }
        Some(&node.value)
    }
}

/// A depth-first walk with its own stack, yielding each stored value while
/// [`Cursor::key`] holds its key. Not an `Iterator`: the key is borrowed
/// from the cursor, so walking the tree allocates nothing per entry.
struct Cursor<'a, V> {
    /// Nodes still to visit, each with the length of its parent's key.
    stack: Vec<(&'a Node<V>, usize)>,
    key: Vec<u8>,
}

impl<'a, V: Payload> Cursor<'a, V> {
    fn advance(&mut self) -> Option<&'a V> {
        loop {
            let (node, base) = self.stack.pop()?;
            self.key.truncate(base);
            self.key.extend_from_slice(&node.label);
            let len = self.key.len();
            // Reversed, so that the smallest byte comes off the stack first.
            self.stack
                .extend(node.children.iter().rev().map(|(_, c)| (&**c, len)));
            if !node.value.is_empty() {
                return Some(&node.value);
            }
        }
    }

    fn key(&self) -> &[u8] {
        &self.key
    }
}

impl Payload for u64 {
    fn is_empty(&self) -> bool {
        *self == 0
    }
}

/// A counted set of subscription prefixes: what a SUB or XSUB has
/// subscribed to.
///
/// Counting follows libzmq: subscribing twice to a prefix needs two
/// unsubscribes, and only the first subscribe and the last unsubscribe of a
/// prefix change what the publishers must be told.
pub struct Trie {
    tree: Radix<u64>,
    len: usize,
    bytes: usize,
}

impl Trie {
    /// No subscriptions.
    pub fn new() -> Self {
        Trie {
            tree: Radix::new(),
            len: 0,
            bytes: 0,
        }
    }

    /// Counts one subscription to `prefix`. True when the prefix is new
    /// (its count went from 0 to 1): only then does a SUBSCRIBE go out.
    pub fn add(&mut self, prefix: &[u8]) -> bool {
        let count = self.tree.entry(prefix);
        // Saturating: a peer cannot send 2^64 subscriptions, but arithmetic
        // on counts it drives must not be able to panic either.
        *count = count.saturating_add(1);
        if *count == 1 {
            self.len += 1;
            self.bytes += prefix.len();
            true
        } else {
            false
        }
    }

    /// Takes back one subscription to `prefix`. True when that was the
    /// last one: only then does a CANCEL go out. An absent prefix is left
    /// alone and gives false.
    pub fn remove(&mut self, prefix: &[u8]) -> bool {
        let Some(count) = self.tree.get_mut(prefix) else {
            return false;
        };
        if *count == 0 {
            return false;
        }
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.len -= 1;
        self.bytes -= prefix.len();
        self.tree.prune(prefix);
        true
    }

    /// True when some stored prefix starts `topic` (the empty prefix
    /// matches every topic).
    pub fn matches(&self, topic: &[u8]) -> bool {
        self.tree.path(topic).any(|&count| count > 0)
    }

    /// True when `prefix` itself is stored.
    pub fn contains(&self, prefix: &[u8]) -> bool {
        self.tree.get(prefix).is_some_and(|&count| count > 0)
    }

    /// Calls `f` with every distinct stored prefix, in byte order (for
    /// resending all subscriptions after a reconnect).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        let mut cursor = self.tree.cursor();
        while cursor.advance().is_some() {
            f(cursor.key());
        }
    }

    /// Every distinct stored prefix, in byte order, each as its own copy.
    pub fn iter(&self) -> TrieIter<'_> {
        TrieIter {
            cursor: self.tree.cursor(),
        }
    }

    /// The number of distinct prefixes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The total length of the distinct prefixes stored: what resending
    /// them all costs in topic bytes, and what a bound on subscription
    /// memory is measured against. A prefix counted several times is
    /// stored, and counted here, once.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Default for Trie {
    fn default() -> Self {
        Trie::new()
    }
}

impl fmt::Debug for Trie {
    /// A summary: the prefixes themselves can be many and long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("len", &self.len)
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The iterator of [`Trie::iter`].
pub struct TrieIter<'a> {
    cursor: Cursor<'a, u64>,
}

impl Iterator for TrieIter<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        self.cursor.advance()?;
        Some(Bytes::copy_from_slice(self.cursor.key()))
    }
}

impl fmt::Debug for TrieIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrieIter").finish_non_exhaustive()
    }
}

/// The subscribers of one prefix with their counts, sorted by pipe so that
/// add and remove find a pipe by binary search.
#[derive(Default)]
struct Subscribers(Vec<(PipeId, u64)>);

impl Payload for Subscribers {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One pipe's side of the [`MTrie`].
#[derive(Default)]
struct PipeSubscriptions {
    /// Its distinct prefixes, so that its departure costs its own
    /// subscriptions only. Peer-chosen keys: std's flood-resistant hasher.
    /// Copies, not slices of the received `Bytes`, which would pin whole
    /// read buffers.
    prefixes: HashSet<Box<[u8]>>,
    /// The sum of their lengths.
    bytes: usize,
}

/// The subscriptions of a PUB or XPUB: for each prefix, the pipes
/// subscribed to it, each with a count (subscribing twice needs two
/// cancels). XPUB does not rely on the count: it adds a (prefix, pipe)
/// only when [`MTrie::contains`] says it is absent, keeping libzmq's set
/// semantics (see there why).
///
/// Besides the tree, each pipe's distinct prefixes are kept in a set of
/// their own. That doubles the bytes a subscription takes, but it makes
/// [`MTrie::remove_pipe`] cost the leaving pipe's subscriptions rather than
/// a pass over everyone's, and it keeps [`MTrie::pipe_bytes`], the quantity
/// a per-peer bound on subscription memory needs, exact.
pub struct MTrie {
    tree: Radix<Subscribers>,
    by_pipe: IdMap<PipeId, PipeSubscriptions>,
    /// Distinct prefixes with at least one subscriber.
    len: usize,
    /// [`MTrie::match_topic`]'s memory of pipes already visited, kept to
    /// save an allocation per message. Used only when two prefixes on a
    /// topic's path have subscribers.
    seen: IdSet<PipeId>,
}

impl MTrie {
    /// No subscriptions.
    pub fn new() -> Self {
        MTrie {
            tree: Radix::new(),
            by_pipe: IdMap::default(),
            len: 0,
            seen: IdSet::default(),
        }
    }

    /// Counts one subscription of `pipe` to `prefix`. True when the prefix
    /// had no subscriber before: XPUB then passes the subscription on.
    pub fn add(&mut self, prefix: &[u8], pipe: PipeId) -> bool {
        let subs = &mut self.tree.entry(prefix).0;
        let was_empty = subs.is_empty();
        match subs.binary_search_by_key(&pipe, |&(p, _)| p) {
            Ok(i) => subs[i].1 = subs[i].1.saturating_add(1),
            Err(i) => {
                subs.insert(i, (pipe, 1));
                let mine = self.by_pipe.entry(pipe).or_default();
                mine.prefixes.insert(prefix.into());
                mine.bytes += prefix.len();
            }
        }
        if was_empty {
            self.len += 1;
        }
        was_empty
    }

    /// Takes back one subscription of `pipe` to `prefix`. True when that
    /// was the last subscription anyone had to the prefix: XPUB then passes
    /// the cancel on. A subscription `pipe` does not hold is left alone and
    /// gives false.
    pub fn remove(&mut self, prefix: &[u8], pipe: PipeId) -> bool {
        let Some(Subscribers(subs)) = self.tree.get_mut(prefix) else {
            return false;
        };
        let Ok(i) = subs.binary_search_by_key(&pipe, |&(p, _)| p) else {
            return false;
        };
        subs[i].1 -= 1;
        if subs[i].1 > 0 {
            return false;
        }
        subs.remove(i);
        let last = subs.is_empty();
        if subs.capacity() > 2 * subs.len() + 4 {
            subs.shrink_to_fit();
        }
        if let Some(mine) = self.by_pipe.get_mut(&pipe) {
            if mine.prefixes.remove(prefix) {
                mine.bytes -= prefix.len();
            }
            if mine.prefixes.is_empty() {
                self.by_pipe.remove(&pipe);
            }
        }
        if last {
            self.len -= 1;
            self.tree.prune(prefix);
        }
        last
    }

    /// Drops every subscription of `pipe`, whatever its counts (the pipe is
    /// gone). Calls `on_removed` with each prefix that thereby lost its
    /// last subscriber, in no particular order, so that XPUB can pass the
    /// cancels on. Costs the pipe's own subscriptions, not everyone's.
    pub fn remove_pipe(&mut self, pipe: PipeId, mut on_removed: impl FnMut(&[u8])) {
        self.remove_pipe_each(pipe, |prefix, last| {
            if last {
                on_removed(prefix);
            }
        });
    }

    /// Like [`MTrie::remove_pipe`], but calls `on_each` with every prefix
    /// the pipe held, and whether it was that prefix's last subscriber:
    /// `xpub_verboser` passes every cancel on, not only the last ones.
    pub fn remove_pipe_each(&mut self, pipe: PipeId, mut on_each: impl FnMut(&[u8], bool)) {
        let Some(mine) = self.by_pipe.remove(&pipe) else {
            return;
        };
        for prefix in mine.prefixes {
            let Some(Subscribers(subs)) = self.tree.get_mut(&prefix) else {
                continue;
            };
            let Ok(i) = subs.binary_search_by_key(&pipe, |&(p, _)| p) else {
                continue;
            };
            subs.remove(i);
            if subs.is_empty() {
                self.len -= 1;
                self.tree.prune(&prefix);
                on_each(&prefix, true);
            } else {
                if subs.capacity() > 2 * subs.len() + 4 {
                    subs.shrink_to_fit();
                }
                on_each(&prefix, false);
            }
        }
    }

    /// True when `pipe` holds a subscription to exactly `prefix`. A
    /// publisher keeps at most one per (prefix, pipe), as libzmq's mtrie
    /// does (a set of pipes per prefix): libzmq's SUB and every XSUB send
    /// a subscribe each time, but a cancel only for the last unsubscribe,
    /// so counting them here would keep subscriptions their peer dropped.
    pub fn contains(&self, prefix: &[u8], pipe: PipeId) -> bool {
        self.by_pipe
            .get(&pipe)
            .is_some_and(|m| m.prefixes.contains(prefix))
    }

    /// Calls `visit` once for each pipe subscribed to a prefix of `topic`,
    /// even when several of its prefixes match. Costs the topic's length
    /// plus the (prefix, pipe) subscriptions that match.
    pub fn match_topic(&mut self, topic: &[u8], mut visit: impl FnMut(PipeId)) {
        let MTrie { tree, seen, .. } = self;
        // The common case is a single matching prefix, whose pipes are
        // distinct already: they are visited without any bookkeeping, and
        // remembered only if a second matching prefix turns up.
        let mut first: Option<&Subscribers> = None;
        for subs in tree.path(topic) {
            if subs.is_empty() {
                continue;
            }
            match first {
                None => {
                    for &(pipe, _) in &subs.0 {
                        visit(pipe);
                    }
                    first = Some(subs);
                }
                Some(earlier) => {
                    if seen.is_empty() {
                        seen.extend(earlier.0.iter().map(|&(p, _)| p));
                    }
                    for &(pipe, _) in &subs.0 {
                        if seen.insert(pipe) {
                            visit(pipe);
                        }
                    }
                }
            }
        }
        // Clearing costs the set's capacity, so a set grown by one large
        // match is cleared only after a match that used it.
        if !seen.is_empty() {
            seen.clear();
        }
    }

    /// The total length of `pipe`'s distinct prefixes, maintained as they
    /// come and go: what a per-peer bound on subscription memory checks.
    pub fn pipe_bytes(&self, pipe: PipeId) -> usize {
        self.by_pipe.get(&pipe).map_or(0, |m| m.bytes)
    }

    /// The number of distinct prefixes `pipe` is subscribed to. With
    /// [`MTrie::pipe_bytes`] this bounds the pipe's share of memory: each
    /// subscription also costs a few words of bookkeeping, whatever its
    /// length.
    pub fn pipe_prefix_count(&self, pipe: PipeId) -> usize {
        self.by_pipe.get(&pipe).map_or(0, |m| m.prefixes.len())
    }

    /// The number of distinct prefixes with at least one subscriber.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nobody is subscribed to anything.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for MTrie {
    fn default() -> Self {
        MTrie::new()
    }
}

impl fmt::Debug for MTrie {
    /// A summary: the subscriptions themselves can be many and long.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MTrie")
            .field("len", &self.len)
            .field("pipes", &self.by_pipe.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// A tiny deterministic PRNG (xorshift64*): no dependency, same
    /// sequence on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A short string over a three-letter alphabet, so that random
        /// prefixes nest, share and collide often.
        fn key(&mut self) -> Vec<u8> {
            let len = self.below(6) as usize;
            (0..len).map(|_| b"abc"[self.below(3) as usize]).collect()
        }
    }

    fn prefixes(t: &Trie) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        t.for_each(|p| v.push(p.to_vec()));
        v
    }

    fn matching(m: &mut MTrie, topic: &[u8]) -> Vec<PipeId> {
        let mut v = Vec::new();
        m.match_topic(topic, |p| v.push(p));
        let n = v.len();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), n, "a pipe was visited twice");
        v
    }

    #[test]
    fn empty_prefix_matches_everything() {
        let mut t = Trie::new();
        assert!(!t.matches(b""));
        assert!(!t.matches(b"x"));
        assert!(t.add(b""));
        assert!(t.matches(b""));
        assert!(t.matches(b"anything"));
        assert_eq!((t.len(), t.bytes()), (1, 0));
        assert_eq!(prefixes(&t), [b"".to_vec()]);
        assert!(t.remove(b""));
        assert!(!t.matches(b"anything"));
        assert!(t.is_empty());
    }

    #[test]
    fn nested_prefixes() {
        let mut t = Trie::new();
        for p in [&b"abc"[..], b"a", b"ab"] {
            assert!(t.add(p));
        }
        assert_eq!((t.len(), t.bytes()), (3, 6));
        assert!(!t.matches(b""));
        assert!(!t.matches(b"b"));
        assert!(t.matches(b"a"));
        assert!(t.matches(b"abd"));
        assert_eq!(prefixes(&t), [&b"a"[..], b"ab", b"abc"]);
        assert!(t.remove(b"a"));
        assert!(!t.matches(b"a"));
        assert!(t.matches(b"ab"));
        assert!(!t.matches(b"ac"));
        assert!(t.remove(b"ab"));
        assert!(!t.matches(b"abd"));
        assert!(t.matches(b"abcd"));
        assert!(t.contains(b"abc"));
        assert!(!t.contains(b"ab"));
        t.tree.check_invariants();
        assert!(t.remove(b"abc"));
        assert_eq!(t.tree.node_count(), 1, "only the root is left");
    }

    #[test]
    fn duplicates_need_as_many_removes() {
        let mut t = Trie::new();
        assert!(t.add(b"topic"));
        assert!(!t.add(b"topic"), "already subscribed");
        assert_eq!((t.len(), t.bytes()), (1, 5));
        assert!(!t.remove(b"topic"), "one subscription left");
        assert!(t.matches(b"topic.x"));
        assert!(t.remove(b"topic"));
        assert!(!t.matches(b"topic.x"));
        assert!(!t.remove(b"topic"), "absent: nothing changes");
        assert!(!t.remove(b"top"), "a node that was never a prefix");
        assert!(t.add(b"topic"));
        assert_eq!((t.len(), t.bytes()), (1, 5));
    }

    #[test]
    fn removing_an_inner_split_point_is_refused() {
        let mut t = Trie::new();
        t.add(b"abx");
        t.add(b"aby");
        // "ab" exists as a node (the split) but was never subscribed.
        assert!(!t.remove(b"ab"));
        assert!(!t.contains(b"ab"));
        assert_eq!(t.len(), 2);
        assert!(t.remove(b"abx"));
        t.tree.check_invariants();
        assert_eq!(t.tree.node_count(), 2, "the split merged away");
        assert!(t.matches(b"aby"));
        assert!(!t.matches(b"abx"));
    }

    #[test]
    fn iter_yields_copies_in_byte_order() {
        let mut t = Trie::new();
        for p in [&b"b"[..], b"", b"ab", b"a", b"ab"] {
            t.add(p);
        }
        let all: Vec<Bytes> = t.iter().collect();
        assert_eq!(all, [&b""[..], b"a", b"ab", b"b"]);
        assert_eq!(format!("{t:?}"), "Trie { len: 4, bytes: 4 }");
    }

    #[test]
    fn mtrie_counts_per_prefix_and_pipe() {
        let (p1, p2) = (PipeId(1), PipeId(2));
        let mut m = MTrie::new();
        assert!(m.add(b"a", p1), "first subscriber of the prefix");
        assert!(!m.add(b"a", p2));
        assert!(!m.add(b"a", p1), "a second subscription of p1");
        assert_eq!(m.len(), 1);
        assert_eq!((m.pipe_bytes(p1), m.pipe_prefix_count(p1)), (1, 1));
        assert!(!m.remove(b"a", p1), "p1 still holds one");
        assert!(!m.remove(b"a", p1), "p2 still subscribed");
        assert!(!m.remove(b"a", p1), "p1 holds none: nothing changes");
        assert_eq!(m.pipe_bytes(p1), 0);
        assert_eq!(matching(&mut m, b"ab"), [p2]);
        assert!(!m.remove(b"b", p2), "never subscribed");
        assert!(m.remove(b"a", p2), "the last subscriber");
        assert!(m.is_empty());
        assert_eq!(m.tree.node_count(), 1);
    }

    #[test]
    fn mtrie_visits_each_pipe_once() {
        let (p1, p2, p3) = (PipeId(1), PipeId(2), PipeId(3));
        let mut m = MTrie::new();
        m.add(b"", p1);
        m.add(b"a", p1);
        m.add(b"ab", p1);
        m.add(b"ab", p2);
        m.add(b"abc", p3);
        m.add(b"b", p3);
        assert_eq!(matching(&mut m, b"abcd"), [p1, p2, p3]);
        assert_eq!(matching(&mut m, b"ab"), [p1, p2]);
        assert_eq!(matching(&mut m, b"b"), [p1, p3]);
        assert_eq!(matching(&mut m, b"c"), [p1]);
        m.remove(b"", p1);
        assert_eq!(matching(&mut m, b"c"), Vec::<PipeId>::new());
        assert_eq!(matching(&mut m, b"a"), [p1]);
        assert_eq!(m.pipe_bytes(p1), 3);
        assert_eq!(m.pipe_bytes(p3), 4);
    }

    #[test]
    fn mtrie_remove_pipe_reports_orphaned_prefixes() {
        let (p1, p2) = (PipeId(1), PipeId(2));
        let mut m = MTrie::new();
        m.add(b"a", p1);
        m.add(b"a", p1);
        m.add(b"ab", p1);
        m.add(b"ab", p2);
        m.add(b"x", p1);
        let mut gone = BTreeSet::new();
        m.remove_pipe(p1, |p| {
            gone.insert(p.to_vec());
        });
        // "ab" keeps p2; the duplicate "a" goes at once.
        assert_eq!(gone, BTreeSet::from([b"a".to_vec(), b"x".to_vec()]));
        assert_eq!(m.pipe_bytes(p1), 0);
        assert_eq!(m.len(), 1);
        assert_eq!(matching(&mut m, b"abc"), [p2]);
        m.remove_pipe(p1, |_| panic!("p1 has nothing left"));
        m.remove_pipe(p2, |_| {});
        assert!(m.is_empty());
        assert_eq!(m.tree.node_count(), 1);
    }

    #[test]
    fn mtrie_remove_pipe_each_reports_every_prefix_and_contains() {
        let (p1, p2) = (PipeId(1), PipeId(2));
        let mut m = MTrie::new();
        m.add(b"a", p1);
        m.add(b"ab", p1);
        m.add(b"ab", p2);
        assert!(m.contains(b"ab", p1) && m.contains(b"ab", p2));
        assert!(!m.contains(b"a", p2) && !m.contains(b"abc", p1));
        let mut seen = BTreeSet::new();
        m.remove_pipe_each(p1, |p, last| {
            seen.insert((p.to_vec(), last));
        });
        assert_eq!(
            seen,
            BTreeSet::from([(b"a".to_vec(), true), (b"ab".to_vec(), false)])
        );
        assert!(!m.contains(b"a", p1));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn megabyte_prefix_and_topic() {
        let mut long = vec![b'z'; 1 << 20];
        let mut t = Trie::new();
        assert!(t.add(&long));
        assert!(t.matches(&long));
        long.push(b'!');
        assert!(t.matches(&long), "a longer topic");
        assert!(!t.matches(&long[..long.len() - 2]), "a shorter one");
        let mut m = MTrie::new();
        m.add(&long[..1 << 20], PipeId(1));
        m.add(b"z", PipeId(2));
        assert_eq!(matching(&mut m, &long), [PipeId(1), PipeId(2)]);
        assert_eq!(m.pipe_bytes(PipeId(1)), 1 << 20);
        assert!(m.remove(&long[..1 << 20], PipeId(1)));
        assert!(t.remove(&long[..1 << 20]));
        assert_eq!(t.tree.node_count(), 1);
    }

    #[test]
    fn deep_tree_is_walked_and_dropped_without_recursion() {
        // "y", "xy", "xxy", ...: a branch at every depth, so the tree is
        // as deep as the prefixes are many.
        // On a small stack, so that a recursive walk or drop (tens of
        // bytes a level at the least) would overflow it.
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(deep_tree)
            .expect("spawn")
            .join()
            .expect("the deep tree overflowed the stack");
    }

    fn deep_tree() {
        const DEPTH: usize = 3000;
        let mut t = Trie::new();
        let mut m = MTrie::new();
        let mut key = Vec::new();
        for _ in 0..DEPTH {
            key.push(b'y');
            t.add(&key);
            m.add(&key, PipeId(1));
            key.pop();
            key.push(b'x');
        }
        assert!(t.tree.node_count() > DEPTH);
        // The deepest prefix, x^(DEPTH-1) y.
        let deepest = [&key[1..], b"y"].concat();
        assert!(t.matches(&deepest));
        assert!(!t.matches(&key));
        assert_eq!(t.iter().count(), DEPTH);
        assert_eq!(matching(&mut m, &deepest), [PipeId(1)]);
        assert!(t.remove(&deepest));
        assert!(!t.matches(&deepest));
        t.tree.check_invariants();
        drop(t);
        drop(m);
    }

    /// The naive model: a map from (prefix, pipe) to count.
    #[derive(Default)]
    struct Model(HashMap<(Vec<u8>, PipeId), u64>);

    impl Model {
        fn subscribed(&self, prefix: &[u8]) -> bool {
            self.0.keys().any(|(p, _)| p == prefix)
        }

        fn matching(&self, topic: &[u8]) -> Vec<PipeId> {
            let set: BTreeSet<PipeId> = self
                .0
                .keys()
                .filter(|(p, _)| topic.starts_with(p))
                .map(|&(_, pipe)| pipe)
                .collect();
            set.into_iter().collect()
        }

        fn pipe_bytes(&self, pipe: PipeId) -> usize {
            self.0
                .keys()
                .filter(|(_, p)| *p == pipe)
                .map(|(k, _)| k.len())
                .sum()
        }
    }

    #[test]
    fn mtrie_against_a_model() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut m = MTrie::new();
        let mut model = Model::default();
        for step in 0..20_000 {
            let pipe = PipeId(rng.below(5));
            let key = rng.key();
            match rng.below(10) {
                0..=3 => {
                    let new = !model.subscribed(&key);
                    *model.0.entry((key.clone(), pipe)).or_default() += 1;
                    assert_eq!(m.add(&key, pipe), new, "step {step}: add {key:?}");
                }
                4..=6 => {
                    let k = (key.clone(), pipe);
                    let expected = match model.0.get_mut(&k) {
                        Some(c) if *c > 1 => {
                            *c -= 1;
                            false
                        }
                        Some(_) => {
                            model.0.remove(&k);
                            !model.subscribed(&key)
                        }
                        None => false,
                    };
                    assert_eq!(m.remove(&key, pipe), expected, "step {step}: remove");
                }
                7 if rng.below(4) == 0 => {
                    let mut expected: BTreeSet<Vec<u8>> = model
                        .0
                        .keys()
                        .filter(|(_, p)| *p == pipe)
                        .map(|(k, _)| k.clone())
                        .collect();
                    model.0.retain(|(_, p), _| *p != pipe);
                    expected.retain(|k| !model.subscribed(k));
                    let mut got = BTreeSet::new();
                    m.remove_pipe(pipe, |p| {
                        assert!(got.insert(p.to_vec()), "reported twice");
                    });
                    assert_eq!(got, expected, "step {step}: remove_pipe");
                }
                _ => {
                    let mut topic = key;
                    topic.extend(rng.key());
                    assert_eq!(
                        matching(&mut m, &topic),
                        model.matching(&topic),
                        "step {step}: match {topic:?}"
                    );
                }
            }
            assert_eq!(m.pipe_bytes(pipe), model.pipe_bytes(pipe), "step {step}");
            let distinct: BTreeSet<&Vec<u8>> = model.0.keys().map(|(k, _)| k).collect();
            assert_eq!(m.len(), distinct.len(), "step {step}");
            if step % 64 == 0 {
                m.tree.check_invariants();
            }
        }
        for p in 0..5 {
            m.remove_pipe(PipeId(p), |_| {});
        }
        assert!(m.is_empty());
        assert_eq!(m.tree.node_count(), 1, "all memory given back");
    }

    #[test]
    fn trie_against_a_model() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut t = Trie::new();
        let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
        for step in 0..20_000 {
            let key = rng.key();
            match rng.below(3) {
                0 => {
                    let c = model.entry(key.clone()).or_default();
                    *c += 1;
                    assert_eq!(t.add(&key), *c == 1, "step {step}: add {key:?}");
                }
                1 => {
                    let expected = match model.get_mut(&key) {
                        Some(c) if *c > 1 => {
                            *c -= 1;
                            false
                        }
                        Some(_) => {
                            model.remove(&key);
                            true
                        }
                        None => false,
                    };
                    assert_eq!(t.remove(&key), expected, "step {step}: remove {key:?}");
                }
                _ => {
                    let mut topic = key;
                    topic.extend(rng.key());
                    let expected = model.keys().any(|p| topic.starts_with(p));
                    assert_eq!(t.matches(&topic), expected, "step {step}: {topic:?}");
                    assert_eq!(t.contains(&topic), model.contains_key(&topic));
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(t.bytes(), model.keys().map(Vec::len).sum::<usize>());
            if step % 64 == 0 {
                t.tree.check_invariants();
                let mut expected: Vec<Vec<u8>> = model.keys().cloned().collect();
                expected.sort();
                assert_eq!(prefixes(&t), expected, "step {step}: for_each");
            }
        }
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        for k in keys {
            while t.contains(&k) {
                t.remove(&k);
            }
        }
        assert!(t.is_empty());
        assert_eq!(t.tree.node_count(), 1, "all memory given back");
    }
}
