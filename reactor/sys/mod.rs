//! The only `unsafe` code in the crate: the libc calls that mio does not wrap, and one atomic
//! cell for a `&'static` source location.
//!
//! Everything outside this module is checked by `#![deny(unsafe_code)]` in `lib.rs`. Each
//! `unsafe` block here carries a `// SAFETY:` comment saying why it is sound.

pub(crate) mod inotify;
pub(crate) mod net;
pub(crate) mod signal;
pub(crate) mod site;
