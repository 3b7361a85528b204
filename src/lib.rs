//! The root package only carries the runnable programs in `examples/`.
