//! Deliveries per instance and outcome, minute by minute over the last day, as this process
//! received them: what the console's overview shows (the last delivery, the counts of the
//! last hour and day, a bar per hour), and the channel's health as this replica last saw it
//! (last poll and its lag, the fetch backlog, rate-budget waits, reconciliation gaps). Each
//! replica keeps its own; metrics are the fleet's.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};

/// Minutes kept.
const DAY: i64 = 24 * 60;

#[derive(Default)]
struct InstanceHistory {
    last: Option<DateTime<Utc>>,
    /// (minute since the epoch, outcome counts), oldest first.
    minutes: VecDeque<(i64, BTreeMap<&'static str, u64>)>,
    health: Health,
    /// (minute since the epoch, rate-budget waits), oldest first, over the last hour.
    waits: VecDeque<(i64, u64)>,
}

/// A channel instance's health, as the polling, fetching and reconciling workers of this
/// replica last saw it (`None`: that worker has not reported, e.g. the instance is not
/// polled, or another replica holds its lease).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// When a poll last caught up, and how far its watermark was behind then (seconds).
    pub last_poll: Option<DateTime<Utc>>,
    pub poll_lag_secs: Option<f64>,
    /// Thin webhooks waiting for their record to be fetched, at the fetcher's last pass.
    pub fetch_backlog: Option<u64>,
    /// Requests that waited for the shared rate budget in the last hour.
    pub budget_waits_last_hour: u64,
    /// Orders seen only by polling, and only by webhook, at the last reconciliation.
    pub reconciliation: Option<(usize, usize)>,
}

/// What the overview shows of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub last: Option<DateTime<Utc>>,
    pub last_hour: BTreeMap<&'static str, u64>,
    pub last_day: BTreeMap<&'static str, u64>,
    /// Deliveries in each of the last 24 hours, oldest first.
    pub hourly: Vec<u64>,
}

fn histories() -> &'static Mutex<HashMap<String, InstanceHistory>> {
    static H: OnceLock<Mutex<HashMap<String, InstanceHistory>>> = OnceLock::new();
    H.get_or_init(Mutex::default)
}

/// A delivery to a configured instance was answered with `outcome`.
pub fn record_delivery(instance: &str, outcome: &'static str, now: DateTime<Utc>) {
    let minute = now.timestamp().div_euclid(60);
    let mut all = histories().lock().unwrap_or_else(|e| e.into_inner());
    let h = all.entry(instance.to_string()).or_default();
    h.last = Some(now);
    match h.minutes.back_mut() {
        Some((m, counts)) if *m == minute => *counts.entry(outcome).or_default() += 1,
        _ => h
            .minutes
            .push_back((minute, BTreeMap::from([(outcome, 1)]))),
    }
    while h.minutes.front().is_some_and(|(m, _)| *m <= minute - DAY) {
        h.minutes.pop_front();
    }
}

fn with_instance(instance: &str, f: impl FnOnce(&mut InstanceHistory)) {
    let mut all = histories().lock().unwrap_or_else(|e| e.into_inner());
    f(all.entry(instance.to_string()).or_default());
}

/// A poll of the instance caught up at `now`, its watermark `lag_secs` behind.
pub fn record_poll(instance: &str, now: DateTime<Utc>, lag_secs: Option<f64>) {
    with_instance(instance, |h| {
        h.health.last_poll = Some(now);
        h.health.poll_lag_secs = lag_secs;
    });
}

/// The fetcher's pass over the instance left `waiting` thin webhooks unfetched.
pub fn record_fetch_backlog(instance: &str, waiting: u64) {
    with_instance(instance, |h| h.health.fetch_backlog = Some(waiting));
}

/// A request of the instance waited for the rate budget.
pub fn record_budget_wait(instance: &str, now: DateTime<Utc>) {
    let minute = now.timestamp().div_euclid(60);
    with_instance(instance, |h| {
        match h.waits.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => h.waits.push_back((minute, 1)),
        }
        while h.waits.front().is_some_and(|(m, _)| *m <= minute - 60) {
            h.waits.pop_front();
        }
    });
}

/// The instance's last reconciliation: orders seen only by polling, only by webhook.
pub fn record_reconciliation(instance: &str, polled_only: usize, pushed_only: usize) {
    with_instance(instance, |h| {
        h.health.reconciliation = Some((polled_only, pushed_only));
    });
}

/// The instance's health at `now`.
pub fn health(instance: &str, now: DateTime<Utc>) -> Health {
    let minute = now.timestamp().div_euclid(60);
    let all = histories().lock().unwrap_or_else(|e| e.into_inner());
    let Some(h) = all.get(instance) else {
        return Health::default();
    };
    Health {
        budget_waits_last_hour: h
            .waits
            .iter()
            .filter(|(m, _)| *m > minute - 60 && *m <= minute)
            .map(|(_, n)| n)
            .sum(),
        ..h.health.clone()
    }
}

/// The instance's deliveries up to `now`.
pub fn delivery_summary(instance: &str, now: DateTime<Utc>) -> DeliverySummary {
    let minute = now.timestamp().div_euclid(60);
    let all = histories().lock().unwrap_or_else(|e| e.into_inner());
    let mut s = DeliverySummary {
        hourly: vec![0; 24],
        ..DeliverySummary::default()
    };
    let Some(h) = all.get(instance) else {
        return s;
    };
    s.last = h.last;
    for (m, counts) in h
        .minutes
        .iter()
        .filter(|(m, _)| *m > minute - DAY && *m <= minute)
    {
        let age = minute - m;
        for (outcome, n) in counts {
            *s.last_day.entry(outcome).or_default() += n;
            if age < 60 {
                *s.last_hour.entry(outcome).or_default() += n;
            }
        }
        let hour = 23 - usize::try_from(age / 60).unwrap_or(23).min(23);
        s.hourly[hour] += counts.values().sum::<u64>();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_into_their_hour_and_age_out_after_a_day() {
        let t = |mins: i64| DateTime::from_timestamp(1_800_000_000 + mins * 60, 0).unwrap();
        let i = "history-test";
        record_delivery(i, "stored", t(0));
        record_delivery(i, "stored", t(0));
        record_delivery(i, "dead_lettered", t(90));
        record_delivery(i, "stored", t(120));
        let s = delivery_summary(i, t(120));
        assert_eq!(s.last, Some(t(120)));
        assert_eq!(
            s.last_hour,
            BTreeMap::from([("dead_lettered", 1), ("stored", 1)])
        );
        assert_eq!(
            s.last_day,
            BTreeMap::from([("dead_lettered", 1), ("stored", 3)])
        );
        assert_eq!(s.hourly[23], 2, "{:?}", s.hourly);
        assert_eq!(s.hourly[21], 2, "{:?}", s.hourly);
        assert_eq!(s.hourly.iter().sum::<u64>(), 4);
        let later = delivery_summary(i, t(120 + DAY));
        assert!(later.last_day.is_empty(), "{later:?}");
        assert_eq!(delivery_summary("never", t(0)).hourly, vec![0; 24]);
    }

    #[test]
    fn health_keeps_the_last_report_and_an_hour_of_budget_waits() {
        let t = |mins: i64| DateTime::from_timestamp(1_800_000_000 + mins * 60, 0).unwrap();
        let i = "health-test";
        assert_eq!(health(i, t(0)), Health::default());
        record_poll(i, t(0), Some(12.5));
        record_fetch_backlog(i, 3);
        record_fetch_backlog(i, 1);
        record_reconciliation(i, 2, 0);
        record_budget_wait(i, t(0));
        record_budget_wait(i, t(0));
        record_budget_wait(i, t(30));
        let h = health(i, t(30));
        assert_eq!(h.last_poll, Some(t(0)));
        assert_eq!(h.poll_lag_secs, Some(12.5));
        assert_eq!(h.fetch_backlog, Some(1));
        assert_eq!(h.reconciliation, Some((2, 0)));
        assert_eq!(h.budget_waits_last_hour, 3);
        assert_eq!(
            health(i, t(75)).budget_waits_last_hour,
            1,
            "the first two aged out"
        );
    }
}
