;; Test fixture: memory with a maximum of its own (3 pages): grows past it are refused by the
;; module's own declaration, not by the sandbox's memory limit (tests/backends/wasm/test_limits.py).
(module
  (memory (export "memory") 1 3)
  (func (export "steps") (param $n i32) (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (local.get $n)) (i32.const -1))))
    unreachable)
)
