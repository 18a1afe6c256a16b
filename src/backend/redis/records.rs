//! Reads of records: orders with their lifecycle applied, listings, time-ordered pages, raw
//! deliveries and reconciliation.

use super::keys::Index;
use super::*;

impl RedisStore {
    /// Orders as presented: each snapshot with its lifecycle facts applied.
    pub(super) async fn order_views(
        &self,
        ids: &[(String, String)],
    ) -> StoreResult<Vec<Option<Order>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (inst, id) in ids {
            pipe.cmd("HMGET")
                .arg(self.keys.of(inst).record(id))
                .arg("doc")
                .arg("srank")
                .cmd("HGETALL")
                .arg(self.keys.of(inst).lifecycle(id));
        }
        let mut conn = self.conn();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for ((_, id), pair) in ids.iter().zip(replies.chunks(2)) {
            let [rec, life] = pair else {
                return Err(StoreError::Corrupt("short pipeline reply".into()));
            };
            let (doc, srank): (Option<Vec<u8>>, Option<String>) =
                redis::from_redis_value(rec.clone()).map_err(unavailable)?;
            let Some(doc) = doc else {
                out.push(None);
                continue;
            };
            let order = match parse_record(&doc)? {
                Record::Order(o) => *o,
                _ => return Err(StoreError::Corrupt(format!("{id} is not an order"))),
            };
            let life: BTreeMap<String, Vec<u8>> =
                redis::from_redis_value(life.clone()).map_err(unavailable)?;
            let facts = life
                .iter()
                .filter(|(k, _)| k.starts_with("f:"))
                .map(|(_, v)| parse_fact(v))
                .collect::<StoreResult<Vec<_>>>()?;
            let floor = srank.and_then(|s| s.parse::<u8>().ok()).unwrap_or(0);
            out.push(Some(lifecycle::view(order, &facts, floor)));
        }
        Ok(out)
    }

    /// (ms, id) pairs of one instance's order index after a cursor, up to `limit`.
    pub(super) async fn index_page(
        &self,
        instance: &str,
        index: Index,
        since_ms: i64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<(i64, String)>> {
        let mut conn = self.conn();
        let key = self.keys.of(instance).index(index);
        let start_ms = after.map(|c| c.millis.max(since_ms)).unwrap_or(since_ms);
        let mut out = Vec::with_capacity(limit);
        let mut offset = 0usize;
        loop {
            let batch = limit + 16;
            let raw: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(start_ms)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(offset)
                .arg(batch)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let got = raw.len();
            for (id, score) in raw {
                let ms = score as i64;
                let skip = after.is_some_and(|c| ms == c.millis && id.as_str() <= c.id.as_str());
                if !skip {
                    out.push((ms, id));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if got < batch {
                return Ok(out);
            }
            offset += got;
        }
    }

    /// One page of an index across the instances (one, or all): (ms, id, instance) in (ms, id)
    /// order, and the cursor of the next page when there is one.
    pub(super) async fn merged_page(
        &self,
        only: Option<&String>,
        index: Index,
        since_ms: i64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<(Vec<(i64, String, String)>, Option<Cursor>)> {
        let mut merged: Vec<(i64, String, String)> = Vec::new();
        for inst in self.instances_for(only) {
            for (ms, id) in self
                .index_page(&inst, index, since_ms, after, limit + 1)
                .await?
            {
                merged.push((ms, id, inst.clone()));
            }
        }
        merged.sort();
        let next = Cursor::page_end(&mut merged, limit, |(ms, id, _)| (*ms, id));
        Ok((merged, next))
    }

    /// The orders of a customer key: its set in every instance (one round trip), then the
    /// orders that still carry that key.
    pub(super) async fn customer_orders(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<Order>> {
        let instances = self.instances_for(None);
        let mut pipe = redis::pipe();
        for inst in &instances {
            pipe.cmd("SMEMBERS")
                .arg(self.keys.of(inst).customer(customer_key));
        }
        let members: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut ids: Vec<(String, String)> = instances
            .into_iter()
            .zip(members)
            .flat_map(|(inst, ids)| ids.into_iter().map(move |id| (inst.clone(), id)))
            .collect();
        ids.sort();
        let orders = self.order_views(&ids).await?;
        Ok(orders
            .into_iter()
            .flatten()
            .filter(|o| o.customer.as_ref().and_then(|c| c.key.as_deref()) == Some(customer_key))
            .take(limit)
            .collect())
    }

    pub(super) async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        let ids = [(id.instance().to_string(), id.as_str().to_string())];
        Ok(self.order_views(&ids).await?.pop().flatten())
    }

    pub(super) async fn listing(&self, id: &ListingId) -> StoreResult<Option<Listing>> {
        let ids = [(id.instance().to_string(), id.as_str().to_string())];
        Ok(self.listings_of(&ids).await?.pop().flatten())
    }

    /// Fills in each listing's stock levels from the levels of its stock item.
    async fn attach_stock(&self, listings: &mut [Option<Listing>]) -> StoreResult<()> {
        let with_ref: Vec<&mut Listing> = listings
            .iter_mut()
            .flatten()
            .filter(|l| l.stock_ref.is_some())
            .collect();
        if with_ref.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for l in &with_ref {
            let stock_ref = l.stock_ref.as_deref().unwrap_or_default();
            pipe.cmd("SMEMBERS")
                .arg(self.keys.of(&l.instance).stock_ref(stock_ref));
        }
        let members: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        // Every level document of every listing in one round trip.
        let mut pipe = redis::pipe();
        for (l, ids) in with_ref.iter().zip(&members) {
            for id in ids {
                pipe.cmd("HGET")
                    .arg(self.keys.of(&l.instance).record(id))
                    .arg("doc");
            }
        }
        let mut docs: std::vec::IntoIter<Option<Vec<u8>>> = if members.iter().all(Vec::is_empty) {
            Vec::new().into_iter() // an empty pipeline is an error, not an empty answer
        } else {
            let docs: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            docs.into_iter()
        };
        for (l, ids) in with_ref.into_iter().zip(&members) {
            let mut levels = Vec::new();
            for doc in docs.by_ref().take(ids.len()).flatten() {
                if let Record::Stock(s) = parse_record(&doc)? {
                    levels.push(*s);
                }
            }
            l.stock_levels = crate::model::LocationStock::of(levels);
        }
        Ok(())
    }

    pub(super) async fn orders_page(&self, q: OrderQuery) -> StoreResult<Page<Order>> {
        let since_ms = q
            .since
            .map(|s| s.timestamp_millis())
            .unwrap_or(i64::MIN / 2);
        let (merged, next) = self
            .merged_page(
                q.instance.as_ref(),
                Index::Orders,
                since_ms,
                q.after.as_ref(),
                q.limit,
            )
            .await?;
        let ids: Vec<(String, String)> = merged
            .iter()
            .map(|(_, id, inst)| (inst.clone(), id.clone()))
            .collect();
        let mut items = Vec::with_capacity(ids.len());
        for ((_, id), order) in ids.iter().zip(self.order_views(&ids).await?) {
            items.push(
                order
                    .ok_or_else(|| StoreError::Corrupt(format!("index points at missing {id}")))?,
            );
        }
        Ok(Page { items, next })
    }

    /// Listings of the given (instance, id) pairs, in that order (`None` where gone).
    async fn listings_of(&self, ids: &[(String, String)]) -> StoreResult<Vec<Option<Listing>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (inst, id) in ids {
            pipe.cmd("HGET")
                .arg(self.keys.of(inst).record(id))
                .arg("doc");
        }
        let docs: Vec<Option<Vec<u8>>> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut listings = docs
            .iter()
            .zip(ids)
            .map(
                |(doc, (_, id))| match doc.as_deref().map(parse_record).transpose()? {
                    Some(Record::Listing(l)) => Ok(Some(*l)),
                    Some(_) => Err(StoreError::Corrupt(format!("{id} is not a listing"))),
                    None => Ok(None),
                },
            )
            .collect::<StoreResult<Vec<_>>>()?;
        self.attach_stock(&mut listings).await?;
        Ok(listings)
    }

    pub(super) async fn listings_page(&self, q: ListingQuery) -> StoreResult<Page<Listing>> {
        let since_ms = q
            .since
            .map(|s| s.timestamp_millis())
            .unwrap_or(i64::MIN / 2);
        let Some(sku) = &q.sku else {
            let (merged, next) = self
                .merged_page(
                    q.instance.as_ref(),
                    Index::Listings,
                    since_ms,
                    q.after.as_ref(),
                    q.limit,
                )
                .await?;
            let ids: Vec<(String, String)> =
                merged.into_iter().map(|(_, id, inst)| (inst, id)).collect();
            let items = self
                .listings_of(&ids)
                .await?
                .into_iter()
                .zip(&ids)
                .map(|(l, (_, id))| {
                    l.ok_or_else(|| StoreError::Corrupt(format!("index points at missing {id}")))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            return Ok(Page { items, next });
        };
        // One SKU: its few listings per instance, checked against their current SKU (a SKU
        // that changed leaves the old set naming the listing).
        let mut candidates = Vec::new();
        for inst in self.instances_for(q.instance.as_ref()) {
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.keys.of(&inst).sku(sku))
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let ids: Vec<(String, String)> =
                members.into_iter().map(|id| (inst.clone(), id)).collect();
            for (l, (_, id)) in self.listings_of(&ids).await?.into_iter().zip(ids) {
                let Some(l) = l.filter(|l| l.sku.as_ref() == Some(sku)) else {
                    continue;
                };
                let ms = l.revision.updated_at.timestamp_millis();
                if ms >= since_ms {
                    candidates.push((ms, id, l));
                }
            }
        }
        Ok(Page::of_candidates(candidates, q.after.as_ref(), q.limit))
    }

    pub(super) async fn delivery(&self, delivery_id: &str) -> StoreResult<Option<RawDelivery>> {
        let inst = Self::instance_of(delivery_id)?;
        let mut conn = self.conn();
        type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
        let (meta, body, zbody): Fields = redis::cmd("HMGET")
            .arg(self.keys.of(inst).raw(delivery_id))
            .arg("meta")
            .arg("body")
            .arg("zbody")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        // `zbody` is compressed; `body` was stored before compression existed.
        let body = match (body, zbody) {
            (_, Some(z)) => Some(codec::unpack_body(&z)?),
            (body, None) => body,
        };
        let (Some(meta), Some(body)) = (meta, body) else {
            return Ok(None);
        };
        let mut d: RawDelivery = crate::store::parse_doc(&meta)?;
        d.body = body;
        Ok(Some(d))
    }

    pub(super) async fn reconciliation(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Reconciliation> {
        let mut conn = self.conn();
        let poll = self.keys.of(instance).seen("poll");
        let push = self.keys.of(instance).seen("webhook");
        let (mut only_poll, mut only_push): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("SDIFF")
            .arg(&poll)
            .arg(&push)
            .cmd("SDIFF")
            .arg(&push)
            .arg(&poll)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if let Some(since) = since {
            let orders = self.keys.of(instance).index(Index::Orders);
            for list in [&mut only_poll, &mut only_push] {
                if list.is_empty() {
                    continue;
                }
                let mut pipe = redis::pipe();
                for id in list.iter() {
                    pipe.cmd("ZSCORE").arg(&orders).arg(id);
                }
                let scores: Vec<Option<f64>> =
                    pipe.query_async(&mut conn).await.map_err(unavailable)?;
                let keep: Vec<String> = list
                    .iter()
                    .zip(scores)
                    .filter(|(_, s)| s.is_some_and(|ms| ms as i64 >= since.timestamp_millis()))
                    .map(|(id, _)| id.clone())
                    .collect();
                *list = keep;
            }
        }
        only_poll.sort();
        only_push.sort();
        Ok(Reconciliation {
            polled_not_pushed: only_poll,
            pushed_not_polled: only_push,
        })
    }
}
