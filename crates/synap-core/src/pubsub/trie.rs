//! Topic trie for dot-separated topics with `*` (exactly one level) and `#` (zero or more levels, last
//! only). Matching walks the topic's levels, so its cost grows with the topic's depth and the matching
//! subscriptions, not with the number of subscriptions.

use std::collections::HashMap;

use super::SubId;

#[derive(Default)]
pub struct Trie {
    root: Node,
    len: usize,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    /// Subscribers of the pattern ending in `#` at this node.
    hash: Vec<SubId>,
    /// Subscribers of the pattern ending exactly at this node.
    here: Vec<SubId>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.star.is_none() && self.hash.is_empty() && self.here.is_empty()
    }
}

/// Longest topic a WebSocket/SSE subscriber may give, in bytes and in levels: the trie is as deep as its
/// longest pattern, and its walks recurse once per level.
pub const MAX_TOPIC_BYTES: usize = 1024;
pub const MAX_TOPIC_LEVELS: usize = 32;

/// Whether `pattern` is a valid topic pattern: at most [`MAX_TOPIC_BYTES`] and [`MAX_TOPIC_LEVELS`],
/// non-empty levels, `#` only last, wildcards alone in a level.
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern.len() > MAX_TOPIC_BYTES || pattern.split('.').nth(MAX_TOPIC_LEVELS).is_some() {
        return false;
    }
    let levels: Vec<&str> = pattern.split('.').collect();
    !pattern.is_empty()
        && levels.iter().enumerate().all(|(i, l)| {
            !l.is_empty()
                && (*l == "*" || *l == "#" || !(l.contains('*') || l.contains('#')))
                && (*l != "#" || i == levels.len() - 1)
        })
}

/// Whether a topic pattern has wildcards.
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|l| l == "*" || l == "#")
}

impl Trie {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, pattern: &str, id: SubId) {
        let mut node = &mut self.root;
        let levels: Vec<&str> = pattern.split('.').collect();
        for (i, level) in levels.iter().enumerate() {
            if *level == "#" && i == levels.len() - 1 {
                if !node.hash.contains(&id) {
                    node.hash.push(id);
                    self.len += 1;
                }
                return;
            }
            node = if *level == "*" {
                node.star.get_or_insert_with(Default::default)
            } else {
                node.children.entry((*level).into()).or_default()
            };
        }
        if !node.here.contains(&id) {
            node.here.push(id);
            self.len += 1;
        }
    }

    pub fn remove(&mut self, pattern: &str, id: SubId) -> bool {
        let levels: Vec<&str> = pattern.split('.').collect();
        let removed = Self::remove_in(&mut self.root, &levels, id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node, levels: &[&str], id: SubId) -> bool {
        let take = |v: &mut Vec<SubId>| match v.iter().position(|x| *x == id) {
            Some(p) => {
                v.swap_remove(p);
                true
            }
            None => false,
        };
        match levels {
            [] => take(&mut node.here),
            ["#"] => take(&mut node.hash),
            [first, rest @ ..] => {
                if *first == "*" {
                    let Some(child) = node.star.as_mut() else { return false };
                    let removed = Self::remove_in(child, rest, id);
                    if child.is_empty() {
                        node.star = None;
                    }
                    removed
                } else {
                    let Some(child) = node.children.get_mut(*first) else { return false };
                    let removed = Self::remove_in(child, rest, id);
                    if child.is_empty() {
                        node.children.remove(*first);
                    }
                    removed
                }
            }
        }
    }

    /// Every subscriber whose pattern matches `topic`. The topic is split as the walk goes, and the walk
    /// goes only as deep as the trie (patterns are at most [`MAX_TOPIC_LEVELS`] deep), whatever the
    /// topic's length.
    pub fn matches(&self, topic: &str, out: &mut Vec<SubId>) {
        Self::walk(&self.root, Some(topic), out);
    }

    /// `rest`: the levels not matched yet (`None`: none left).
    fn walk(node: &Node, rest: Option<&str>, out: &mut Vec<SubId>) {
        out.extend_from_slice(&node.hash); // `#` matches zero or more remaining levels
        match rest {
            None => out.extend_from_slice(&node.here),
            Some(t) => {
                let (first, tail) = match t.split_once('.') {
                    Some((a, b)) => (a, Some(b)),
                    None => (t, None),
                };
                if let Some(child) = node.children.get(first) {
                    Self::walk(child, tail, out);
                }
                if let Some(star) = &node.star {
                    Self::walk(star, tail, out);
                }
            }
        }
    }
}

/// The reference matcher (for tests): does `pattern` match `topic`?
pub fn naive_match(pattern: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p, t) {
            ([], []) => true,
            (["#"], _) => true,
            (["*", pr @ ..], [_, tr @ ..]) => go(pr, tr),
            ([ph, pr @ ..], [th, tr @ ..]) => ph == th && go(pr, tr),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    go(&p, &t)
}
