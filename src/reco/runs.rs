//! Runs on demand (`crossgate jobs run`, `POST /v1/jobs/run`) and the jobs' status. A run asked
//! of a running daemon is done there, so the CLI works beside a daemon that holds the embedded
//! store; one run at a time per process (see [`super::job::run`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::job::{self, JobError, JobSettings, Progress, RunReport, Which};
use super::models;
use super::store::{RecoPart, RecoStore};
use crate::fx::FxSettings;
use crate::fx::store::FxStore;
use crate::store::Store;

/// A run asked for: which jobs, which strategies, from scratch or not.
/// Every field is optional; the default runs both jobs as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JobsRun {
    pub recommend: bool,
    pub rank: bool,
    /// Only these strategies (default: the config's `jobs.strategies`).
    pub strategies: Vec<String>,
    /// Forget the jobs' data and read the whole event stream again.
    pub rebuild: bool,
    /// Events read (then acknowledged) per pass (default: the config's).
    pub batch: Option<usize>,
}

impl Default for JobsRun {
    fn default() -> Self {
        Self {
            recommend: true,
            rank: true,
            strategies: Vec::new(),
            rebuild: false,
            batch: None,
        }
    }
}

/// Why a requested run was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("strategies: unknown '{0}'; one of {list}", list = models::STRATEGIES.join(", "))]
    UnknownStrategy(String),
    #[error("nothing to run: recommend and rank are both false")]
    Nothing,
    #[error(transparent)]
    Job(#[from] JobError),
}

impl JobsRun {
    /// The settings of this run: the configured ones with its strategies and batch.
    pub fn settings(&self, configured: &JobSettings) -> Result<JobSettings, RunError> {
        if let Some(s) = models::unknown_strategy(&self.strategies) {
            return Err(RunError::UnknownStrategy(s.to_string()));
        }
        if !self.recommend && !self.rank {
            return Err(RunError::Nothing);
        }
        let mut settings = configured.clone();
        if !self.strategies.is_empty() {
            settings.strategies = self.strategies.clone();
        }
        if let Some(b) = self.batch {
            settings.batch = b.max(1);
        }
        Ok(settings)
    }
}

/// Runs what `run` asks for (after a reset when it rebuilds).
pub async fn run_requested<S: Store + FxStore + RecoStore>(
    store: &S,
    configured: &JobSettings,
    fx: &FxSettings,
    run: &JobsRun,
    progress: &dyn Progress,
) -> Result<RunReport, RunError> {
    let settings = run.settings(configured)?;
    if run.rebuild {
        job::reset(store).await.map_err(JobError::from)?;
    }
    let which = Which {
        recommend: run.recommend,
        rank: run.rank,
    };
    Ok(job::run(store, &settings, fx, which, progress).await?)
}

/// When the current results were computed, and from what (`None`: never run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobsStatus {
    pub recommendations: Option<Value>,
    pub rankings: Option<Value>,
}

pub async fn status<S: Store + RecoStore>(store: &S) -> Result<JobsStatus, JobError> {
    Ok(JobsStatus {
        recommendations: job::meta(store, RecoPart::Recommendations).await?,
        rankings: job::meta(store, RecoPart::Rankings).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_request_defaults_each_missing_field() {
        let empty: JobsRun = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, JobsRun::default());
        assert!(empty.recommend && empty.rank && !empty.rebuild);
        let rank_only: JobsRun = serde_json::from_str(r#"{"recommend": false}"#).unwrap();
        assert!(!rank_only.recommend && rank_only.rank);
        assert!(serde_json::from_str::<JobsRun>(r#"{"strategy": ["ease"]}"#).is_err());
    }
}
