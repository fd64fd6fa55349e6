pub mod demo;
pub mod token;
