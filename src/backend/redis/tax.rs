use super::*;
use crate::tax::store::TaxStore;
use crate::tax::{AnnualEntry, Quote};

impl TaxStore for RedisStore {
    async fn tax_commit(&self, quotes: Vec<(Quote, Option<AnnualEntry>)>) -> StoreResult<()> {
        if quotes.is_empty() {
            return Ok(());
        }
        // Every tax key is in the `{tax}` slot: one MULTI/EXEC, one round trip.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (quote, annual) in &quotes {
            let json =
                serde_json::to_string(quote).map_err(|e| StoreError::Invalid(e.to_string()))?;
            pipe.cmd("SET")
                .arg(self.keys.tax_quote(&quote.order_id))
                .arg(json)
                .ignore();
            let held = quote.status == crate::tax::QuoteStatus::TaxPending;
            pipe.cmd(if held { "SADD" } else { "SREM" })
                .arg(self.keys.tax_pending())
                .arg(&quote.order_id)
                .ignore();
            if let Some(a) = annual {
                let key = self.keys.tax_annual(&a.customer_key, a.year);
                match a.amount {
                    Some(v) => pipe
                        .cmd("HSET")
                        .arg(key)
                        .arg(&quote.order_id)
                        .arg(v.to_string())
                        .ignore(),
                    None => pipe.cmd("HDEL").arg(key).arg(&quote.order_id).ignore(),
                };
            }
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn tax_quote(&self, order_id: &str) -> StoreResult<Option<Quote>> {
        self.get_json(self.keys.tax_quote(order_id), "tax quote")
            .await
    }

    async fn tax_pending_count(&self) -> StoreResult<u64> {
        redis::cmd("SCARD")
            .arg(self.keys.tax_pending())
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn tax_annual(
        &self,
        customer_key: &str,
        year: i32,
        excluding_order: &str,
    ) -> StoreResult<rust_decimal::Decimal> {
        let mut conn = self.conn();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys.tax_annual(customer_key, year))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        all.into_iter()
            .filter(|(o, _)| o != excluding_order)
            .map(|(_, v)| {
                v.parse::<rust_decimal::Decimal>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .sum()
    }
}
