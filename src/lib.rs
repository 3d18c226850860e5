//! polysum: English and Spanish summaries of news articles with a local language model.
//!
//! The data flows one way: inputs → articles → prompts → generation → checks → summaries → outputs/state.
//! The inference engine (`engine`) knows nothing about articles; the tasks (`summarize`, `translate`,
//! `compare`) see the model only through `backend::Generator` and know nothing about tensors; only `cli`
//! knows the command line. docs/ARCHITECTURE.md draws the layers.

pub mod backend;
pub mod cli;
pub(crate) mod compare;
pub mod engine;
pub(crate) mod error;
pub mod job;
pub(crate) mod prompt;
pub mod registry;
pub(crate) mod summarize;
pub mod text;
pub(crate) mod translate;
pub(crate) mod verify;

/// The model used when neither --model nor POLYSUM_MODEL names one: the only small model here that writes
/// fluent Spanish.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";

/// mimalloc instead of glibc's malloc: a prompt step allocates activation buffers of tens of MB that glibc
/// maps fresh from the kernel and returns on free, so every step paid page faults and page zeroing; mimalloc
/// reuses the freed pages. Two defaults of the process are changed around the reading of the weights
/// (`tune_allocator`, `keep_freed_memory`). docs/BENCHMARKS.md has the measurements behind all three.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process: on the VMs this runs on, the first touch of a huge page cost
/// several times what 4 KiB pages cost, so reading the weights spent most of the load in the kernel zeroing
/// pages, for no gain in decode speed. And while a model loads, freed pages go back to the system as
/// mimalloc does by default (an engine loaded before may have turned that off: `keep_freed_memory`), so
/// that `release_freed_memory` finds them. Called before a model's header is read.
pub(crate) fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The flag is checked at page-fault time, so it covers everything allocated from here on.
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    });
    // SAFETY: mi_option_set only stores an option value; mimalloc reads it at its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, MI_DEFAULT_PURGE_DELAY_MS) };
}

/// mimalloc's own default for `MI_OPTION_PURGE_DELAY` (v3's `options.c`).
const MI_DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// `mi_option_purge_delay` in mimalloc.h (v3, the version libmimalloc-sys builds by default), which the
/// crate does not name: milliseconds before freed pages go back to the system, -1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Give the memory freed so far back to the system: called when a model's header and tokenizer are read
/// and its weights are not, so the pages freed by building the tokenizer do not stay beside the weights.
/// Pages freed after `keep_freed_memory` stay.
pub(crate) fn release_freed_memory() {
    // SAFETY: mi_collect only walks mimalloc's own free lists and returns their pages to the system.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// From here on mimalloc keeps freed pages for reuse instead of purging them to the system shortly after
/// the free, which made every prompt step fault its buffers in again: a batch job's allocations repeat at
/// the same sizes, so the peak is what it holds anyway. Called once a model's weights are loaded.
pub(crate) fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an option value; mimalloc reads it at its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
