//! The offline demo (see the submodules).

pub mod keys;
