;; math: numeric tools (ABI v1, docs/spec/wasm-abi.md). No custom section:
;; every exported function with i32/i64/f32/f64 parameters and results becomes
;; a tool whose arguments are named a, b, ... and whose result is {"result": x}.
(module
  ;; add(a: i32, b: i32) -> i32, wrapping on overflow like the machine does
  (func (export "add") (param $a i32) (param $b i32) (result i32)
    (i32.add (local.get $a) (local.get $b)))
  ;; hypot(a: f64, b: f64) -> f64
  (func (export "hypot") (param $a f64) (param $b f64) (result f64)
    (f64.sqrt (f64.add (f64.mul (local.get $a) (local.get $a)) (f64.mul (local.get $b) (local.get $b)))))
  ;; fib(a: i64) -> i64, iteratively
  (func (export "fib") (param $n i64) (result i64)
    (local $x i64) (local $y i64) (local $t i64)
    (local.set $y (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.le_s (local.get $n) (i64.const 0)))
        (local.set $t (i64.add (local.get $x) (local.get $y)))
        (local.set $x (local.get $y))
        (local.set $y (local.get $t))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $x))
)
