//! Recommendations and rankings: strategies ([`models`]) over [`train`]ing data, ranking formulas ([`rank`]), the
//! jobs' data taken from the event stream ([`data`]), the jobs themselves ([`job`]) and offline
//! evaluation on public datasets ([`eval`]).

pub mod data;
pub mod eval;
pub mod job;
pub mod models;
pub mod rank;
pub mod ranking;
pub mod read;
pub mod runs;
pub mod store;
pub mod train;
pub mod tune;
