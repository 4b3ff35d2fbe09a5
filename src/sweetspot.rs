//! Sweet-spot maths.
