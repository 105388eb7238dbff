"""Local WASM tools on wasmtime: the backend (``backend``), ABI v1 (``abi``),
one sandboxed call (``execute``), the shared engine and ticker (``engine``),
the compile cache (``cache``) and argument validation (``schema``).

Must not: be imported outside ``runtimed.backends`` except through
``runtimed.backends``' factory.
"""
