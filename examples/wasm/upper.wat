;; upper: a JSON tool written by hand (ABI v1, docs/spec/wasm-abi.md).
;; Arguments {"text": string}; result {"text": STRING} with ASCII letters upper-cased.
;; The host writes the arguments as compact JSON, validated against the
;; inputSchema below, so the first ':' is followed by the "text" string.
(module
  (@custom "mcp-tools" "[{\"name\":\"upper\",\"title\":\"Upper-case\",\"description\":\"Upper-cases the ASCII letters of a text.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\",\"description\":\"The text to upper-case.\"}},\"required\":[\"text\"],\"additionalProperties\":false},\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}}]")
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"text\":\"")
  (data (i32.const 32) "{\"error\":\"expected {\\\"text\\\": string}\"}")
  (global $heap (mut i32) (i32.const 1024))

  ;; alloc(len) -> ptr: a bump allocator that grows memory as needed; 0 = failure.
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

  (func (export "upper") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $end i32) (local $out i32) (local $o i32) (local $c i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $i (local.get $ptr))
    ;; skip to the ':' then to the opening quote of the value
    (block $found
      (loop $scan
        (br_if $found (i32.eq (i32.load8_u (local.get $i)) (i32.const 58)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $scan (i32.lt_u (local.get $i) (local.get $end)))
        (return (call $pack (i32.const 32) (i32.const 38)))))
    (loop $quote
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (call $pack (i32.const 32) (i32.const 38)))))
      (br_if $quote (i32.ne (i32.load8_u (local.get $i)) (i32.const 34))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    ;; output: {"text":" + content + "}
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 16))))
    (if (i32.eqz (local.get $out)) (then unreachable))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 9))
    (local.set $o (i32.add (local.get $out) (i32.const 9)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))
        (if (i32.eq (local.get $c) (i32.const 92))
          (then ;; an escape: copy the backslash and the next byte verbatim
            (i32.store8 (local.get $o) (local.get $c))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $c (i32.load8_u (local.get $i))))
          (else
            (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
              (then (local.set $c (i32.sub (local.get $c) (i32.const 32)))))))
        (i32.store8 (local.get $o) (local.get $c))
        (local.set $o (i32.add (local.get $o) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (i32.store16 (local.get $o) (i32.const 0x7d22)) ;; the bytes '"' '}'
    (local.set $o (i32.add (local.get $o) (i32.const 2)))
    (call $pack (local.get $out) (i32.sub (local.get $o) (local.get $out))))
)
