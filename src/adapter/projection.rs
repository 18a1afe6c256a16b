//! Which parts of a payload an adapter reads, computed once from its mapping.
//!
//! Parsing materializes only those parts; the rest is still checked for JSON syntax but never
//! built (it shows up as [`Node::Skipped`]). For the 18 KB Shopify order this halves the parse
//! cost, and it keeps the memory of a large payload proportional to what is used.
//!
//! A path read from a node marks its whole subtree as needed ("leaf"); the path's prefixes are
//! kept only as far as the keys on the way.

use super::path::{Anchor, Path, Segment};
use super::spec::{
    AdapterSpec, AddressMapping, Each, Expr, ExprKind, FactMapping, ListingMapping, MoneySpec,
    OrderMapping, Source, StockMapping,
};

/// A trie of the keys an adapter reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Projection {
    /// The whole subtree here is needed.
    pub whole: bool,
    /// Children by key, sorted by key for binary search.
    keys: Vec<(String, Projection)>,
    /// What is needed of each array element (also applied to a single object standing in for a
    /// one-element array, as XML payloads have them).
    elements: Option<Box<Projection>>,
}

/// A path from the document root.
type Route = Vec<Segment>;

impl Projection {
    /// Everything is needed (formats read whole, like the canonical one).
    pub fn everything() -> Self {
        Projection {
            whole: true,
            ..Projection::default()
        }
    }

    pub fn child(&self, key: &str) -> Option<&Projection> {
        self.keys
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.keys[i].1)
            .or_else(|| self.elements.as_deref().and_then(|e| e.child(key)))
    }

    pub fn elements(&self) -> Option<&Projection> {
        self.elements.as_deref()
    }

    fn insert(&mut self, route: &[Segment]) {
        if self.whole {
            return;
        }
        let Some((first, rest)) = route.split_first() else {
            *self = Projection {
                whole: true,
                ..Projection::default()
            };
            return;
        };
        let next = match first {
            Segment::Key(k) => match self.keys.binary_search_by(|(x, _)| x.as_str().cmp(k)) {
                Ok(i) => &mut self.keys[i].1,
                Err(i) => {
                    self.keys.insert(i, (k.clone(), Projection::default()));
                    &mut self.keys[i].1
                }
            },
            Segment::Index(_) | Segment::Wildcard => {
                self.elements.get_or_insert_with(Default::default)
            }
            // A filter reads its key too.
            Segment::Filter { key, .. } => {
                let e = self.elements.get_or_insert_with(Default::default);
                e.insert(&[Segment::Key(key.clone())]);
                e
            }
        };
        next.insert(rest);
    }

    /// The projection of everything an adapter's mappings and webhook sources read.
    pub fn of(spec: &AdapterSpec) -> Projection {
        let mut c = Collector::default();
        if let Some(w) = &spec.webhook {
            for s in w.dedupe_id.iter().chain(w.topic.iter()) {
                match s {
                    Source::Body(p) => c.path(p, &[vec![]], &[vec![]]),
                    Source::Fields(ps) => ps.iter().for_each(|p| c.path(p, &[vec![]], &[vec![]])),
                    Source::FirstOf(named) => {
                        named.values().for_each(|p| c.path(p, &[vec![]], &[vec![]]))
                    }
                    Source::Header(_) => {}
                }
            }
        }
        if let Some(m) = &spec.order {
            c.order(m);
        }
        if let Some(m) = &spec.listing {
            c.listing(m);
        }
        if let Some(m) = &spec.stock {
            c.stock(m);
        }
        for m in spec.facts.values() {
            c.fact(m);
        }
        // What the poller and the fetch worker read of a document.
        if let Some(t) = spec.poll.as_ref().and_then(|p| p.next_token.as_ref()) {
            c.path(&t.token, &[vec![]], &[vec![]]);
        }
        if let Some(t) = spec
            .poll
            .as_ref()
            .and_then(|p| p.offset.as_ref())
            .and_then(|o| o.total.as_ref())
        {
            c.path(t, &[vec![]], &[vec![]]);
        }
        if let Some(f) = &spec.fetch {
            c.path(&f.id, &[vec![]], &[vec![]]);
        }
        let mut p = Projection::default();
        for r in &c.routes {
            p.insert(r);
        }
        p
    }
}

/// Collects the routes (from the document root) of every path a mapping reads.
#[derive(Default)]
struct Collector {
    routes: Vec<Route>,
}

fn join(prefix: &Route, path: &Path) -> Route {
    let mut r = prefix.clone();
    r.extend(path.segments().iter().cloned());
    r
}

impl Collector {
    /// Adds a path read with the given record and current prefixes (each may have several
    /// alternatives when a `root` is a coalesce).
    fn path(&mut self, p: &Path, records: &[Route], currents: &[Route]) {
        let bases: &[Route] = match p.anchor() {
            Anchor::Document => &[vec![]],
            Anchor::Record => records,
            Anchor::Current => currents,
        };
        for b in bases {
            self.routes.push(join(b, p));
        }
    }

    fn expr(&mut self, e: &Expr, records: &[Route], currents: &[Route]) {
        match &e.kind {
            ExprKind::Path(p) | ExprKind::Sum(p) => self.path(p, records, currents),
            ExprKind::When { path, .. } => self.path(path, records, currents),
            ExprKind::Value(_) | ExprKind::Setting(_) => {}
            ExprKind::Coalesce(items) | ExprKind::Join { parts: items, .. } => {
                for i in items {
                    self.expr(i, records, currents);
                }
            }
            ExprKind::Difference(a, b) => {
                self.expr(a, records, currents);
                self.expr(b, records, currents);
            }
        }
    }

    fn opt(&mut self, e: &Option<Expr>, records: &[Route], currents: &[Route]) {
        if let Some(e) = e {
            self.expr(e, records, currents);
        }
    }

    fn money(&mut self, m: &MoneySpec, records: &[Route], currents: &[Route]) {
        self.expr(&m.amount, records, currents);
        self.opt(&m.currency, records, currents);
    }

    /// The routes an expression can point at (for roots and `each`).
    fn targets(&self, e: &Expr, records: &[Route], currents: &[Route]) -> Vec<Route> {
        let mut out = Vec::new();
        let mut visit = |p: &Path| {
            let bases: &[Route] = match p.anchor() {
                Anchor::Document => &[vec![]],
                Anchor::Record => records,
                Anchor::Current => currents,
            };
            for b in bases {
                out.push(join(b, p));
            }
        };
        fn walk(e: &Expr, visit: &mut dyn FnMut(&Path)) {
            match &e.kind {
                ExprKind::Path(p) => visit(p),
                ExprKind::Coalesce(items) => items.iter().for_each(|i| walk(i, visit)),
                _ => {}
            }
        }
        walk(e, &mut visit);
        out
    }

    fn each(&self, each: &Each, records: &[Route], currents: &[Route]) -> Vec<Route> {
        let bases: &[Route] = match each.0.anchor() {
            Anchor::Document => &[vec![]],
            Anchor::Record => records,
            Anchor::Current => currents,
        };
        bases
            .iter()
            .map(|b| {
                let mut r = join(b, &each.0);
                if !matches!(r.last(), Some(Segment::Wildcard)) {
                    r.push(Segment::Wildcard);
                }
                r
            })
            .collect()
    }

    fn record_roots(&mut self, root: &Option<Expr>) -> Vec<Route> {
        match root {
            None => vec![vec![]],
            Some(e) => {
                let doc = [vec![]];
                let roots = self.targets(e, &doc, &doc);
                // `when` conditions or other paths inside the root expression are read too.
                self.expr(e, &doc, &doc);
                // Reading the root itself must not mark it whole: drop those leaf routes again.
                self.routes.retain(|r| !roots.contains(r));
                roots
            }
        }
    }

    fn address(&mut self, a: &Option<AddressMapping>, records: &[Route]) {
        let Some(a) = a else { return };
        let roots = self.targets(&a.root, records, records);
        for f in [
            &a.name,
            &a.company,
            &a.line1,
            &a.line2,
            &a.city,
            &a.region,
            &a.postal_code,
            &a.phone,
        ] {
            self.opt(f, records, &roots);
        }
        self.expr(&a.country, records, &roots);
    }

    fn fact(&mut self, m: &FactMapping) {
        let roots = self.record_roots(&m.root);
        let r = roots.as_slice();
        for e in [&m.id, &m.order_external_id, &m.at] {
            self.expr(e, r, r);
        }
        self.opt(&m.order_instance, r, r);
        if let Some(p) = &m.payment {
            self.expr(&p.status, r, r);
            self.money(&p.amount, r, r);
            if let Some(x) = &p.refunded {
                self.money(x, r, r);
            }
            for e in [&p.id, &p.gateway, &p.processed_at] {
                self.opt(e, r, r);
            }
        }
        if let Some(sh) = &m.shipment {
            self.expr(&sh.status, r, r);
            for e in [&sh.id, &sh.carrier, &sh.shipped_at] {
                self.opt(e, r, r);
            }
            if let Some(t) = &sh.tracking_numbers {
                let el = self.each(t, r, r);
                self.routes.extend(el);
            }
        }
        if let Some(c) = &m.cancellation {
            self.opt(&c.reason, r, r);
        }
    }

    fn order(&mut self, m: &OrderMapping) {
        let roots = self.record_roots(&m.root);
        // With `each`, an order is an element (or, when the array is absent, the root).
        let r = match &m.each {
            Some(each) => {
                let mut r = self.each(each, &roots, &roots);
                r.extend(roots);
                r
            }
            None => roots,
        };
        let r = r.as_slice();
        for e in [
            &m.external_id,
            &m.updated_at,
            &m.placed_at,
            &m.status,
            &m.currency,
        ] {
            self.expr(e, r, r);
        }
        for e in [&m.number, &m.sequence, &m.taxes_included] {
            self.opt(e, r, r);
        }
        if let Some(c) = &m.customer {
            for e in [&c.external_id, &c.email, &c.phone, &c.name] {
                self.opt(e, r, r);
            }
        }
        self.address(&m.billing_address, r);
        self.address(&m.shipping_address, r);
        let l = &m.lines;
        let el = self.each(&l.each, r, r);
        self.opt(&l.skip_when, r, &el);
        for e in [&l.title, &l.quantity] {
            self.expr(e, r, &el);
        }
        for e in [
            &l.line_id,
            &l.sku,
            &l.product_id,
            &l.hs_code,
            &l.origin_country,
            &l.tax_class,
            &l.ship_from,
        ] {
            self.opt(e, r, &el);
        }
        for m in [&l.unit_price, &l.line_total, &l.discount, &l.tax]
            .into_iter()
            .flatten()
        {
            self.money(m, r, &el);
        }
        if let Some(d) = &m.discounts {
            let el = self.each(&d.each, r, r);
            self.opt(&d.code, r, &el);
            self.money(&d.amount, r, &el);
        }
        if let Some(t) = &m.tax_lines {
            let el = self.each(&t.each, r, r);
            self.expr(&t.title, r, &el);
            self.opt(&t.rate, r, &el);
            self.opt(&t.channel_liable, r, &el);
            self.money(&t.amount, r, &el);
        }
        let t = &m.totals;
        for m in [
            &t.subtotal,
            &t.shipping,
            &t.discount,
            &t.tax,
            &t.grand_total,
        ]
        .into_iter()
        .flatten()
        {
            self.money(m, r, r);
        }
        for c in &t.charges {
            self.money(c, r, r);
        }
        if let Some(s) = &m.settlement {
            self.expr(&s.currency, r, r);
            for m in [
                &s.subtotal,
                &s.shipping,
                &s.discount,
                &s.tax,
                &s.grand_total,
            ] {
                self.money(m, r, r);
            }
        }
        if let Some(p) = &m.payments {
            let el = self.each(&p.each, r, r);
            self.expr(&p.status, r, &el);
            for e in [&p.id, &p.gateway, &p.processed_at] {
                self.opt(e, r, &el);
            }
            self.money(&p.amount, r, &el);
        }
        if let Some(s) = &m.shipments {
            let el = self.each(&s.each, r, r);
            self.expr(&s.status, r, &el);
            for e in [&s.id, &s.carrier, &s.shipped_at] {
                self.opt(e, r, &el);
            }
            if let Some(t) = &s.tracking_numbers {
                let routes = self.each(t, r, &el);
                self.routes.extend(routes);
            }
        }
    }

    fn listing(&mut self, m: &ListingMapping) {
        let r = self.record_roots(&m.root);
        let r = r.as_slice();
        let cur = match &m.each {
            Some(each) => self.each(each, r, r),
            None => r.to_vec(),
        };
        for e in [&m.external_id, &m.updated_at, &m.title, &m.status] {
            self.expr(e, r, &cur);
        }
        for e in [
            &m.product_id,
            &m.sku,
            &m.description,
            &m.category,
            &m.brand,
            &m.currency,
            &m.stock,
            &m.stock_ref,
            &m.rating_count,
            &m.rating_average,
            &m.rating_positive,
            &m.hs_code,
            &m.tax_class,
        ] {
            self.opt(e, r, &cur);
        }
        if let Some(p) = &m.price {
            self.money(p, r, &cur);
        }
    }

    fn stock(&mut self, m: &StockMapping) {
        let r = self.record_roots(&m.root);
        let r = r.as_slice();
        let cur = match &m.each {
            Some(each) => self.each(each, r, r),
            None => r.to_vec(),
        };
        for e in [&m.stock_ref, &m.updated_at] {
            self.expr(e, r, &cur);
        }
        for e in [&m.location, &m.available] {
            self.opt(e, r, &cur);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::registry::parse_adapter;

    #[test]
    fn shopify_projection_keeps_what_the_mapping_reads() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/shopify.toml"),
        )
        .unwrap();
        let p = Projection::of(&parse_adapter(&text, "shopify").unwrap());
        let order = p
            .child("order")
            .expect("the wrapped shape {\"order\": {...}}");
        assert!(p.child("id").unwrap().whole, "the bare webhook shape too");
        assert!(!p.whole && !order.whole);
        assert!(order.child("id").unwrap().whole);
        assert!(order.child("refunds").is_none(), "refunds are never read");
        assert!(order.child("client_details").is_none());
        let line = order.child("line_items").unwrap().elements().unwrap();
        assert!(line.child("sku").unwrap().whole);
        assert!(line.child("properties").is_none());
        let alloc = line
            .child("discount_allocations")
            .unwrap()
            .elements()
            .unwrap();
        assert!(alloc.child("amount_set").is_some());
        let ful = order.child("fulfillments").unwrap().elements().unwrap();
        assert!(
            ful.child("tracking_numbers")
                .unwrap()
                .elements()
                .unwrap()
                .whole
        );
        assert!(
            ful.child("line_items").is_none(),
            "fulfillment line items are never read"
        );
    }
}
