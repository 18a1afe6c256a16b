//! Recommendation strategies over an implicit user × item matrix. Scores are `f32` relevance
//! values (not money). Every model is deterministic: ties are broken by item index.

use std::collections::HashMap;

pub use super::train::{Interaction, Train};

/// A strategy: fills `out` (one score per item) for a user.
pub trait Model: Send + Sync {
    fn name(&self) -> &'static str;
    fn score(&self, user: usize, out: &mut [f32]);
}

/// The `k` best items (highest score, then lowest index), skipping `exclude` and -inf.
pub fn top_k(scores: &[f32], k: usize, exclude: &[usize]) -> Vec<(u32, f32)> {
    let mut ex = exclude.to_vec();
    ex.sort_unstable();
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        if !s.is_finite() || s <= 0.0 || ex.binary_search(&i).is_ok() {
            continue;
        }
        if best.len() == k && s <= best[k - 1].1 {
            continue;
        }
        let pos = best.partition_point(|&(j, t)| t > s || (t == s && (j as usize) < i));
        best.insert(pos, (i as u32, s));
        best.truncate(k);
    }
    best
}

/// Runs `f` over `0..n` on two threads (the machine has two cores), collecting in order.
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(f)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// Keeps the `k` best (highest score, then lowest index), sorted, in a right-sized buffer (the
/// neighbour lists of 90,000 items must not keep every candidate's capacity).
pub fn keep_best(v: &mut Vec<(u32, f32)>, k: usize) {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, order);
    }
    v.truncate(k);
    v.sort_by(order);
    v.shrink_to_fit();
}

// --- Popularity --------------------------------------------------------------------------------

pub struct Popularity {
    pub counts: Vec<f32>,
}

impl Popularity {
    pub fn fit(t: &Train) -> Self {
        Self {
            counts: (0..t.items).map(|i| t.item_count(i) as f32).collect(),
        }
    }
}

impl Model for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }
    fn score(&self, _: usize, out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}

// --- Item-based collaborative filtering ----------------------------------------------------------

/// Cosine similarity between item columns (binary), shrunk, top-k neighbours per item.
pub struct ItemKnn {
    pub neighbors: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    pub fn fit(t: &Train, k: usize, shrink: f32) -> Self {
        let norms: Vec<f32> = (0..t.items)
            .map(|i| (t.item_count(i) as f32).sqrt())
            .collect();
        let neighbors = par_map(t.items, |i| {
            // Dense accumulator; only touched entries are read back.
            thread_local! {
                static ACC: std::cell::RefCell<(Vec<f32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
            }
            ACC.with(|cell| {
                let (acc, touched) = &mut *cell.borrow_mut();
                if acc.len() != t.items {
                    *acc = vec![0f32; t.items];
                }
                for (u, _) in t.item_users(i) {
                    for (j, _) in t.user_items(u) {
                        if j != i {
                            if acc[j] == 0.0 {
                                touched.push(j as u32);
                            }
                            acc[j] += 1.0;
                        }
                    }
                }
                let mut sims: Vec<(u32, f32)> = touched
                    .iter()
                    .map(|&j| (j, acc[j as usize] / (norms[i] * norms[j as usize] + shrink)))
                    .collect();
                for &j in touched.iter() {
                    acc[j as usize] = 0.0;
                }
                touched.clear();
                keep_best(&mut sims, k);
                sims
            })
        });
        Self { neighbors }
    }
}

pub struct ItemKnnModel<'a> {
    pub knn: &'a ItemKnn,
    pub train: &'a Train,
    /// The user's profile weighted by recency (see [`Train::profile`]).
    pub recency: Option<f32>,
}

impl Model for ItemKnnModel<'_> {
    fn name(&self) -> &'static str {
        "item_knn"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        out.fill(0.0);
        for (j, w) in self.train.profile(u, self.recency) {
            for &(i, s) in &self.knn.neighbors[j] {
                out[i as usize] += w * s;
            }
        }
    }
}

// --- User-based collaborative filtering ----------------------------------------------------------

/// Cosine over purchase vectors; a user's score for an item is the similarity-weighted share
/// of their `k` nearest neighbours who bought it.
pub struct UserKnn {
    pub neighbors: Vec<Vec<(u32, f32)>>,
}

impl UserKnn {
    pub fn fit(t: &Train, k: usize) -> Self {
        let norms: Vec<f32> = (0..t.users)
            .map(|u| (t.user_len(u) as f32).sqrt())
            .collect();
        let neighbors = par_map(t.users, |u| {
            let mut acc = vec![0f32; t.users];
            for (i, _) in t.user_items(u) {
                for (v, _) in t.item_users(i) {
                    acc[v] += 1.0;
                }
            }
            acc[u] = 0.0;
            let mut sims: Vec<(u32, f32)> = acc
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0.0)
                .map(|(v, c)| (v as u32, c / (norms[u] * norms[v]).max(1e-9)))
                .collect();
            keep_best(&mut sims, k);
            sims
        });
        Self { neighbors }
    }
}

pub struct UserKnnModel<'a> {
    pub knn: &'a UserKnn,
    pub train: &'a Train,
}

impl Model for UserKnnModel<'_> {
    fn name(&self) -> &'static str {
        "user_knn"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        out.fill(0.0);
        let total: f32 = self.knn.neighbors[u].iter().map(|(_, s)| s.abs()).sum();
        if total <= 0.0 {
            return;
        }
        for &(v, s) in &self.knn.neighbors[u] {
            for (i, _) in self.train.user_items(v as usize) {
                out[i] += s / total;
            }
        }
    }
}

// --- Content-based (TF-IDF) ---------------------------------------------------------------------

/// TF-IDF vectors of item text (title, description, category, brand), L2-normalized. Terms in
/// more than `max_df` of the items are dropped (they say little and cost much).
pub struct Content {
    pub item_terms: Vec<Vec<(u32, f32)>>,
    pub postings: Vec<Vec<(u32, f32)>>,
}

pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2)
        .map(|t| t.to_lowercase())
        .collect()
}

impl Content {
    pub fn fit(docs: &[String], max_df: f32) -> Self {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut tf: Vec<Vec<(u32, f32)>> = Vec::with_capacity(docs.len());
        let mut df: Vec<u32> = Vec::new();
        for d in docs {
            let mut counts: HashMap<u32, f32> = HashMap::new();
            for t in tokens(d) {
                let next = vocab.len() as u32;
                let id = *vocab.entry(t).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                *counts.entry(id).or_default() += 1.0;
            }
            for id in counts.keys() {
                df[*id as usize] += 1;
            }
            let mut v: Vec<(u32, f32)> = counts.into_iter().collect();
            v.sort_by_key(|(t, _)| *t);
            tf.push(v);
        }
        let n = docs.len().max(1) as f32;
        let limit = (max_df * n).max(2.0);
        let mut item_terms = Vec::with_capacity(tf.len());
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); df.len()];
        for (i, v) in tf.into_iter().enumerate() {
            let mut w: Vec<(u32, f32)> = v
                .into_iter()
                .filter(|(t, _)| (df[*t as usize] as f32) <= limit)
                .map(|(t, c)| {
                    (
                        t,
                        (1.0 + c.ln()) * (n / df[t as usize] as f32).ln().max(0.0),
                    )
                })
                .filter(|(_, x)| *x > 0.0)
                .collect();
            let norm = w.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                for (_, x) in &mut w {
                    *x /= norm;
                }
            }
            for &(t, x) in &w {
                postings[t as usize].push((i as u32, x));
            }
            item_terms.push(w);
        }
        Self {
            item_terms,
            postings,
        }
    }

    /// Cosine of each item with a profile (a sum of item vectors).
    pub fn score_profile(&self, profile: &[(u32, f32)], out: &mut [f32]) {
        out.fill(0.0);
        let norm = profile.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
        if norm <= 0.0 {
            return;
        }
        for &(t, p) in profile {
            for &(i, x) in &self.postings[t as usize] {
                out[i as usize] += p * x / norm;
            }
        }
    }
}

pub struct ContentModel<'a> {
    pub content: &'a Content,
    pub train: &'a Train,
    /// Most profile terms used (the strongest).
    pub max_terms: usize,
}

impl Model for ContentModel<'_> {
    fn name(&self) -> &'static str {
        "content"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        // A BTreeMap, not a HashMap: the summation order (and so every score bit) is the same
        // on every run, which the crash-safety guarantee ("same results") relies on.
        let mut profile: std::collections::BTreeMap<u32, f32> = Default::default();
        for (j, w) in self.train.user_items(u) {
            for &(t, x) in &self.content.item_terms[j] {
                *profile.entry(t).or_default() += x * w.min(5.0);
            }
        }
        let mut v: Vec<(u32, f32)> = profile.into_iter().collect();
        if v.len() > self.max_terms {
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(self.max_terms);
            v.sort_by_key(|(t, _)| *t);
        }
        self.content.score_profile(&v, out);
    }
}

// --- Demographic ---------------------------------------------------------------------------------

/// Popularity within the user's segment (destination country, age band, gender… whatever the
/// data provides); users without a segment, or in a tiny one, get overall popularity.
pub struct Demographic {
    pub segment_of: Vec<Option<u32>>,
    pub by_segment: Vec<Vec<f32>>,
    pub global: Vec<f32>,
}

impl Demographic {
    pub fn fit(t: &Train, segment_of: Vec<Option<u32>>, segments: usize, min_users: usize) -> Self {
        let mut by_segment = vec![vec![0f32; t.items]; segments];
        let mut sizes = vec![0usize; segments];
        for (u, s) in segment_of.iter().enumerate().take(t.users) {
            if let Some(s) = s {
                sizes[*s as usize] += 1;
                for (i, _) in t.user_items(u) {
                    by_segment[*s as usize][i] += 1.0;
                }
            }
        }
        let segment_of = segment_of
            .into_iter()
            .map(|s| s.filter(|s| sizes[*s as usize] >= min_users))
            .collect();
        let global = Popularity::fit(t).counts;
        Self {
            segment_of,
            by_segment,
            global,
        }
    }
}

impl Model for Demographic {
    fn name(&self) -> &'static str {
        "demographic"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        match self.segment_of.get(u).copied().flatten() {
            // Segment popularity first; overall popularity breaks ties and fills gaps.
            Some(s) => {
                let max = self.global.iter().copied().fold(1.0f32, f32::max);
                for ((o, seg), g) in out
                    .iter_mut()
                    .zip(&self.by_segment[s as usize])
                    .zip(&self.global)
                {
                    *o = seg + g / (max * 10.0);
                }
            }
            None => out.copy_from_slice(&self.global),
        }
    }
}

// --- EASE ----------------------------------------------------------------------------------------

/// EASE (Steck 2019): B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹, over the `max_items` most
/// popular items (the inverse is dense).
pub struct Ease {
    /// Model column → item.
    pub items: Vec<u32>,
    pub column: HashMap<u32, usize>,
    pub b: faer::Mat<f32>,
}

impl Ease {
    pub fn fit(t: &Train, lambda: f64, max_items: usize) -> Self {
        use faer::linalg::solvers::DenseSolveCore;
        let mut order: Vec<u32> = (0..t.items as u32)
            .filter(|&i| t.item_count(i as usize) > 0)
            .collect();
        order.sort_by(|&a, &b| {
            t.item_count(b as usize)
                .cmp(&t.item_count(a as usize))
                .then(a.cmp(&b))
        });
        order.truncate(max_items);
        order.sort_unstable();
        let column: HashMap<u32, usize> = order.iter().enumerate().map(|(c, i)| (*i, c)).collect();
        let n = order.len();
        let mut g = faer::Mat::<f64>::zeros(n, n);
        for u in 0..t.users {
            let cols: Vec<usize> = t
                .user_items(u)
                .filter_map(|(i, _)| column.get(&(i as u32)).copied())
                .collect();
            for &a in &cols {
                for &b in &cols {
                    g[(a, b)] += 1.0;
                }
            }
        }
        for d in 0..n {
            g[(d, d)] += lambda;
        }
        let p = match g.llt(faer::Side::Lower) {
            Ok(llt) => llt.inverse(),
            Err(_) => faer::Mat::<f64>::identity(n, n),
        };
        let mut b = faer::Mat::<f32>::zeros(n, n);
        for c in 0..n {
            let d = p[(c, c)];
            for r in 0..n {
                b[(r, c)] = if r == c { 0.0 } else { (-p[(r, c)] / d) as f32 };
            }
        }
        Self {
            items: order,
            column,
            b,
        }
    }
}

pub struct EaseModel<'a> {
    pub ease: &'a Ease,
    pub train: &'a Train,
    /// The user's profile weighted by recency (see [`Train::profile`]).
    pub recency: Option<f32>,
}

impl Model for EaseModel<'_> {
    fn name(&self) -> &'static str {
        "ease"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        out.fill(0.0);
        let rows: Vec<(usize, f32)> = self
            .train
            .profile(u, self.recency)
            .filter_map(|(i, w)| self.ease.column.get(&(i as u32)).map(|&r| (r, w)))
            .collect();
        for (c, &item) in self.ease.items.iter().enumerate() {
            let mut s = 0f32;
            for &(r, w) in &rows {
                s += w * self.ease.b[(r, c)];
            }
            out[item as usize] = s;
        }
    }
}

// --- Blended default -----------------------------------------------------------------------------

/// The default for serving: for a known customer, item-kNN and EASE (when fitted) with some
/// content similarity, which also lifts new items with no sales yet; for a new customer, their
/// segment's favourites, else the most popular items.
pub struct Blend<'a> {
    pub parts: Vec<(&'a dyn Model, f32)>,
    pub cold: &'a dyn Model,
    pub train: &'a Train,
}

impl Model for Blend<'_> {
    fn name(&self) -> &'static str {
        "blended"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        if self.train.user_len(u) == 0 {
            self.cold.score(u, out);
            return;
        }
        out.fill(0.0);
        let mut buf = vec![0f32; out.len()];
        for (m, w) in &self.parts {
            m.score(u, &mut buf);
            let max = buf
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(0f32, f32::max);
            if max > 0.0 {
                for (o, b) in out.iter_mut().zip(&buf) {
                    if *b > 0.0 {
                        *o += w * b / max;
                    }
                }
            }
        }
    }
}

// --- Buy again (baseline) ------------------------------------------------------------------------

/// The evaluation baseline for repeat purchases: what the user bought most often, again.
pub struct BuyAgain<'a> {
    pub train: &'a Train,
}

impl Model for BuyAgain<'_> {
    fn name(&self) -> &'static str {
        "buy_again"
    }
    fn score(&self, u: usize, out: &mut [f32]) {
        out.fill(0.0);
        for (i, w) in self.train.user_items(u) {
            out[i] = w;
        }
    }
}

// --- All strategies, fitted together --------------------------------------------------------------

/// Every strategy name, in the order results are reported.
pub const STRATEGIES: &[&str] = &[
    "popularity",
    "item_knn",
    "user_knn",
    "content",
    "demographic",
    "ease",
    "blended",
];

/// The first of `names` that is not a strategy.
pub fn unknown_strategy(names: &[String]) -> Option<&str> {
    names
        .iter()
        .map(String::as_str)
        .find(|s| !STRATEGIES.contains(s))
}

/// The default strategy served.
pub const DEFAULT_STRATEGY: &str = "blended";

/// Model parameters (the defaults are the ones measured in README.md).
#[derive(Debug, Clone)]
pub struct Params {
    /// Item-kNN: neighbours kept per item and the similarity shrinkage.
    pub item_k: usize,
    pub shrink: f32,
    /// User-kNN: neighbours per user.
    pub user_k: usize,
    /// Content: terms in more than this share of items are dropped; profile terms kept.
    pub max_df: f32,
    pub profile_terms: usize,
    /// Demographic: smallest segment used (smaller ones fall back to overall popularity).
    pub min_segment_users: usize,
    /// EASE: ridge strength and the most (popular) items in its dense model.
    pub ease_lambda: f64,
    pub ease_items: usize,
    /// Item-kNN and EASE score a customer's items weighted by recency: an item's weight halves
    /// with every this many later orders of the customer (`None`: all weigh the same).
    pub recency_half_life: Option<f32>,
    /// Blended: the weights of item-kNN, EASE and content (each part scaled to its best item).
    pub blend: [f32; 3],
}

impl Default for Params {
    fn default() -> Self {
        Self {
            item_k: 100,
            shrink: 10.0,
            user_k: 50,
            max_df: 0.1,
            profile_terms: 50,
            min_segment_users: 5,
            // A deployment tunes λ, recency and the blend for its own data (`crossgate eval
            // --tune` on MovieLens chooses 1200, 2 and [0.15, 0.8, 0.05]); the defaults are
            // the settings measured on both datasets before recency existed, because
            // MovieLens' short memory (2 later ratings) loses on grocery baskets.
            ease_lambda: 500.0,
            ease_items: 3000,
            recency_half_life: None,
            blend: [0.4, 0.5, 0.1],
        }
    }
}

/// What the strategies are fitted on.
pub struct Inputs<'a> {
    pub train: &'a Train,
    /// Text per item (title, description, category, brand).
    pub docs: &'a [String],
    /// Segment per user and the number of segments.
    pub segment_of: &'a [Option<u32>],
    pub segments: usize,
}

/// The fitted parts of the wanted strategies (a part several strategies share is fitted once),
/// with the seconds each took.
pub struct Fitted<'a> {
    pub train: &'a Train,
    pub params: Params,
    pub popularity: Popularity,
    pub item_knn: Option<ItemKnn>,
    pub user_knn: Option<UserKnn>,
    pub content: Option<Content>,
    pub demographic: Option<Demographic>,
    pub ease: Option<Ease>,
    pub fit_seconds: HashMap<&'static str, f64>,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let s = std::time::Instant::now();
    let v = f();
    (v, s.elapsed().as_secs_f64())
}

impl<'a> Fitted<'a> {
    /// Fits what `wanted` strategies need (`blended` needs item-kNN, EASE, content and
    /// demographic).
    pub fn fit(inputs: &Inputs<'a>, params: Params, wanted: &[&str]) -> Self {
        let t = inputs.train;
        let want =
            |s: &str| wanted.contains(&s) || (wanted.contains(&"blended") && s != "user_knn");
        let mut fit_seconds = HashMap::new();
        let (popularity, s) = timed(|| Popularity::fit(t));
        fit_seconds.insert("popularity", s);
        let mut part = |name: &'static str, on: bool, f: &mut dyn FnMut()| {
            if on {
                let ((), s) = timed(f);
                fit_seconds.insert(name, s);
            }
        };
        let (mut item_knn, mut user_knn, mut content, mut demographic, mut ease) =
            (None, None, None, None, None);
        part("item_knn", want("item_knn"), &mut || {
            item_knn = Some(ItemKnn::fit(t, params.item_k, params.shrink))
        });
        part("user_knn", wanted.contains(&"user_knn"), &mut || {
            user_knn = Some(UserKnn::fit(t, params.user_k))
        });
        part("content", want("content"), &mut || {
            content = Some(Content::fit(inputs.docs, params.max_df))
        });
        part("demographic", want("demographic"), &mut || {
            demographic = Some(Demographic::fit(
                t,
                inputs.segment_of.to_vec(),
                inputs.segments,
                params.min_segment_users,
            ))
        });
        part("ease", want("ease"), &mut || {
            ease = Some(Ease::fit(t, params.ease_lambda, params.ease_items))
        });
        Self {
            train: t,
            params,
            popularity,
            item_knn,
            user_knn,
            content,
            demographic,
            ease,
            fit_seconds,
        }
    }

    /// Seconds to fit what a strategy uses.
    pub fn seconds(&self, strategy: &str) -> f64 {
        let parts: &[&str] = match strategy {
            "blended" => &["item_knn", "ease", "content", "demographic"],
            other => &[other][..],
        };
        parts.iter().filter_map(|p| self.fit_seconds.get(p)).sum()
    }

    /// Runs `f` with the model of a strategy (`None` when it was not fitted).
    pub fn with_model<R>(&self, strategy: &str, f: impl FnOnce(&dyn Model) -> R) -> Option<R> {
        let t = self.train;
        let recency = self.params.recency_half_life;
        match strategy {
            "popularity" => Some(f(&self.popularity)),
            "item_knn" => self.item_knn.as_ref().map(|knn| {
                f(&ItemKnnModel {
                    knn,
                    train: t,
                    recency,
                })
            }),
            "user_knn" => self
                .user_knn
                .as_ref()
                .map(|knn| f(&UserKnnModel { knn, train: t })),
            "content" => self.content.as_ref().map(|content| {
                f(&ContentModel {
                    content,
                    train: t,
                    max_terms: self.params.profile_terms,
                })
            }),
            "demographic" => self.demographic.as_ref().map(|d| f(d)),
            "ease" => self.ease.as_ref().map(|ease| {
                f(&EaseModel {
                    ease,
                    train: t,
                    recency,
                })
            }),
            "blended" => {
                let item = ItemKnnModel {
                    knn: self.item_knn.as_ref()?,
                    train: t,
                    recency,
                };
                let ease = EaseModel {
                    ease: self.ease.as_ref()?,
                    train: t,
                    recency,
                };
                let content = ContentModel {
                    content: self.content.as_ref()?,
                    train: t,
                    max_terms: self.params.profile_terms,
                };
                let cold: &dyn Model = match &self.demographic {
                    Some(d) => d,
                    None => &self.popularity,
                };
                Some(f(&Blend {
                    parts: vec![
                        (&item, self.params.blend[0]),
                        (&ease, self.params.blend[1]),
                        (&content, self.params.blend[2]),
                    ],
                    cold,
                    train: t,
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Train {
        // Users 0,1 buy items 0 and 1; user 2 buys 1 and 2; user 3 buys 0.
        Train::new(
            4,
            4,
            &[
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (2, 1, 1.0),
                (2, 2, 1.0),
                (3, 0, 1.0),
            ],
        )
    }

    #[test]
    fn item_knn_cosine() {
        let t = toy();
        let knn = ItemKnn::fit(&t, 10, 0.0);
        // items 0 and 1 share users 0,1: 2 / (√3 · √3) = 0.667
        let s = knn.neighbors[0].iter().find(|(j, _)| *j == 1).unwrap().1;
        assert!((s - 2.0 / 3.0).abs() < 1e-6);
        let m = ItemKnnModel {
            knn: &knn,
            train: &t,
            recency: None,
        };
        let mut out = vec![0f32; 4];
        m.score(3, &mut out);
        assert_eq!(
            top_k(&out, 1, &[0])[0].0,
            1,
            "user 3 (bought 0) is offered 1"
        );
    }

    #[test]
    fn ease_recovers_co_occurrence() {
        let t = toy();
        let e = Ease::fit(&t, 1.0, 100);
        let m = EaseModel {
            ease: &e,
            train: &t,
            recency: None,
        };
        let mut out = vec![0f32; 4];
        m.score(3, &mut out);
        assert!(out[1] > out[2], "{out:?}");
    }

    #[test]
    fn top_k_breaks_ties_by_index() {
        assert_eq!(
            top_k(&[1.0, 2.0, 2.0, 0.5], 2, &[]),
            vec![(1, 2.0), (2, 2.0)]
        );
        assert_eq!(
            top_k(&[1.0, 2.0, 2.0, 0.5], 2, &[1]),
            vec![(2, 2.0), (0, 1.0)]
        );
    }
}
