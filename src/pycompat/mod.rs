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
//! - [`json`]: `json.dumps` as transformers' `tojson` template filter calls it.
//! - [`strftime`]: `datetime.strftime` at a fixed date (chat templates' `strftime_now`).

pub mod json;
pub mod literal;
pub mod random;
pub mod repr;
pub mod strftime;
pub mod text;

pub use random::PyRandom;
