//! slugify (a JSON tool) and gcd (a numeric tool) for runtimed's WASM ABI v1
//! (docs/spec/wasm-abi.md). Build: see README.md.

use serde::Deserialize;

/// The `mcp-tools` custom section: tool descriptions and input schemas.
#[used]
#[link_section = "mcp-tools"]
pub static MCP_TOOLS: [u8; include_bytes!("../mcp-tools.json").len()] = *include_bytes!("../mcp-tools.json");

/// alloc(len) -> ptr: a buffer for the host to write the arguments into (0 = failure).
/// Each call runs in a fresh instance, so nothing is ever freed.
#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(len.max(0) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as i32
}

/// Hands a result back to the host: (ptr << 32) | len of UTF-8 JSON.
fn reply(value: serde_json::Value) -> i64 {
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| b"{\"error\":\"serialization failed\"}".to_vec());
    let bytes = bytes.into_boxed_slice();
    let len = bytes.len() as i64;
    let ptr = Box::into_raw(bytes) as *mut u8 as i64;
    (ptr << 32) | len
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlugifyArgs {
    text: String,
    max_length: Option<usize>,
}

#[no_mangle]
pub extern "C" fn slugify(ptr: i32, len: i32) -> i64 {
    // Safety: the host wrote `len` bytes at `ptr`, a buffer it got from `alloc`.
    let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
    let args: SlugifyArgs = match serde_json::from_slice(input) {
        Ok(a) => a,
        Err(e) => return reply(serde_json::json!({ "error": format!("bad arguments: {e}") })),
    };
    let mut slug = String::new();
    for c in args.text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if let Some(max) = args.max_length {
        slug.truncate(max);
    }
    if slug.is_empty() {
        return reply(serde_json::json!({ "error": "the text has no letters or digits" }));
    }
    reply(serde_json::json!({ "slug": slug }))
}

/// A numeric tool: arguments x and y (named by the custom section), result {"result": n}.
#[no_mangle]
pub extern "C" fn gcd(x: i64, y: i64) -> i64 {
    let (mut a, mut b) = (x.unsigned_abs(), y.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a as i64
}
