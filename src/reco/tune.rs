//! Tuning on a validation split: the served strategy's parameters are chosen by NDCG@k on
//! interactions carved from the training data only ([`Holdout::Validation`]), never on the test
//! split they are reported on.

use serde::Serialize;

use super::eval::{self, Split};
use super::models::{self, Params};

/// EASE ridge strengths tried.
pub const EASE_LAMBDAS: &[f64] = &[250.0, 500.0, 800.0, 1200.0, 2000.0];
/// Recency half-lives tried, in later orders (`None`: no recency weighting).
pub const RECENCY_HALF_LIVES: &[Option<f32>] = &[None, Some(1.0), Some(2.0), Some(3.0), Some(5.0)];
/// Blend weights tried (item-kNN, EASE, content).
pub const BLENDS: &[[f32; 3]] = &[
    [0.4, 0.5, 0.1],
    [0.3, 0.6, 0.1],
    [0.25, 0.7, 0.05],
    [0.15, 0.8, 0.05],
];

/// One point of the grid and what the served strategy scored there.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub ease_lambda: f64,
    pub recency_half_life: Option<f32>,
    pub blend: [f32; 3],
    pub ndcg: f64,
}

/// Every trial in grid order, and the parameters of the best (the first of equals).
pub struct Tuning {
    pub trials: Vec<Trial>,
    pub best: Params,
}

/// Tries the grid on `validation` with the served strategy (`blended`), starting from `base`.
pub fn tune(validation: &Split, k: usize, base: &Params) -> Tuning {
    let inputs = models::Inputs {
        train: &validation.train,
        docs: &validation.docs,
        segment_of: &validation.segment_of,
        segments: validation.segments,
    };
    let served = models::DEFAULT_STRATEGY;
    let mut trials = Vec::new();
    let mut best: Option<(f64, Params)> = None;
    for &ease_lambda in EASE_LAMBDAS {
        let params = Params {
            ease_lambda,
            ..base.clone()
        };
        // EASE is refitted per λ; recency and blend weights only change scoring.
        let mut fitted = models::Fitted::fit(&inputs, params, &[served]);
        for &recency_half_life in RECENCY_HALF_LIVES {
            for &blend in BLENDS {
                fitted.params.recency_half_life = recency_half_life;
                fitted.params.blend = blend;
                let ndcg = fitted
                    .with_model(served, |m| {
                        eval::evaluate(m, &validation.train, &validation.test, k, true).2
                    })
                    .unwrap_or(0.0);
                if best.as_ref().is_none_or(|(b, _)| ndcg > *b) {
                    best = Some((ndcg, fitted.params.clone()));
                }
                trials.push(Trial {
                    ease_lambda,
                    recency_half_life,
                    blend,
                    ndcg,
                });
            }
        }
    }
    Tuning {
        trials,
        best: best.map_or_else(|| base.clone(), |(_, p)| p),
    }
}
