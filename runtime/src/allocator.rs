//! [`jemalloc_global_allocator!`](crate::jemalloc_global_allocator): jemalloc as a binary's
//! global allocator, the same way in every `main.rs`.

/// Makes jemalloc the global allocator of the binary that expands it, when that binary's
/// crate has its `jemalloc` feature on (`cfg` in a macro's output is the expanding crate's);
/// the crate depends on `tikv-jemallocator`, optional behind that feature. A library cannot
/// do this for the binaries: features unify across the workspace, and every test binary would
/// get jemalloc too.
///
/// With `malloc_conf = "..."` it also sets jemalloc's options: its `malloc_conf` symbol,
/// exported as `_rjem_malloc_conf` because `tikv-jemalloc-sys` prefixes its symbols;
/// `_RJEM_MALLOC_CONF` in the environment overrides them. The options are read when jemalloc
/// starts, so they can be set only this way, not at run time.
#[macro_export]
macro_rules! jemalloc_global_allocator {
    () => {
        #[cfg(feature = "jemalloc")]
        #[global_allocator]
        static ALLOCATOR: ::tikv_jemallocator::Jemalloc = ::tikv_jemallocator::Jemalloc;
    };
    (malloc_conf = $conf:literal) => {
        $crate::jemalloc_global_allocator!();

        /// jemalloc's options, a NUL-terminated C string it reads at start.
        #[cfg(feature = "jemalloc")]
        #[allow(non_upper_case_globals, unsafe_code)]
        #[export_name = "_rjem_malloc_conf"]
        pub static malloc_conf: &[u8; ::core::concat!($conf, "\0").len()] =
            match ::core::concat!($conf, "\0").as_bytes().first_chunk() {
                Some(bytes) => bytes,
                None => ::core::unreachable!(),
            };
    };
}
