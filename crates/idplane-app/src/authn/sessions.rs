//! Sessions (in progress).
