//! The proxy-wasm adapter: the root and HTTP contexts, written against the
//! [`host::Host`] trait so that they run natively against a mock host in
//! tests; the module's host (`abi`) and the SDK glue (`module`) exist on
//! wasm32 only.
//!
//! Dependencies point one way: `root` → `http` → `capabilities` → `host`;
//! `abi` → `host` (and `profiler`); `module` → `root`, `http`, `abi`.

/// Time one stage of the request path (feature `stage-timing`).
macro_rules! stage {
    ($i:expr, $e:expr) => {{
        #[cfg(feature = "stage-timing")]
        let t0 = crate::proxy::profiler::now();
        let r = $e;
        #[cfg(feature = "stage-timing")]
        crate::proxy::profiler::add($i, crate::proxy::profiler::now() - t0);
        r
    }};
}

/// The host on the proxy-wasm ABI (wasm32 only).
#[cfg(target_arch = "wasm32")]
mod abi;
/// The core's host capabilities (store, clock, recorder) on a [`host::Host`].
pub mod capabilities;
/// The host calls the adapter makes, as a trait, and the ABI's encodings.
pub mod host;
/// The HTTP context.
pub mod http;
/// The SDK's entry points, handing each callback to the contexts.
#[cfg(target_arch = "wasm32")]
mod module;
/// Stage timing of profiling builds (feature `stage-timing`).
#[cfg(feature = "stage-timing")]
mod profiler;
/// The root context.
pub mod root;

#[cfg(test)]
mod tests;
