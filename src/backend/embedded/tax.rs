use super::tables::*;
use super::{EmbeddedStore, unavailable};
use crate::store::{StoreError, StoreResult};
use crate::tax::store::TaxStore;
use crate::tax::{AnnualEntry, Quote};
use redb::{ReadableDatabase, ReadableTableMetadata};

impl TaxStore for EmbeddedStore {
    async fn tax_commit(&self, quotes: Vec<(Quote, Option<AnnualEntry>)>) -> StoreResult<()> {
        let docs = quotes
            .into_iter()
            .map(|(q, a)| {
                let json =
                    serde_json::to_vec(&q).map_err(|e| StoreError::Invalid(e.to_string()))?;
                Ok((q, a, json))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.run(move |txn| {
            let mut stored = txn.open_table(TAX_QUOTES).map_err(unavailable)?;
            let mut pending = txn.open_table(TAX_PENDING).map_err(unavailable)?;
            let mut annual_totals = txn.open_table(TAX_ANNUAL).map_err(unavailable)?;
            for (quote, annual, json) in &docs {
                let id = quote.order_id.as_str();
                stored.insert(id, json.as_slice()).map_err(unavailable)?;
                if quote.status == crate::tax::QuoteStatus::TaxPending {
                    pending.insert(id, ()).map_err(unavailable)?;
                } else {
                    pending.remove(id).map_err(unavailable)?;
                }
                if let Some(a) = annual {
                    let key = format!("{}|{}|{id}", a.customer_key, a.year);
                    match a.amount {
                        Some(v) => {
                            annual_totals
                                .insert(key.as_str(), v.to_string().as_str())
                                .map_err(unavailable)?;
                        }
                        None => {
                            annual_totals.remove(key.as_str()).map_err(unavailable)?;
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn tax_quote(&self, order_id: &str) -> StoreResult<Option<Quote>> {
        let id = order_id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(TAX_QUOTES).map_err(unavailable)?;
            t.get(id.as_str())
                .map_err(unavailable)?
                .map(|v| {
                    serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("tax quote: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn tax_pending_count(&self) -> StoreResult<u64> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(TAX_PENDING).map_err(unavailable)?;
            t.len().map_err(unavailable)
        })
        .await
    }

    async fn tax_annual(
        &self,
        customer_key: &str,
        year: i32,
        excluding_order: &str,
    ) -> StoreResult<rust_decimal::Decimal> {
        let prefix = format!("{customer_key}|{year}|");
        let skip = format!("{prefix}{excluding_order}");
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(TAX_ANNUAL).map_err(unavailable)?;
            let mut sum = rust_decimal::Decimal::ZERO;
            for item in t.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                if k.value() != skip {
                    sum += v
                        .value()
                        .parse::<rust_decimal::Decimal>()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                }
            }
            Ok(sum)
        })
        .await
    }
}
