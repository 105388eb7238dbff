;; Test fixture: the host's log import. "shout" logs its arguments, then tries a
;; bad pointer, and answers {"ok":C1,"bad":C2} with both return codes.
(module
  (import "runtimed" "log" (func $log (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{\"ok\":0,\"bad\":0}")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))
  (func (export "shout") (param $p i32) (param $n i32) (result i64)
    (i32.store8 (i32.const 70) (i32.add (i32.const 48) (call $log (local.get $p) (local.get $n))))
    (i32.store8 (i32.const 78) (i32.add (i32.const 48) (call $log (i32.const 0xFFFFFF00) (i32.const 1000))))
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 16)))
)
