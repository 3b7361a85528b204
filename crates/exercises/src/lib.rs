//! The exercises of the book, one module each.
//!
//! Every module has the signature and documentation a learner starts from, the
//! solution between `// ANCHOR: solution` and `// ANCHOR_END: solution` lines, and
//! the tests that decide whether an answer is right. `cargo xtask exercises`
//! writes a copy of this crate in which every solution is replaced by `todo!()`
//! (or by the starter code that follows it in `// STARTER:` lines), and a region
//! named `hidden...` is removed: there the tests fail until the learner solves
//! the exercise.
//!
//! The exercises use nothing from the rest of the book's workspace: the starter
//! workspace has to build on its own.

pub mod accept_key;
pub mod frame_header;
pub mod heartbeat;
pub mod reconnect;
pub mod sse_encode;
pub mod sse_parse;
pub mod unmask;
