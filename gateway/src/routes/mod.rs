pub mod alerts;
pub mod dashboard;
pub mod health;
