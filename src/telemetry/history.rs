//! Deliveries per instance and outcome, minute by minute over the last day, as this process
//! received them: what the console's overview shows (the last delivery, the counts of the
//! last hour and day, a bar per hour). Each replica keeps its own; metrics are the fleet's.

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
}
