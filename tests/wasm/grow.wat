;; Test fixture: numeric tools that grow memory in steps (tests/backends/wasm/test_limits.py).
;; Refused grows are told apart from traps: see docs/spec/wasm-abi.md, limits.
(module
  (memory (export "memory") 1)
  ;; steps: grows by n pages at a time until a grow is refused, then traps with unreachable
  (func (export "steps") (param $n i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (local.get $n)) (i32.const -1))))
    unreachable)
  ;; recover: grows by n pages at a time until refused, then returns the pages it has
  (func (export "recover") (param $n i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (local.get $n)) (i32.const -1))))
    (memory.size))
  ;; trap: no growing at all, just unreachable
  (func (export "trap") (param $n i32) (result i32)
    unreachable)
)
