//! Python's behaviour where pingce must reproduce it exactly: lm-evaluation-harness and
//! transformers are Python programs, and a prompt or a word count that differs by one whitespace
//! character changes scores. Everything above (engine request rules, task templates, dataset
//! preprocessing, metrics) takes its Python semantics from here and nowhere else.
//!
//! - [`text`]: `str.isspace`, `strip`/`lstrip`/`rstrip`, `capitalize`, `re.split(r"\s+")` word
//!   counts.
//! - [`repr`]: `repr()` and `str()` of strings and of template values.
//! - [`literal`]: `ast.literal_eval` for the lists, strings and ints lm-eval reads back.
//! - [`random`]: CPython's `random.Random` (Mersenne Twister, `sample`).

pub mod literal;
pub mod random;
pub mod repr;
pub mod text;

pub use random::PyRandom;
