/**
 * JSON text as Go's `encoding/json` writes it. Structs keep their field order (insertion order of the
 * object), maps marked with {@link markGoMap} get their keys sorted, `<`, `>`, `&` become `\u003c`, `\u003e`,
 * `\u0026` when HTML escaping is on (`json.Marshal`) and U+2028/U+2029 are always escaped.
 */

/**
 * Thrown by {@link goStringify} for a value JSON cannot carry (non-finite number, bigint, cycle or nesting
 * deeper than {@link MaxDepth}).
 */
export class GoJsonError extends Error {
  override readonly name = "GoJsonError"
}

/** Options of {@link goStringify}. */
export interface GoStringifyOptions {
  /** `true` like `json.Marshal`; `false` like an `Encoder` with `SetEscapeHTML(false)`. */
  readonly escapeHtml: boolean
}

/** Deepest nesting {@link goStringify} writes, as a guard against cycles. */
export const MaxDepth = 1000

const GoMapMarker: unique symbol = Symbol.for("@gcs-bridge/protocol/GoMap")

/**
 * Marks an object as a Go map, so that {@link goStringify} writes its keys sorted (Go sorts map keys by their
 * UTF-8 bytes; JavaScript objects would put integer-like keys first). Returns the same object.
 */
export const markGoMap = <A extends object>(map: A): A => {
  marks++
  Object.defineProperty(map, GoMapMarker, { value: true, enumerable: false })
  return map
}

let marks = 0

/** How many maps {@link markGoMap} has marked so far: unchanged across building a value means it has none. */
export const markCount = (): number => marks

/**
 * Takes the count back to `count` (a {@link markCount} taken before): for a value whose marked maps were all
 * written into a string while it was built, so that a check around the whole value sees none of them.
 */
export const forgetMarks = (count: number): void => {
  marks = count
}

/** Whether {@link markGoMap} marked this object. */
export const isGoMap = (value: object): boolean =>
  (value as { readonly [GoMapMarker]?: boolean })[GoMapMarker] === true

// Code point order is UTF-8 byte order; JS `<` compares UTF-16 code units,
// which differs for astral characters against U+E000..U+FFFF.
const compareUtf8 = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x < y ? -1 : 1
    if (x > 0xffff) i++
  }
  return a.length - b.length
}

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
const htmlOrSeparators = /[<>&\u2028\u2029]/g
const separators = /[\u2028\u2029]/g
const escapes: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029"
}
const escapeChar = (c: string): string => escapes[c]!

// Whether JSON.stringify would write `s` unchanged between quotes: no quote,
// backslash, control character or surrogate (which needs the lone-surrogate check).
const isPlain = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return false
  }
  return true
}

const quote = (s: string): string => {
  if (isPlain(s)) return '"' + s + '"'
  // Go writes invalid UTF-8 as U+FFFD; a lone surrogate is the JS equivalent.
  const q = JSON.stringify(s)
  return q.includes("\\ud") ? JSON.stringify(s.replace(loneSurrogate, "\ufffd")) : q
}

const write = (value: unknown, depth: number, out: Array<string>): boolean => {
  switch (typeof value) {
    case "string":
      out.push(quote(value))
      return true
    case "number":
      if (!Number.isFinite(value)) throw new GoJsonError(`unsupported value: ${value}`)
      out.push(JSON.stringify(value))
      return true
    case "boolean":
      out.push(value ? "true" : "false")
      return true
    case "bigint":
      throw new GoJsonError("unsupported value: bigint")
    case "object":
      break
    default:
      // undefined, functions and symbols: skipped as object members, null in arrays (JSON.stringify rules)
      return false
  }
  if (value === null) {
    out.push("null")
    return true
  }
  if (depth >= MaxDepth) throw new GoJsonError(`nesting deeper than ${MaxDepth} (cycle?)`)
  const toJSON = (value as { toJSON?: unknown }).toJSON
  if (typeof toJSON === "function") return write(toJSON.call(value), depth + 1, out)
  if (Array.isArray(value)) {
    out.push("[")
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(",")
      if (!write(value[i], depth + 1, out)) out.push("null")
    }
    out.push("]")
    return true
  }
  const keys = Object.keys(value)
  if (isGoMap(value)) keys.sort(compareUtf8)
  out.push("{")
  let first = true
  for (const key of keys) {
    const mark = out.length
    out.push(first ? quote(key) + ":" : "," + quote(key) + ":")
    if (write((value as Record<string, unknown>)[key], depth + 1, out)) first = false
    else out.length = mark
  }
  out.push("}")
  return true
}

/**
 * `JSON.stringify(value)` where it provably writes what {@link goStringify} would, else `undefined`: for a value
 * known to hold no marked Go map (see {@link markCount}). Native stringify is several times faster; what it
 * writes differently (`null` for a non-finite number, `\udXXX` for a lone surrogate, deep nesting, a throw)
 * sends the value to the slow path, as does any `null`.
 */
export const stringifyPlain = (value: unknown): string | undefined => {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch {
    return undefined
  }
  // Under 2 * MaxDepth characters no value nests deeper than MaxDepth.
  if (text === undefined || text.length >= 2 * MaxDepth || text.includes("null") || text.includes("\\ud"))
    return undefined
  return text
}

/**
 * Serialises a JSON-compatible value the way Go's `encoding/json` would serialise the equivalent Go value.
 * Throws {@link GoJsonError} for values JSON cannot carry; `undefined` at top level yields `"null"`.
 */
export const goStringify = (value: unknown, options: GoStringifyOptions): string => {
  const out: Array<string> = []
  if (!write(value, 0, out)) return "null"
  return escape(out.join(""), options)
}

// A global `replace` with a function goes through V8's runtime on every call, match or not; `search` stays in
// compiled code, and most documents have nothing to escape.
const escape = (text: string, options: GoStringifyOptions): string => {
  const pattern = options.escapeHtml ? htmlOrSeparators : separators
  return text.search(pattern) < 0 ? text : text.replace(pattern, escapeChar)
}

/** {@link goStringify} of a value that holds no marked Go map, through {@link stringifyPlain} when it can. */
export const goStringifyPlain = (value: unknown, options: GoStringifyOptions): string => {
  const text = stringifyPlain(value)
  return text === undefined ? goStringify(value, options) : escape(text, options)
}
