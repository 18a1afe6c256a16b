//! The training data of the strategies: a sparse user × item matrix of interaction counts,
//! and how recently each user interacted with each item.

use std::collections::HashMap;

use sprs::{CsMat, TriMat};

/// The training data: who interacted with what (weights are interaction counts), and how
/// recently.
pub struct Train {
    pub users: usize,
    pub items: usize,
    /// users × items (CSR).
    pub x: CsMat<f32>,
    /// items × users (CSR).
    pub xt: CsMat<f32>,
    /// Per entry of `x`: how many of the user's later interaction times there are after their
    /// latest interaction with the item (0: among the user's most recent). All 0 when the data
    /// has no times.
    pub later: Vec<u32>,
}

/// One interaction: user, item, weight and when (seconds; any monotone clock).
pub type Interaction = (u32, u32, f32, i64);

/// A (user, item) pair with its summed weight and latest time.
type Pair = ((u32, u32), (f32, i64));

impl Train {
    /// From (user, item, weight) triples without times; repeated pairs are summed.
    pub fn new(users: usize, items: usize, triples: &[(u32, u32, f32)]) -> Self {
        let timed: Vec<Interaction> = triples.iter().map(|&(u, i, w)| (u, i, w, 0)).collect();
        Self::with_times(users, items, &timed)
    }

    /// From timed interactions; repeated pairs are summed and keep their latest time.
    pub fn with_times(users: usize, items: usize, interactions: &[Interaction]) -> Self {
        let mut sum: HashMap<(u32, u32), (f32, i64)> = HashMap::with_capacity(interactions.len());
        for &(u, i, w, at) in interactions {
            let e = sum.entry((u, i)).or_insert((0.0, at));
            e.0 += w;
            e.1 = e.1.max(at);
        }
        let mut pairs: Vec<Pair> = sum.into_iter().collect();
        pairs.sort_by_key(|(k, _)| *k);
        let later = later_times(&pairs);
        let mut t = TriMat::with_capacity((users, items), pairs.len());
        for ((u, i), (w, _)) in pairs {
            t.add_triplet(u as usize, i as usize, w);
        }
        let x: CsMat<f32> = t.to_csr();
        let xt: CsMat<f32> = x.transpose_view().to_csr();
        Train {
            users,
            items,
            x,
            xt,
            later,
        }
    }

    /// The user's items weighted by recency: an item's weight halves with every
    /// `half_life` later interaction times of the user (orders, for a shop); `None`: 1 each.
    pub fn profile(
        &self,
        u: usize,
        half_life: Option<f32>,
    ) -> impl Iterator<Item = (usize, f32)> + '_ {
        let r = self.x.indptr().outer_inds_sz(u);
        self.x.indices()[r.clone()]
            .iter()
            .copied()
            .zip(self.later[r].iter())
            .map(move |(i, &later)| {
                let w = half_life.map_or(1.0, |h| 0.5f32.powf(later as f32 / h));
                (i, w)
            })
    }

    pub fn user_items(&self, u: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let r = self.x.indptr().outer_inds_sz(u);
        self.x.indices()[r.clone()]
            .iter()
            .copied()
            .zip(self.x.data()[r].iter().copied())
    }

    pub fn item_users(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let r = self.xt.indptr().outer_inds_sz(i);
        self.xt.indices()[r.clone()]
            .iter()
            .copied()
            .zip(self.xt.data()[r].iter().copied())
    }

    pub fn user_len(&self, u: usize) -> usize {
        self.x.indptr().outer_inds_sz(u).len()
    }

    pub fn item_count(&self, i: usize) -> usize {
        self.xt.indptr().outer_inds_sz(i).len()
    }
}

/// For pairs sorted by (user, item) with their latest time: per pair, the number of the
/// user's distinct times after it (a dense rank from the newest, 0 = newest).
fn later_times(pairs: &[Pair]) -> Vec<u32> {
    let mut later = Vec::with_capacity(pairs.len());
    for user in pairs.chunk_by(|a, b| a.0.0 == b.0.0) {
        let mut times: Vec<i64> = user.iter().map(|(_, (_, at))| *at).collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.dedup();
        later.extend(
            user.iter()
                .map(|(_, (_, at))| times.partition_point(|t| t > at) as u32),
        );
    }
    later
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_halves_per_later_order() {
        // User 0 bought item 2 at t=1, items 0 and 1 together at t=5, item 2 again at t=9;
        // user 1 bought item 1 once.
        let t = Train::with_times(
            2,
            3,
            &[
                (0, 2, 1.0, 1),
                (0, 0, 1.0, 5),
                (0, 1, 1.0, 5),
                (0, 2, 1.0, 9),
                (1, 1, 1.0, 3),
            ],
        );
        let p: Vec<(usize, f32)> = t.profile(0, Some(1.0)).collect();
        // Item 2's latest purchase is the newest order; 0 and 1 are one order older.
        assert_eq!(p, vec![(0, 0.5), (1, 0.5), (2, 1.0)]);
        let flat: Vec<(usize, f32)> = t.profile(0, None).collect();
        assert_eq!(flat, vec![(0, 1.0), (1, 1.0), (2, 1.0)]);
        assert_eq!(t.profile(1, Some(2.0)).collect::<Vec<_>>(), vec![(1, 1.0)]);
        let counts: Vec<(usize, f32)> = t.user_items(0).collect();
        assert_eq!(counts, vec![(0, 1.0), (1, 1.0), (2, 2.0)]);
    }
}
