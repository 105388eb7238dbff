;; Test fixture: JSON tools that misbehave, one way each (tests/backends/wasm/test_limits.py).
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "not json")
  (data (i32.const 80) "{\"error\":\"boom\"}")
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  ;; echo: returns its arguments object unchanged
  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    (call $pack (local.get $p) (local.get $n)))
  ;; spin: never returns (fuel or time must stop it)
  (func (export "spin") (param $p i32) (param $n i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))
  ;; hog: grows memory until refused, then traps
  (func (export "hog") (param $p i32) (param $n i32) (result i64)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  ;; badptr: points its result far outside memory
  (func (export "badptr") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 0xFFFF0000) (i32.const 16)))
  ;; big: claims its result is the whole 64 KiB page
  (func (export "big") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 0) (i32.const 65536)))
  ;; garbage: returns bytes that are not JSON
  (func (export "garbage") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 64) (i32.const 8)))
  ;; fail: returns {"error": "boom"}
  (func (export "fail") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 80) (i32.const 16)))
  ;; trap: hits unreachable
  (func (export "trap") (param $p i32) (param $n i32) (result i64)
    unreachable)
  ;; count: numeric tool living next to JSON tools; spins a times
  (func (export "count") (param $a i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_s (local.get $i) (local.get $a)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))
)
