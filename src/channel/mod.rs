pub mod client;
pub mod fetch;
pub mod poll;
