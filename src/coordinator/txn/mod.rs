pub mod records;
pub mod state;
