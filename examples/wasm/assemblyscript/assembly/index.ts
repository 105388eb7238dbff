// word_count: a JSON tool for runtimed (ABI v1, docs/spec/wasm-abi.md).
//
// Arguments {"text": string}; result {"words": n, "characters": n}.
// Build with the stub runtime and no imports (see README.md):
//   npx asc assembly/index.ts --runtime stub --use abort= -O3 -o build/word_count.wasm
// The module then exports `memory`, `alloc` and `word_count` and imports nothing.

// alloc(len) -> ptr: the host asks for a buffer for the arguments (0 = failure).
export function alloc(len: i32): i32 {
  return heap.alloc(<usize>len) as i32;
}

function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

// (ptr, len) of the UTF-8 JSON arguments -> (out_ptr << 32) | out_len of the JSON result.
export function word_count(ptr: i32, len: i32): i64 {
  const end = ptr + len;
  // Find the key "text" (the host sends compact JSON: {"text":"..."}).
  let i = ptr;
  let found = -1;
  while (i + 6 <= end) {
    if (load<u8>(i) == 0x22 && load<u8>(i + 1) == 0x74 && load<u8>(i + 2) == 0x65 &&
        load<u8>(i + 3) == 0x78 && load<u8>(i + 4) == 0x74 && load<u8>(i + 5) == 0x22) { found = i + 6; break; }
    i++;
  }
  if (found < 0) return result('{"error":"expected {\\"text\\": string}"}');
  i = found;
  while (i < end && load<u8>(i) != 0x22) i++; // the opening quote of the value
  i++;
  let words = 0, chars = 0;
  let inWord = false;
  while (i < end) {
    let c = <i32>load<u8>(i);
    if (c == 0x22) break; // the closing quote
    if (c == 0x5c) { // an escape: \n \t \r count as white space
      i++;
      c = <i32>load<u8>(i);
      if (c == 0x6e || c == 0x74 || c == 0x72) c = 0x20;
      else if (c == 0x75) i += 4; // \uXXXX: one character
    }
    if ((c & 0xc0) != 0x80) chars++; // count UTF-8 lead bytes, not continuation bytes
    if (isSpace(c)) inWord = false;
    else if (!inWord) { inWord = true; words++; }
    i++;
  }
  return result('{"words":' + words.toString() + ',"characters":' + chars.toString() + '}');
}

function result(s: string): i64 {
  const buf = String.UTF8.encode(s);
  const p = changetype<usize>(buf);
  return (<i64>p << 32) | <i64>buf.byteLength;
}
