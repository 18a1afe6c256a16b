//! Offline evaluation: MovieLens-100K (per-user temporal 80/20 split) and The Complete Journey
//! (weeks 1-45 train, 46-53 test), ranking over all items with the user's training items
//! excluded. Metrics at k: precision, recall, NDCG (binary gain, IDCG over min(|test|, k)) and
//! hit rate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::models::{self, Model, Train};

/// Metrics of one strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub strategy: String,
    pub users: usize,
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub hit_rate: f64,
    /// Seconds to fit and score.
    pub seconds: f64,
}

/// Scores every test user with `model` and averages the metrics at `k`.
pub fn evaluate(
    model: &dyn Model,
    train: &Train,
    test: &BTreeMap<usize, HashSet<usize>>,
    k: usize,
    only_new: bool,
) -> (f64, f64, f64, f64, usize) {
    let users: Vec<(&usize, &HashSet<usize>)> = test.iter().collect();
    let per_user = models::par_map(users.len(), |n| {
        let (&u, relevant) = users[n];
        let seen: Vec<usize> = train.user_items(u).map(|(i, _)| i).collect();
        let relevant: HashSet<usize> = if only_new {
            relevant
                .iter()
                .copied()
                .filter(|i| !seen.contains(i))
                .collect()
        } else {
            relevant.clone()
        };
        if relevant.is_empty() {
            return None;
        }
        let mut scores = vec![0f32; train.items];
        model.score(u, &mut scores);
        let exclude = if only_new { seen } else { Vec::new() };
        let top = models::top_k(&scores, k, &exclude);
        let hits: Vec<bool> = top
            .iter()
            .map(|(i, _)| relevant.contains(&(*i as usize)))
            .collect();
        let h = hits.iter().filter(|x| **x).count() as f64;
        let dcg: f64 = hits
            .iter()
            .enumerate()
            .filter(|(_, x)| **x)
            .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
            .sum();
        let idcg: f64 = (0..relevant.len().min(k))
            .map(|r| 1.0 / ((r + 2) as f64).log2())
            .sum();
        Some((
            h / k as f64,
            h / relevant.len() as f64,
            dcg / idcg,
            if h > 0.0 { 1.0 } else { 0.0 },
        ))
    });
    let vals: Vec<(f64, f64, f64, f64)> = per_user.into_iter().flatten().collect();
    let n = vals.len().max(1) as f64;
    let sum = vals.iter().fold((0.0, 0.0, 0.0, 0.0), |a, b| {
        (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
    });
    (sum.0 / n, sum.1 / n, sum.2 / n, sum.3 / n, vals.len())
}

/// A dataset ready for evaluation.
pub struct Split {
    pub train: Train,
    pub test: BTreeMap<usize, HashSet<usize>>,
    /// Text per item (content model).
    pub docs: Vec<String>,
    /// Segment per user (demographic model) and the number of segments.
    pub segment_of: Vec<Option<u32>>,
    pub segments: usize,
    pub items_label: Vec<String>,
}

fn tsv(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

/// What a split holds out of each user's time-ordered interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holdout {
    /// The last 20 %: the test split, for reporting.
    Test,
    /// The last 20 % of the first 80 %: a validation split carved from the training data only,
    /// for tuning (it never sees the test interactions).
    Validation,
}

/// MovieLens-100K as shipped in the recbole wheel (atomic files): every rating is an
/// interaction; each user's ratings sorted by time, then item id; the first ⌊0.8·n⌋ train
/// (for [`Holdout::Validation`], the first ⌊0.8·⌊0.8·n⌋⌋ of those train).
pub fn movielens(dir: &Path, holdout: Holdout) -> Result<Split, String> {
    let inter = tsv(&dir.join("ml-100k.inter"))?;
    let mut users: HashMap<String, usize> = HashMap::new();
    let mut items: HashMap<String, usize> = HashMap::new();
    let mut labels = Vec::new();
    let mut by_user: Vec<Vec<(i64, usize)>> = Vec::new();
    for r in &inter {
        let (u, i, t) = (
            &r[0],
            &r[1],
            r[3].parse::<f64>().map_err(|e| e.to_string())? as i64,
        );
        let nu = users.len();
        let u = *users.entry(u.clone()).or_insert(nu);
        let ni = items.len();
        let i = *items.entry(i.clone()).or_insert_with(|| {
            labels.push(r[1].clone());
            ni
        });
        if u == by_user.len() {
            by_user.push(Vec::new());
        }
        by_user[u].push((t, i));
    }
    let mut triples = Vec::new();
    let mut test = BTreeMap::new();
    for (u, list) in by_user.iter_mut().enumerate() {
        list.sort_by(|a, b| {
            a.0.cmp(&b.0).then(
                labels[a.1]
                    .parse::<u64>()
                    .unwrap_or(0)
                    .cmp(&labels[b.1].parse::<u64>().unwrap_or(0)),
            )
        });
        let cut = list.len() * 8 / 10;
        let (fit_on, held) = match holdout {
            Holdout::Test => (&list[..cut], &list[cut..]),
            Holdout::Validation => list[..cut].split_at(cut * 8 / 10),
        };
        for &(at, i) in fit_on {
            triples.push((u as u32, i as u32, 1.0, at));
        }
        let t: HashSet<usize> = held.iter().map(|(_, i)| *i).collect();
        if !t.is_empty() {
            test.insert(u, t);
        }
    }
    let mut docs = vec![String::new(); items.len()];
    for r in tsv(&dir.join("ml-100k.item"))? {
        if let Some(&i) = items.get(&r[0]) {
            docs[i] = format!(
                "{} {}",
                r.get(1).cloned().unwrap_or_default(),
                r.get(3).cloned().unwrap_or_default()
            );
        }
    }
    // Segments: gender × age band.
    let mut seg_index: HashMap<String, u32> = HashMap::new();
    let mut segment_of = vec![None; users.len()];
    for r in tsv(&dir.join("ml-100k.user"))? {
        if let Some(&u) = users.get(&r[0]) {
            let age: u32 = r[1].parse().unwrap_or(0);
            let band = match age {
                0..=17 => "<18",
                18..=24 => "18-24",
                25..=34 => "25-34",
                35..=44 => "35-44",
                45..=54 => "45-54",
                _ => "55+",
            };
            let key = format!("{}|{band}", r[2]);
            let n = seg_index.len() as u32;
            segment_of[u] = Some(*seg_index.entry(key).or_insert(n));
        }
    }
    Ok(Split {
        train: Train::with_times(users.len(), items.len(), &triples),
        test,
        docs,
        segment_of,
        segments: seg_index.len(),
        items_label: labels,
    })
}

/// One result table row per strategy (MovieLens: new items only, by construction).
pub fn run_all(
    split: &Split,
    k: usize,
    only_new: bool,
    params: models::Params,
    strategies: &[&str],
) -> Vec<Metrics> {
    let inputs = models::Inputs {
        train: &split.train,
        docs: &split.docs,
        segment_of: &split.segment_of,
        segments: split.segments,
    };
    let fitted = models::Fitted::fit(&inputs, params, strategies);
    evaluate_all(&fitted, &split.test, k, only_new, strategies, false)
}

// --- The Complete Journey ------------------------------------------------------------------------

/// The Complete Journey as canonical records, ready for the gateway's import path.
pub struct CompleteJourney {
    /// Canonical order JSON per basket: (basket id, body).
    pub orders: Vec<(String, Vec<u8>)>,
    /// Canonical listing JSON per product: (product id, body).
    pub listings: Vec<(String, Vec<u8>)>,
    /// The dataset's week of each basket.
    pub week_of: HashMap<String, u32>,
    /// Rows left out (quantity 0: a coupon or a price adjustment, not a purchase of units).
    pub rows_without_units: u64,
    pub rows: u64,
}

fn cj_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, String> {
    csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn cj_col(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize, String> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("{}: no '{name}' column", path.display()))
}

/// Reads the three CSV files `scripts/fetch-datasets.sh` writes (transactions, products,
/// demographics) into canonical records: households are customers (known by their loyalty id,
/// with their age band), baskets are orders shipped to US, products are listings (department,
/// category, brand). Times carry no zone in the data and are read as UTC.
pub fn complete_journey(dir: &Path) -> Result<CompleteJourney, String> {
    let age_of = cj_ages(&dir.join("demographics.csv"))?;
    let (listings, title_of) = cj_products(&dir.join("products.csv"))?;
    let t = cj_transactions(&dir.join("transactions.csv"))?;
    let orders = t
        .baskets
        .into_iter()
        .filter(|(_, b)| !b.lines.is_empty())
        .map(|(id, b)| {
            let order = cj_order(&id, &b, &title_of, &age_of);
            (id, order)
        })
        .collect();
    Ok(CompleteJourney {
        orders,
        listings,
        week_of: t.week_of,
        rows_without_units: t.without_units,
        rows: t.rows,
    })
}

/// Demographics: household → age band.
fn cj_ages(path: &Path) -> Result<HashMap<String, String>, String> {
    let mut r = cj_csv(path)?;
    let h = r.headers().map_err(|e| e.to_string())?.clone();
    let (hh, age) = (cj_col(&h, "household_id", path)?, cj_col(&h, "age", path)?);
    let mut age_of = HashMap::new();
    for row in r.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        age_of.insert(row[hh].to_string(), row[age].to_string());
    }
    Ok(age_of)
}

/// Canonical listings (product id, JSON), products → listings; and each product's title.
type Products = (Vec<(String, Vec<u8>)>, HashMap<String, String>);

/// Products → listings, with each product's title (for order lines).
fn cj_products(path: &Path) -> Result<Products, String> {
    use serde_json::json;
    let mut r = cj_csv(path)?;
    let h = r.headers().map_err(|e| e.to_string())?.clone();
    let cols = [
        "product_id",
        "department",
        "brand",
        "product_category",
        "product_type",
        "package_size",
    ]
    .iter()
    .map(|c| cj_col(&h, c, path))
    .collect::<Result<Vec<_>, _>>()?;
    let mut listings = Vec::new();
    let mut title_of: HashMap<String, String> = HashMap::new();
    for row in r.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let get = |i: usize| Some(row[cols[i]].trim()).filter(|s| !s.is_empty());
        let id = row[cols[0]].to_string();
        let title = get(4)
            .or(get(3))
            .or(get(1))
            .map(str::to_string)
            .unwrap_or_else(|| format!("product {id}"));
        let category = [get(1), get(3)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / ");
        let mut l = json!({
            "external_id": id,
            "revision": {"updated_at": "2017-01-01T00:00:00Z"},
            "sku": id,
            "title": title,
            "status": "active",
        });
        let o = l.as_object_mut().expect("object");
        if !category.is_empty() {
            o.insert("category".into(), category.into());
        }
        if let Some(b) = get(2) {
            o.insert("brand".into(), b.into());
        }
        if let Some(p) = get(5) {
            o.insert("description".into(), p.into());
        }
        title_of.insert(id.clone(), title);
        listings.push((id, serde_json::to_vec(&l).expect("json")));
    }
    Ok((listings, title_of))
}

/// One basket: its household, its earliest transaction time and its lines (product, units,
/// value).
struct Basket {
    household: String,
    at: String,
    lines: Vec<(String, u32, rust_decimal::Decimal)>,
}

/// What the transactions file holds, by basket.
struct Transactions {
    baskets: BTreeMap<String, Basket>,
    week_of: HashMap<String, u32>,
    rows: u64,
    without_units: u64,
}

/// Transactions → baskets; rows without units (coupons, price adjustments) are counted and
/// left out.
fn cj_transactions(path: &Path) -> Result<Transactions, String> {
    use rust_decimal::Decimal;
    let mut r = cj_csv(path)?;
    let h = r.headers().map_err(|e| e.to_string())?.clone();
    let [hh, basket, product, qty, value, week, ts] = [
        "household_id",
        "basket_id",
        "product_id",
        "quantity",
        "sales_value",
        "week",
        "transaction_timestamp",
    ]
    .map(|c| cj_col(&h, c, path));
    let (hh, basket, product, qty, value, week, ts) =
        (hh?, basket?, product?, qty?, value?, week?, ts?);
    let mut t = Transactions {
        baskets: BTreeMap::new(),
        week_of: HashMap::new(),
        rows: 0,
        without_units: 0,
    };
    for (n, row) in r.records().enumerate() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        t.rows += 1;
        let bad = |column: &str, what: &str| {
            format!(
                "{}: line {}, column {column}: {what}",
                path.display(),
                n + 2
            )
        };
        let q: u32 = row[qty]
            .parse()
            .map_err(|_| bad("quantity", "not a count"))?;
        let v: Decimal = row[value]
            .parse()
            .map_err(|_| bad("sales_value", "not a decimal"))?;
        let w: u32 = row[week].parse().map_err(|_| bad("week", "not a number"))?;
        let b = row[basket].to_string();
        t.week_of.insert(b.clone(), w);
        let entry = t.baskets.entry(b).or_insert_with(|| Basket {
            household: row[hh].to_string(),
            at: row[ts].to_string(),
            lines: Vec::new(),
        });
        if row[ts] < *entry.at {
            entry.at = row[ts].to_string();
        }
        if q == 0 {
            t.without_units += 1;
            continue;
        }
        entry
            .lines
            .push((row[product].to_string(), q, v.round_dp(2)));
    }
    Ok(t)
}

/// A basket as a canonical order JSON (paid, shipped to US, in USD).
fn cj_order(
    id: &str,
    b: &Basket,
    title_of: &HashMap<String, String>,
    age_of: &HashMap<String, String>,
) -> Vec<u8> {
    use rust_decimal::Decimal;
    use serde_json::json;
    let usd = |d: Decimal| json!({"amount": d.to_string(), "currency": "USD"});
    // "2017-01-01 11:53:26.000000000" (no zone) → RFC 3339, read as UTC.
    let at = format!("{}Z", b.at.get(..19).unwrap_or(&b.at).replacen(' ', "T", 1));
    let mut subtotal = Decimal::ZERO;
    let lines: Vec<serde_json::Value> = b
        .lines
        .iter()
        .enumerate()
        .map(|(i, (p, q, v))| {
            subtotal += *v;
            json!({
                "line_id": (i + 1).to_string(),
                "sku": p,
                "title": title_of.get(p).cloned().unwrap_or_else(|| format!("product {p}")),
                "quantity": q,
                "unit_price": usd((*v / Decimal::from(*q)).round_dp(2)),
                "line_total": usd(*v),
                "discount": usd(Decimal::ZERO),
                "tax": usd(Decimal::ZERO),
            })
        })
        .collect();
    let mut customer = json!({"external_id": b.household});
    if let Some(a) = age_of.get(&b.household) {
        customer["age_band"] = a.clone().into();
    }
    let order = json!({
        "external_id": id,
        "revision": {"updated_at": at},
        "status": "paid",
        "placed_at": at,
        "currency": "USD",
        "taxes_included": false,
        "customer": customer,
        "shipping_address": {"country": "US"},
        "lines": lines,
        "totals": {
            "subtotal": usd(subtotal),
            "shipping": usd(Decimal::ZERO),
            "discount": usd(Decimal::ZERO),
            "tax": usd(Decimal::ZERO),
            "grand_total": usd(subtotal),
        },
    });
    serde_json::to_vec(&order).expect("json")
}

/// The Complete Journey's split, from the jobs' data (what went through the import path and
/// the event stream): baskets of weeks 1-45 train, 46-53 test.
pub fn complete_journey_split(
    snap: &super::job::Snapshot,
    instance: &str,
    week_of: &HashMap<String, u32>,
) -> (super::job::Dataset, BTreeMap<usize, HashSet<usize>>) {
    use crate::model::OrderId;
    let week_by_order: HashMap<String, u32> = week_of
        .iter()
        .map(|(b, w)| (OrderId::derive(instance, b).as_str().to_string(), *w))
        .collect();
    let is_train =
        |o: &super::data::Interaction| week_by_order.get(&o.order_id).is_some_and(|w| *w <= 45);
    let ds = super::job::dataset(snap, is_train);
    let mut test: BTreeMap<usize, HashSet<usize>> = BTreeMap::new();
    for o in &snap.orders {
        if week_by_order.get(&o.order_id).is_some_and(|w| *w >= 46)
            && let Some(u) = ds.customer_index(&o.customer)
        {
            for l in &o.lines {
                if let Some(i) = ds.item_index(&l.item) {
                    test.entry(u).or_default().insert(i);
                }
            }
        }
    }
    (ds, test)
}

/// Metrics of every strategy on a dataset, plus the buy-again baseline when `buy_again`.
/// The models are fitted once by the caller, so one fit serves several test modes.
pub fn evaluate_all(
    fitted: &models::Fitted<'_>,
    test: &BTreeMap<usize, HashSet<usize>>,
    k: usize,
    only_new: bool,
    strategies: &[&str],
    buy_again: bool,
) -> Vec<Metrics> {
    let mut out = Vec::new();
    let mut push = |name: &str, fit: f64, m: &dyn Model| {
        let started = std::time::Instant::now();
        let (p, r, n, h, users) = evaluate(m, fitted.train, test, k, only_new);
        out.push(Metrics {
            strategy: name.to_string(),
            users,
            precision: p,
            recall: r,
            ndcg: n,
            hit_rate: h,
            seconds: fit + started.elapsed().as_secs_f64(),
        });
    };
    if buy_again {
        push(
            "buy_again",
            0.0,
            &models::BuyAgain {
                train: fitted.train,
            },
        );
    }
    for s in strategies {
        fitted.with_model(s, |m| push(s, fitted.seconds(s), m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user with ten ratings at times 1..=10 (item i at time i), in recbole's atomic files.
    fn ten_ratings() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut inter =
            String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
        for i in (1..=10).rev() {
            inter.push_str(&format!("7\t{i}\t4\t{i}\n"));
        }
        std::fs::write(dir.path().join("ml-100k.inter"), inter).unwrap();
        std::fs::write(dir.path().join("ml-100k.item"), "item_id:token\n").unwrap();
        std::fs::write(dir.path().join("ml-100k.user"), "user_id:token\n").unwrap();
        dir
    }

    fn labels(split: &Split, items: impl Iterator<Item = usize>) -> Vec<u32> {
        let mut v: Vec<u32> = items
            .map(|i| split.items_label[i].parse().unwrap())
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn validation_is_carved_from_training_only() {
        let dir = ten_ratings();
        let test = movielens(dir.path(), Holdout::Test).unwrap();
        assert_eq!(
            labels(&test, test.train.user_items(0).map(|x| x.0)),
            (1..=8).collect::<Vec<_>>()
        );
        assert_eq!(labels(&test, test.test[&0].iter().copied()), vec![9, 10]);
        let val = movielens(dir.path(), Holdout::Validation).unwrap();
        // ⌊0.8 · 8⌋ = 6 train, the next 2 validate; the test's 9 and 10 appear in neither.
        assert_eq!(
            labels(&val, val.train.user_items(0).map(|x| x.0)),
            (1..=6).collect::<Vec<_>>()
        );
        assert_eq!(labels(&val, val.test[&0].iter().copied()), vec![7, 8]);
        // The newest training rating weighs most once recency is on.
        let newest = val.items_label.iter().position(|l| l == "6").unwrap();
        let (_, w) = val
            .train
            .profile(0, Some(1.0))
            .find(|x| x.0 == newest)
            .unwrap();
        assert_eq!(w, 1.0);
    }

    #[test]
    #[ignore = "needs scripts/fetch-datasets.sh"]
    fn movielens_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-100k");
        let split = super::movielens(&dir, super::Holdout::Test).unwrap();
        for m in super::run_all(
            &split,
            10,
            true,
            crate::reco::models::Params {
                ease_items: 5000,
                ..Default::default()
            },
            crate::reco::models::STRATEGIES,
        ) {
            eprintln!(
                "{:<12} P {:.4} R {:.4} NDCG {:.4} HR {:.4} ({} users, {:.2}s)",
                m.strategy, m.precision, m.recall, m.ndcg, m.hit_rate, m.users, m.seconds
            );
        }
    }
}
