//! Every key the Redis store reads or writes is built here, and nowhere else.
//!
//! Key layout (also in ARCHITECTURE.md). `P` is the configured prefix, `I` an instance id.
//! Every key of one channel instance carries the hash tag `{I}`, so each script that touches
//! one instance stays in one cluster slot; FX, tax and recommendation keys have their own tags.
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:{I}:dd:<dedupe id>` | string, EX dedupe TTL | delivery id that first used this id |
//! | `P:{I}:raw:<delivery id>` | hash `meta`, `zbody` (zstd; `body` when stored uncompressed), EX raw retention | the raw delivery |
//! | `P:{I}:dlof:<delivery id>` | set | dead letters still open for this delivery |
//! | `P:{I}:rec:<record id>` | hash `rev`, `ms`, `doc` (zstd above 256 bytes), `srank` | an order or listing |
//! | `P:{I}:life:<order id>` | hash `f:<fact id>`, `~rank` | lifecycle facts of an order |
//! | `P:{I}:orders` | sorted set, score = updated ms | order ids for listing by time |
//! | `P:{I}:listings` | sorted set, score = updated ms | listing ids by time (`listings:built` marks the one-off build from the stream) |
//! | `P:{I}:sku:<sku>` | set | the listings of a SKU (readers check the listing's current SKU) |
//! | `P:{I}:stockref:<ref>` | set | the stock level ids of a stock item (one per location) |
//! | `P:{I}:events` | stream | change events (never trimmed) |
//! | `P:{I}:outbox` | stream | facts about another instance's orders, not yet applied |
//! | `P:{I}:dl:<id>` | string | a dead letter (JSON) |
//! | `P:{I}:cmd:<id>` | string | an outbound command (JSON) |
//! | `P:{I}:cmds` | sorted set, score = accepted ms | outbound command ids |
//! | `P:{I}:cmdq:<target>` | string | the open commands of a listing or order, in order (JSON) |
//! | `P:{I}:cmddue` | sorted set, score = due ms | targets with a command due |
//! | `P:{I}:cmdver:<target>` | integer | writes of that queue so far (optimistic concurrency) |
//! | `P:{I}:idem:<key>` | string, PX | an `Idempotency-Key` and the commands it made |
//! | `P:{I}:dls` | sorted set, score = dead-lettered ms | dead letter ids |
//! | `P:{I}:seen:<source>` | set | order ids seen by webhook / by polling (reconciliation) |
//! | `P:{I}:cursor:<name>` | string | a poller's cursor |
//! | `P:{S}:lease:<name>`, `P:{S}:fence:<name>` | hash, string | a lease and its last fencing token (`S` = instance, or `jobs`) |
//! | `P:{I}:budget:<name>` | string, PX | a shared rate budget (GCRA arrival time, µs) |
//! | `P:{fx}:docs`, `head`, `log`, `idx`, `pending`, `checkpoints`, `view:<order>` | | the FX log |
//! | `P:{tax}:quote:<order>`, `annual:<customer>:<year>` | string | tax quotes, CBEC totals |
//! | `P:{tax}:pending` | set | orders whose latest quote is tax_pending |
//! | `P:{reco}:…` | | recommendation generations (see `reco.rs`) |

/// Builds keys under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

/// The indexes an instance keeps, paged by time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Index {
    Orders,
    Listings,
    DeadLetters,
}

impl Keys {
    pub(super) fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn tagged(&self, tag: &str, rest: &str) -> String {
        format!("{}:{{{tag}}}:{rest}", self.prefix)
    }

    /// The SCAN pattern that matches every key of this prefix.
    pub(super) fn all(&self) -> String {
        format!("{}:*", self.prefix)
    }

    /// The keys of one channel instance.
    pub(super) fn of<'a>(&'a self, instance: &'a str) -> InstanceKeys<'a> {
        InstanceKeys {
            keys: self,
            instance,
        }
    }

    /// A readiness probe in the slot of `tag` (`/readyz` writes one into the slot of every
    /// instance and domain; they expire by themselves).
    pub(super) fn probe(&self, tag: &str) -> String {
        self.tagged(tag, "readyz")
    }

    /// The hash tags this store writes under besides its instances'.
    pub(super) const DOMAIN_TAGS: [&'static str; 4] =
        ["fx", "tax", "reco", crate::store::Lease::JOBS];

    /// A lease and its fence: the same tag as the data the lease guards (a poller's lease is
    /// in its instance's slot, so the ingest script can check the fence with the cursor).
    pub(super) fn lease(&self, lease: &crate::store::Lease) -> [String; 2] {
        [
            self.tagged(&lease.scope, &format!("lease:{}", lease.name)),
            self.tagged(&lease.scope, &format!("fence:{}", lease.name)),
        ]
    }

    /// An FX key: `docs`, `head`, `log`, `idx`, `pending`, `checkpoints`. One `{fx}` slot: the
    /// log is one chain.
    pub(super) fn fx(&self, name: &'static str) -> String {
        self.tagged("fx", name)
    }

    pub(super) fn fx_view(&self, order_id: &str) -> String {
        self.tagged("fx", &format!("view:{order_id}"))
    }

    pub(super) fn tax_quote(&self, order_id: &str) -> String {
        self.tagged("tax", &format!("quote:{order_id}"))
    }

    /// Orders whose latest quote is tax_pending (a set).
    pub(super) fn tax_pending(&self) -> String {
        self.tagged("tax", "pending")
    }

    pub(super) fn tax_annual(&self, customer_key: &str, year: i32) -> String {
        self.tagged("tax", &format!("annual:{customer_key}:{year}"))
    }

    /// Recommendation and ranking keys share the `{reco}` hash tag: a publish flips one
    /// generation pointer, and everything it points at lives in the same slot.
    pub(super) fn reco(&self, name: &str) -> String {
        self.tagged("reco", name)
    }

    pub(super) fn reco_generations(&self, part: &str) -> String {
        self.tagged("reco", &format!("gens:{part}"))
    }

    pub(super) fn reco_generation_keys(&self, part: &str, generation: u64) -> String {
        self.tagged("reco", &format!("keys:{part}:{generation}"))
    }

    pub(super) fn reco_recs(&self, generation: u64, strategy: &str) -> String {
        self.tagged("reco", &format!("g{generation}:recs:{strategy}"))
    }

    pub(super) fn reco_ranking(&self, generation: u64, key: &str) -> String {
        self.tagged("reco", &format!("g{generation}:ranking:{key}"))
    }

    pub(super) fn reco_current(&self, part: &str) -> String {
        self.tagged("reco", &format!("current:{part}"))
    }

    pub(super) fn reco_meta(&self, part: &str) -> String {
        self.tagged("reco", &format!("meta:{part}"))
    }
}

/// The keys of one instance; all carry the `{instance}` hash tag.
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceKeys<'a> {
    keys: &'a Keys,
    instance: &'a str,
}

impl InstanceKeys<'_> {
    fn key(&self, rest: &str) -> String {
        self.keys.tagged(self.instance, rest)
    }

    pub(super) fn dedupe(&self, dedupe_id: &str) -> String {
        self.key(&format!("dd:{dedupe_id}"))
    }

    pub(super) fn raw(&self, delivery_id: &str) -> String {
        self.key(&format!("raw:{delivery_id}"))
    }

    pub(super) fn dead_letters_of(&self, delivery_id: &str) -> String {
        self.key(&format!("dlof:{delivery_id}"))
    }

    pub(super) fn record(&self, id: &str) -> String {
        self.key(&format!("rec:{id}"))
    }

    pub(super) fn lifecycle(&self, order_id: &str) -> String {
        self.key(&format!("life:{order_id}"))
    }

    pub(super) fn events(&self) -> String {
        self.key("events")
    }

    pub(super) fn outbox(&self) -> String {
        self.key("outbox")
    }

    /// An outbound command (JSON).
    pub(super) fn command(&self, id: &str) -> String {
        self.key(&format!("cmd:{id}"))
    }

    /// Outbound command ids by time accepted (sorted set, score = ms).
    pub(super) fn commands(&self) -> String {
        self.key("cmds")
    }

    /// The queue of one listing or order (JSON `TargetQueue`).
    pub(super) fn command_queue(&self, target: &str) -> String {
        self.key(&format!("cmdq:{target}"))
    }

    /// The queues with a command due (sorted set of target keys, score = due ms).
    pub(super) fn commands_due(&self) -> String {
        self.key("cmddue")
    }

    /// Counts the outbox writes of one listing's or order's queue: a write planned on what it
    /// read commits only if no other came between.
    pub(super) fn command_version(&self, target: &str) -> String {
        self.key(&format!("cmdver:{target}"))
    }

    /// A call's `Idempotency-Key` (JSON `IdempotencyRecord`, PX its TTL).
    pub(super) fn idempotency(&self, key: &str) -> String {
        self.key(&format!("idem:{key}"))
    }

    pub(super) fn dead_letter(&self, id: &str) -> String {
        self.key(&format!("dl:{id}"))
    }

    pub(super) fn index(&self, index: Index) -> String {
        self.key(match index {
            Index::Orders => "orders",
            Index::Listings => "listings",
            Index::DeadLetters => "dls",
        })
    }

    /// Set once the listing indexes were built from the event stream.
    pub(super) fn listings_built(&self) -> String {
        self.key("listings:built")
    }

    /// The stock levels of one stock item (a set of stock level ids).
    pub(super) fn stock_ref(&self, stock_ref: &str) -> String {
        self.key(&format!("stockref:{stock_ref}"))
    }

    /// The listings of one SKU (a set of listing ids).
    pub(super) fn sku(&self, sku: &str) -> String {
        self.key(&format!("sku:{sku}"))
    }

    /// The instance's orders of a customer key (a set).
    pub(super) fn customer(&self, customer_key: &str) -> String {
        self.key(&format!("cust:{customer_key}"))
    }

    /// The orders seen by one source (`webhook` or `poll`), for reconciliation.
    pub(super) fn seen(&self, source: &str) -> String {
        self.key(&format!("seen:{source}"))
    }

    pub(super) fn cursor(&self, name: &str) -> String {
        self.key(&format!("cursor:{name}"))
    }

    /// A shared rate budget of this instance (`api`, or `detail:<n>`).
    pub(super) fn budget(&self, name: &str) -> String {
        self.key(&format!("budget:{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster hashes: the text between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("every key has a hash tag");
        let close = key[open..].find('}').expect("closed tag") + open;
        &key[open + 1..close]
    }

    #[test]
    fn every_instance_key_hashes_on_the_instance() {
        let keys = Keys::new("cg");
        let i = keys.of("shop-eu");
        for k in [
            i.dedupe("x"),
            i.raw("d.shop-eu.1"),
            i.dead_letters_of("d.shop-eu.1"),
            i.record("o.shop-eu.1"),
            i.lifecycle("o.shop-eu.1"),
            i.events(),
            i.outbox(),
            i.dead_letter("l.shop-eu.1"),
            i.index(Index::Orders),
            i.index(Index::DeadLetters),
            i.seen("poll"),
            i.cursor("orders"),
            i.budget("api"),
            keys.lease(&crate::store::Lease::poller("shop-eu"))[0].clone(),
            keys.lease(&crate::store::Lease::poller("shop-eu"))[1].clone(),
        ] {
            assert!(k.starts_with("cg:{shop-eu}:"), "{k}");
            assert_eq!(hash_tag(&k), "shop-eu", "{k}");
        }
    }

    #[test]
    fn domain_keys_hash_on_their_domain() {
        let keys = Keys::new("cg");
        assert_eq!(hash_tag(&keys.fx("log")), "fx");
        assert_eq!(hash_tag(&keys.fx_view("o.a.1")), "fx");
        assert_eq!(hash_tag(&keys.tax_quote("o.a.1")), "tax");
        assert_eq!(hash_tag(&keys.tax_annual("c", 2026)), "tax");
        assert_eq!(keys.tax_annual("c", 2026), "cg:{tax}:annual:c:2026");
        for k in [
            keys.reco("seq"),
            keys.reco_generations("recs"),
            keys.reco_generation_keys("recs", 3),
            keys.reco_recs(3, "copurchase"),
            keys.reco_ranking(3, "all"),
            keys.reco_current("recs"),
            keys.reco_meta("recs"),
        ] {
            assert_eq!(hash_tag(&k), "reco", "{k}");
        }
        assert_eq!(keys.reco_ranking(3, "all"), "cg:{reco}:g3:ranking:all");
    }
}
