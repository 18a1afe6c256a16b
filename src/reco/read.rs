//! Reading the published results, as the API serves them: a customer's list with its
//! fallbacks for customers the jobs do not know yet.

use super::job::FALLBACK;
use super::store::RecoStore;
use crate::store::StoreError;

/// A customer's recommendations, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoList {
    pub items: Vec<(String, f32)>,
    /// `country` or `popular` when the list is a fallback (the customer is not known yet).
    pub fallback: Option<String>,
}

/// The customer's list for `strategy`; a customer the jobs do not know gets the most bought
/// items in `country` (when given and known), else overall. Empty when there is neither.
pub async fn recommendations<S: RecoStore>(
    store: &S,
    strategy: &str,
    customer: &str,
    country: Option<&str>,
) -> Result<RecoList, StoreError> {
    let mut fallback = None;
    let mut list = store.reco_list(strategy, customer).await?;
    if list.is_none() {
        let country = country.map(|c| format!("country:{}", c.to_uppercase()));
        for segment in country.iter().map(String::as_str).chain(["popular"]) {
            if let Some(l) = store.reco_list(FALLBACK, segment).await? {
                fallback = Some(segment.split(':').next().unwrap_or(segment).to_string());
                list = Some(l);
                break;
            }
        }
    }
    let items = match list.as_deref().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        None => Vec::new(),
        Some(Err(e)) => return Err(StoreError::Corrupt(format!("list: {e}"))),
    };
    Ok(RecoList { items, fallback })
}
