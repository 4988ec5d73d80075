//! The tree every node draws alike: the breadth-first tree of the overlay from its root,
//! the member with the lowest origin.
//!
//! Plumtree starts with every overlay edge on the tree and learns which are redundant
//! from duplicates. A burst from every node right after a mesh forms goes out before any
//! prune comes back, so it floods the overlay: 1.6 to 2 copies of each write. Every
//! node knows every member and the overlay is a function of the members, so each can
//! draw the whole overlay and the same spanning tree of it, and put on the tree only
//! its own edges of it: the first write already travels a tree. Nodes whose member lists
//! differ for a while draw trees that differ a little, which prunes and grafts mend.
//!
//! Drawing the overlay ranks every pair of members: quadratic, so only up to
//! [`MAX_MEMBERS`]; past that the tree starts from the overlay and the root's beacon
//! prunes it.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{pair_hash, NEIGHBORS};
use crate::version::OriginId;

/// Most members (this node included) for which the whole overlay is drawn: 512 members
/// rank 262,144 pairs, 1.5 ms per draw on a 2-core machine (median of 21, busy).
pub(crate) const MAX_MEMBERS: usize = 512;

/// This node's edges in the overlay and in the spanning tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct OwnEdges {
    /// Every neighbor: those this node picks and those that pick it.
    pub overlay: BTreeSet<SocketAddr>,
    /// The neighbors on the tree.
    pub tree: BTreeSet<SocketAddr>,
}

/// Draws the overlay of `own` and `members` (`(address, origin)`, origins not 0 nor
/// `own`), and returns `own`'s edges in it and in its spanning tree; `None` past
/// [`MAX_MEMBERS`].
pub(crate) fn own_edges(own: OriginId, members: &[(SocketAddr, OriginId)]) -> Option<OwnEdges> {
    let mut nodes: Vec<(OriginId, Option<SocketAddr>)> = members
        .iter()
        .filter(|&&(_, origin)| origin != 0 && origin != own)
        .map(|&(addr, origin)| (origin, Some(addr)))
        .collect();
    nodes.push((own, None));
    nodes.sort_unstable_by_key(|&(origin, _)| origin);
    nodes.dedup_by_key(|&mut (origin, _)| origin);
    if nodes.len() > MAX_MEMBERS {
        return None;
    }
    // Each node's NEIGHBORS lowest pairs, as `pick_neighbors` ranks them.
    let mut edges: Vec<(u64, usize, usize)> = Vec::with_capacity(nodes.len() * NEIGHBORS);
    let mut ranked: Vec<(u64, usize)> = Vec::with_capacity(nodes.len());
    for (i, &(a, _)) in nodes.iter().enumerate() {
        ranked.clear();
        ranked.extend(
            nodes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(j, &(b, _))| (pair_hash(a, b), j)),
        );
        let k = NEIGHBORS.min(ranked.len());
        if k == 0 {
            continue;
        }
        ranked.select_nth_unstable(k - 1);
        for &(hash, j) in &ranked[..k] {
            edges.push((hash, i.min(j), i.max(j)));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let me = nodes.iter().position(|&(origin, _)| origin == own)?;
    let mut adjacent: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut own_edges = OwnEdges::default();
    // Lightest first, so that the search below takes neighbors in one order everywhere.
    for &(_, i, j) in &edges {
        adjacent[i].push(j);
        adjacent[j].push(i);
    }
    for &other in &adjacent[me] {
        own_edges.overlay.extend(nodes[other].1);
    }
    // Breadth first from the lowest origin (the root): a tree as shallow as the overlay
    // allows, so a write reaches every node in few hops (a minimum spanning tree of a
    // random graph is a long chain, which announcements outrun).
    let mut parent: Vec<Option<usize>> = vec![None; nodes.len()];
    parent[0] = Some(0);
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(v) = queue.pop_front() {
        for &w in &adjacent[v] {
            if parent[w].is_none() {
                parent[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    for (i, p) in parent.iter().enumerate() {
        let edge = match *p {
            Some(p) if p == i => None,
            Some(p) if i == me => Some(p),
            Some(p) if p == me => Some(i),
            _ => None,
        };
        own_edges.tree.extend(edge.and_then(|other| nodes[other].1));
    }
    Some(own_edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::pick_neighbors;

    fn addr(i: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], i as u16))
    }

    /// Every node's edges, drawn with `members` origins 1 to n.
    fn all_edges(n: u64) -> Vec<OwnEdges> {
        (1..=n)
            .map(|i| {
                let others: Vec<(SocketAddr, OriginId)> =
                    (1..=n).filter(|&j| j != i).map(|j| (addr(j), j)).collect();
                own_edges(i, &others).expect("within the bound")
            })
            .collect()
    }

    #[test]
    fn every_node_draws_the_same_spanning_tree() {
        let n = 200;
        let edges = all_edges(n);
        // Symmetric: a tree edge of one end is one of the other's.
        let mut tree_edges = 0;
        for (i, own) in edges.iter().enumerate() {
            let me = addr(i as u64 + 1);
            for other in &own.tree {
                assert!(own.overlay.contains(other));
                let theirs = &edges[other.port() as usize - 1];
                assert!(theirs.tree.contains(&me), "{me} - {other} one-sided");
                tree_edges += 1;
            }
        }
        // n - 1 edges, counted from both ends, and connected: a spanning tree.
        assert_eq!(tree_edges, 2 * (n as usize - 1));
        let mut seen = vec![false; n as usize];
        let mut stack = vec![0usize];
        seen[0] = true;
        while let Some(v) = stack.pop() {
            for w in &edges[v].tree {
                let w = w.port() as usize - 1;
                if !std::mem::replace(&mut seen[w], true) {
                    stack.push(w);
                }
            }
        }
        assert!(seen.iter().all(|&s| s), "the tree does not reach every node");
    }

    #[test]
    fn the_overlay_drawn_is_the_one_each_node_picks() {
        let n = 60;
        let edges = all_edges(n);
        for i in 1..=n {
            let others = (1..=n).filter(|&j| j != i).map(|j| (addr(j), j));
            for picked in pick_neighbors(i, others) {
                assert!(edges[i as usize - 1].overlay.contains(&picked));
                let theirs = &edges[picked.port() as usize - 1];
                assert!(theirs.overlay.contains(&addr(i)), "picked by {i}, not known");
            }
        }
    }

    #[test]
    fn past_the_bound_no_tree_is_drawn() {
        let members: Vec<(SocketAddr, OriginId)> =
            (1..=MAX_MEMBERS as u64).map(|j| (addr(j), j)).collect();
        assert!(own_edges(1_000_000, &members).is_none());
        assert!(own_edges(1_000_000, &members[1..]).is_some());
        assert_eq!(own_edges(5, &[]), Some(OwnEdges::default()), "alone");
    }
}
