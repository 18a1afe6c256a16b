//! The core store contract on Redis; each method delegates to the file of its concern.

use super::*;
use crate::store::Store;

impl Store for RedisStore {
    async fn ingest_with_cursor(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        self.ingest(delivery, disposition, cursor).await
    }

    async fn get_cursor(&self, instance: &str, name: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        redis::cmd("GET")
            .arg(self.keys.of(instance).cursor(name))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn reconcile(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Reconciliation> {
        self.reconciliation(instance, since).await
    }

    async fn orders_of_customer(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<Order>> {
        self.customer_orders(customer_key, limit).await
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.order(id).await
    }

    async fn get_listing(&self, id: &ListingId) -> StoreResult<Option<Listing>> {
        self.listing(id).await
    }

    async fn list_orders(&self, q: OrderQuery) -> StoreResult<Page<Order>> {
        self.orders_page(q).await
    }

    async fn list_listings(&self, q: ListingQuery) -> StoreResult<Page<Listing>> {
        self.listings_page(q).await
    }

    async fn get_delivery(&self, delivery_id: &str) -> StoreResult<Option<RawDelivery>> {
        self.delivery(delivery_id).await
    }

    async fn list_dead_letters(&self, q: DeadLetterQuery) -> StoreResult<Page<DeadLetter>> {
        self.dead_letters_page(q).await
    }

    async fn get_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        self.dead_letter(id).await
    }

    async fn dead_letters_waiting(&self) -> StoreResult<std::collections::BTreeMap<String, u64>> {
        self.dead_letter_counts().await
    }

    async fn resolve_dead_letter(
        &self,
        id: &str,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        self.resolve(id, records, now).await
    }

    async fn update_dead_letter(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> StoreResult<DeadLetter> {
        self.record_failed_replay(id, reason).await
    }

    async fn read_events(
        &self,
        group: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        self.read_stream(group, consumer, max).await
    }

    async fn ack_events(&self, group: &str, ids: &[String]) -> StoreResult<()> {
        self.ack_stream(group, ids).await
    }

    async fn event_count(&self) -> StoreResult<u64> {
        self.stream_len().await
    }

    async fn consumer_lag(&self, groups: &[&str]) -> StoreResult<Vec<ConsumerLag>> {
        self.stream_lag(groups).await
    }

    async fn housekeeping(&self, _now: DateTime<Utc>) -> StoreResult<Housekeeping> {
        // Dedupe keys and processed raw bodies carry TTLs; Redis expires them itself.
        Ok(Housekeeping::default())
    }

    async fn drain_lifecycle(&self) -> StoreResult<u64> {
        self.drain_outboxes(256).await
    }

    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()> {
        // A real write (a server that answers PING but refuses writes, e.g. NOREPLICAS, MISCONF
        // or READONLY, is not ready), expiring by itself, into the slot of every instance and
        // domain: on a cluster, every master that holds this gateway's data must take it.
        let tags: Vec<&str> = self
            .opts
            .instances
            .iter()
            .map(String::as_str)
            .chain(keys::Keys::DOMAIN_TAGS)
            .collect();
        let writes = tags.into_iter().map(|tag| {
            let mut conn = self.conn();
            let key = self.keys.probe(tag);
            async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(now.timestamp_micros())
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(unavailable)
            }
        });
        futures_util::future::try_join_all(writes).await.map(drop)
    }

    async fn lease(
        &self,
        lease: &crate::store::Lease,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<Option<crate::store::Fence>> {
        self.take_lease(lease, holder, ttl).await
    }

    async fn release(&self, lease: &crate::store::Lease, holder: &str) -> StoreResult<()> {
        self.give_up_lease(lease, holder).await
    }

    async fn lease_states(
        &self,
        leases: &[crate::store::Lease],
    ) -> StoreResult<Vec<crate::store::LeaseState>> {
        self.read_leases(leases).await
    }

    fn shared_budget(&self) -> Option<crate::store::SharedBudget> {
        Some(Arc::new(self.clone()))
    }

    async fn slot_ranges(&self) -> StoreResult<Vec<crate::store::SlotRange>> {
        self.conn().slot_ranges().await
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn();
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "unexpected PING reply {pong}"
            )))
        }
    }
}
