//! Ranking formulas (pure): time decay for sales, the Bayesian average and the Wilson lower
//! bound for ratings. Checked against hand-computed values in the tests below.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

/// The weight of a sale `age_days` old with a half-life of `half_life_days`: 0.5^(age/half).
/// Sales newer than the reference time (age < 0) weigh 1.
pub fn decay(age_days: f64, half_life_days: f64) -> f64 {
    if age_days <= 0.0 || !half_life_days.is_finite() {
        return 1.0;
    }
    0.5f64.powf(age_days / half_life_days)
}

/// The decay weight as a Decimal (8 places), so that weighted revenue stays in Decimal.
pub fn decay_decimal(age_days: f64, half_life_days: f64) -> Decimal {
    Decimal::from_f64(decay(age_days, half_life_days))
        .unwrap_or(Decimal::ONE)
        .round_dp(8)
}

/// The Bayesian (damped) average: `(C·m + Σ ratings) / (C + n)` where `m` is the prior mean
/// and `C` the prior weight in ratings. With no ratings it is the prior mean.
pub fn bayesian_average(mean: f64, count: u64, prior_mean: f64, prior_count: f64) -> f64 {
    let n = count as f64;
    (prior_count * prior_mean + mean * n) / (prior_count + n)
}

/// The z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The lower bound of the Wilson score interval for `positive` of `total` at `z`:
/// `(p + z²/2n − z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)`. 0 when there are no ratings.
pub fn wilson_lower_bound(positive: u64, total: u64, z: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let p = positive.min(total) as f64 / n;
    let z2 = z * z;
    (p + z2 / (2.0 * n) - z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / (1.0 + z2 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_600_of_1000_is_0_5693() {
        // p = 0.6, n = 1000, z = 1.96: (0.6 + 0.0019207 − 1.96·√(0.00024 + 0.00000096))
        // / 1.0038415 = 0.571496 / 1.0038415 = 0.56931
        let w = wilson_lower_bound(600, 1000, Z95);
        assert_eq!((w * 10_000.0).round() / 10_000.0, 0.5693, "{w}");
    }

    #[test]
    fn wilson_small_samples_rank_below_large_ones() {
        // 1 of 1 positive is less certain than 90 of 100: 0.2065 vs 0.8256.
        let one = wilson_lower_bound(1, 1, Z95);
        assert!((one - 0.2065).abs() < 1e-4, "{one}");
        let many = wilson_lower_bound(90, 100, Z95);
        assert!((many - 0.8256).abs() < 1e-4, "{many}");
        assert_eq!(wilson_lower_bound(0, 0, Z95), 0.0);
        assert_eq!(wilson_lower_bound(0, 10, Z95), 0.0);
    }

    #[test]
    fn bayesian_average_by_hand() {
        // Two 5-star ratings against a prior of 3.5 worth 10 ratings: (35 + 10) / 12 = 3.75.
        assert!((bayesian_average(5.0, 2, 3.5, 10.0) - 3.75).abs() < 1e-12);
        // 200 ratings averaging 4.2: (35 + 840) / 210 = 4.1667.
        assert!((bayesian_average(4.2, 200, 3.5, 10.0) - 875.0 / 210.0).abs() < 1e-12);
        assert_eq!(bayesian_average(0.0, 0, 3.5, 10.0), 3.5);
    }

    #[test]
    fn decay_halves_every_half_life() {
        assert_eq!(decay(0.0, 14.0), 1.0);
        assert_eq!(decay(14.0, 14.0), 0.5);
        assert_eq!(decay(28.0, 14.0), 0.25);
        assert_eq!(decay(-3.0, 14.0), 1.0);
        assert_eq!(decay_decimal(7.0, 14.0), Decimal::new(70710678, 8));
    }
}
