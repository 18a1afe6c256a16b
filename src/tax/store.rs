//! What the tax job and the tax routes need from a store: quotes and the CBEC annual totals.
//! Every backend in `crate::backend` implements it; the contract suite checks both.

use std::future::Future;

use rust_decimal::Decimal;

use super::{AnnualEntry, Quote};
use crate::store::StoreResult;

pub trait TaxStore: Send + Sync + 'static {
    /// Stores orders' tax quotes and, atomically with each, its share of the buyer's CBEC
    /// annual total and whether the order is held `tax_pending`: all of them in one
    /// transaction (one fsync, one round trip), in order, as if committed one by one.
    fn tax_commit(
        &self,
        quotes: Vec<(Quote, Option<AnnualEntry>)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn tax_quote(&self, order_id: &str) -> impl Future<Output = StoreResult<Option<Quote>>> + Send;

    /// How many orders' latest quote is `tax_pending` (a rule is missing).
    fn tax_pending_count(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// A buyer's CBEC purchases in a year (CNY), without the given order's own share.
    fn tax_annual(
        &self,
        customer_key: &str,
        year: i32,
        excluding_order: &str,
    ) -> impl Future<Output = StoreResult<Decimal>> + Send;
}
