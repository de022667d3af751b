/**
 * Structure-aware mutations: on frames (header fields, truncation, splicing,
 * byte-level damage, chunking) and on JSON bodies (values swapped for values
 * of other types and edge values, fields dropped or added, deep nesting,
 * duplicated keys), plus JSON documents generated from scratch.
 */
import type { Rng } from "./rng.js"

const HeaderSize = 16

/** Sizes that sit on the decoder's boundaries. */
const interestingSizes = [
  0, 1, 15, 16, 17, 32, 0x7f, 0x80, 0xff, 0x100, 0xfffe, 0xffff, 0x10000, 0x10001, 0x7fffffff, 0x80000000,
  0xfffffff0, 0xffffffff
]

/** Type words: every class nibble, known procedures, notifications, garbage. */
const interestingTypes = [
  0x00000000, 0x10100101, 0x10100b01, 0x20100101, 0x20100b01, 0x20000000, 0x30100101, 0x30000000, 0x3fffffff,
  0x40100101, 0xf0100101, 0xffffffff, 0x10ffffff, 0x20ffffff
]

/** Numbers JSON can carry that schemas tend to get wrong. */
const interestingNumbers = [
  0, -0, 1, -1, 0.5, -0.5, 2, 255, 256, 65535, 65536, 2147483647, 2147483648, -2147483648, -2147483649,
  4294967295, 4294967296, 9007199254740991, 9007199254740992, -9007199254740992, 1e21, 1e308, -1e308, 5e-324,
  3.14
]

// prettier-ignore
const interestingStrings = [
  "", " ", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "0000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}", "null", "{}", "[]",
  '{"a":1}', "true", "\u0000", "\ud800", "\udc00x", "\u2028\u2029", "<script>&amp;", "é日本語🙂",
  "../../../../etc/passwd", "%s%n%x", "__proto__", "constructor", "Linux", "linux", "Windows",
  "GracefulExit", "ForcedExit", "UnexpectedExit", "None"
]

// prettier-ignore
const trickyKeys = [
  "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "", "Result", "result", "RESULT"
]

/** A random JSON value, `depth` levels deep at most. */
export const randomJson = (rng: Rng, depth: number): unknown => {
  const kind = rng.int(depth <= 0 ? 4 : 6)
  switch (kind) {
    case 0:
      return null
    case 1:
      return rng.chance(0.5)
    case 2:
      return rng.chance(0.7) ? rng.pick(interestingNumbers) : (rng.u32() | 0) / (rng.chance(0.5) ? 1 : 1000)
    case 3:
      return rng.chance(0.7) ? rng.pick(interestingStrings) : randomString(rng, rng.smallLength(64))
    case 4:
      return Array.from({ length: rng.smallLength(6) }, () => randomJson(rng, depth - 1))
    default: {
      const o: Record<string, unknown> = {}
      const n = rng.smallLength(6)
      for (let i = 0; i < n; i++) {
        Object.defineProperty(
          o,
          rng.chance(0.3) ? rng.pick(trickyKeys) : randomString(rng, rng.smallLength(12)),
          {
            value: randomJson(rng, depth - 1),
            enumerable: true,
            configurable: true,
            writable: true
          }
        )
      }
      return o
    }
  }
}

const randomString = (rng: Rng, length: number): string => {
  let s = ""
  for (let i = 0; i < length; i++) {
    const r = rng.int(10)
    s += String.fromCharCode(r < 7 ? 0x20 + rng.int(0x5f) : r < 9 ? rng.int(0x800) : rng.int(0x10000))
  }
  return s
}

/**
 * JSON text of `leaf` nested `depth` arrays or objects deep. Built as text:
 * depths in the tens of thousands would overflow `JSON.stringify` itself.
 */
const nestedText = (rng: Rng, depth: number, leaf: unknown): string => {
  const inner = JSON.stringify(leaf) ?? "null"
  return rng.chance(0.5)
    ? "[".repeat(depth) + inner + "]".repeat(depth)
    : '{"a":'.repeat(depth) + inner + "}".repeat(depth)
}

/** Stands in the tree for a deep value until the text is assembled. */
const deepMarker = (k: number) => `\u0000deep:${k}`

type Path = ReadonlyArray<string | number>

/** Every path to a value inside `json` (the root included), breadth-limited. */
const paths = (json: unknown, limit = 400): Array<Path> => {
  const out: Array<Path> = [[]]
  const queue: Array<{ value: unknown; path: Path }> = [{ value: json, path: [] }]
  while (queue.length > 0 && out.length < limit) {
    const { value, path } = queue.shift()!
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        out.push([...path, i])
        queue.push({ value: v, path: [...path, i] })
      })
    } else if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        out.push([...path, k])
        queue.push({ value: v, path: [...path, k] })
      }
    }
  }
  return out
}

const clone = (json: unknown): unknown =>
  json === undefined ? undefined : (JSON.parse(JSON.stringify(json)) as unknown)

const getAt = (json: unknown, path: Path): unknown => {
  let v = json
  for (const p of path) v = (v as Record<string | number, unknown>)[p]
  return v
}

/** Replaces (or with `undefined`, deletes) the value at `path`; returns the new root. */
const setAt = (json: unknown, path: Path, value: unknown): unknown => {
  if (path.length === 0) return value
  const parent = getAt(json, path.slice(0, -1)) as Record<string | number, unknown> | Array<unknown>
  const key = path[path.length - 1]!
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(key as number, 1)
    else delete (parent as Record<string, unknown>)[key]
  } else {
    Object.defineProperty(parent, key, { value, enumerable: true, configurable: true, writable: true })
  }
  return json
}

/**
 * A JSON-level mutant of `json` as text: 1-4 edits (value replaced by another
 * type or an edge value, field dropped, field added, string that holds JSON
 * re-mutated, key case changed, value nested deep), sometimes with a
 * duplicated key or whitespace spliced into the text.
 */
export const mutateJson = (rng: Rng, json: unknown): string => {
  let root = clone(json)
  const deep: Array<string> = []
  const edits = 1 + rng.int(4)
  for (let e = 0; e < edits; e++) {
    const all = paths(root)
    const path = rng.pick(all)
    const current = getAt(root, path)
    switch (rng.int(8)) {
      case 0:
      case 1:
        root = setAt(root, path, randomJson(rng, 2))
        break
      case 2:
        if (path.length > 0) root = setAt(root, path, undefined)
        break
      case 3:
        if (typeof current === "object" && current !== null && !Array.isArray(current)) {
          setAt(
            root,
            [...path, rng.chance(0.5) ? rng.pick(trickyKeys) : randomString(rng, 6)],
            randomJson(rng, 2)
          )
        }
        break
      case 4:
        if (typeof current === "string") {
          // Strings that hold JSON (JSON-in-string fields) get a structured mutant of their own.
          // A string made by an earlier edit may hold JSON nested too deep to clone: then it is just replaced.
          let replacement: string
          try {
            replacement = mutateJson(rng, JSON.parse(current) as unknown)
          } catch {
            replacement = randomString(rng, Math.min(current.length, 256))
          }
          root = setAt(root, path, replacement)
        } else if (typeof current === "number") {
          root = setAt(root, path, rng.pick(interestingNumbers))
        }
        break
      case 5:
        if (path.length > 0 && typeof path[path.length - 1] === "string") {
          const key = path[path.length - 1] as string
          const renamed = rng.chance(0.5) ? key.toLowerCase() : key.toUpperCase()
          const value = current
          setAt(root, path, undefined)
          setAt(root, [...path.slice(0, -1), renamed], value)
        }
        break
      case 6:
        deep.push(
          nestedText(rng, rng.chance(0.05) ? 1000 + rng.int(20_000) : 1 + rng.int(64), current ?? null)
        )
        root = setAt(root, path, deepMarker(deep.length - 1))
        break
      default:
        root = setAt(root, path, rng.chance(0.5) ? [] : {})
    }
  }
  let text = JSON.stringify(root) ?? "null"
  deep.forEach((replacement, k) => {
    text = text.replace(JSON.stringify(deepMarker(k)), () => replacement)
  })
  if (rng.chance(0.1)) {
    // A duplicated key: JSON.parse keeps the last, Go keeps the last too; make the last one wrong.
    const m = /"([A-Za-z]+)":/.exec(text)
    if (m !== null && text.startsWith("{"))
      text = `{${m[0]}${JSON.stringify(randomJson(rng, 1))},${text.slice(1)}`
  }
  if (rng.chance(0.05)) text = ` \t\n${text}\r\n `
  return text
}

/** Byte-level damage: bit flips, edge bytes, insertions, deletions, duplications. */
export const mutateBytes = (rng: Rng, bytes: Uint8Array): Uint8Array => {
  let out: Uint8Array = bytes.slice()
  const edits = 1 + rng.smallLength(8)
  for (let e = 0; e < edits; e++) {
    const at = rng.int(out.length + 1)
    switch (rng.int(6)) {
      case 0:
        if (out.length > 0) out[Math.min(at, out.length - 1)]! ^= 1 << rng.int(8)
        break
      case 1:
        if (out.length > 0)
          out[Math.min(at, out.length - 1)] = rng.pick([
            0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0xc0, 0xed, 0xef
          ])
        break
      case 2: {
        const insert = Uint8Array.from({ length: 1 + rng.smallLength(16) }, () => rng.int(256))
        out = concat([out.subarray(0, at), insert, out.subarray(at)])
        break
      }
      case 3:
        out = concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.smallLength(32)))])
        break
      case 4: {
        const end = Math.min(out.length, at + 1 + rng.smallLength(64))
        out = concat([out.subarray(0, end), out.subarray(at, end), out.subarray(end)])
        break
      }
      default:
        out = out.subarray(0, at).slice()
    }
  }
  return out
}

/** Concatenation of byte arrays. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const setU32 = (bytes: Uint8Array, at: number, value: number) => {
  if (at + 4 > bytes.length) return
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(at, value >>> 0, true)
}

/**
 * A frame-structured mutant: header fields rewritten (size, type, id),
 * payload replaced, truncated, or spliced with another frame.
 */
export const mutateFrame = (rng: Rng, frame: Uint8Array, other: Uint8Array): Uint8Array => {
  let out: Uint8Array = frame.slice()
  switch (rng.int(7)) {
    case 0:
      setU32(out, 4, rng.chance(0.7) ? rng.pick(interestingSizes) : out.length + rng.int(33) - 16)
      break
    case 1:
      setU32(out, 0, rng.chance(0.7) ? rng.pick(interestingTypes) : rng.u32())
      break
    case 2:
      setU32(out, 8 + 4 * rng.int(2), rng.chance(0.5) ? 0xffffffff : rng.u32())
      break
    case 3:
      out = out.subarray(0, rng.int(out.length)).slice()
      break
    case 4: {
      const cut = rng.int(out.length + 1)
      out = concat([out.subarray(0, cut), other.subarray(rng.int(other.length + 1))])
      break
    }
    case 5: {
      // A consistent header around damaged bytes: the size field agrees with the new payload.
      const payload = mutateBytes(rng, out.subarray(HeaderSize))
      out = concat([out.subarray(0, HeaderSize), payload])
      setU32(out, 4, out.length)
      break
    }
    default:
      out = mutateBytes(rng, out)
  }
  return out
}

/** `bytes` cut into chunks: single bytes, a header split in two, random sizes, or whole. */
export const chunk = (rng: Rng, bytes: Uint8Array): Array<Uint8Array> => {
  const mode = rng.int(4)
  if (mode === 0 || bytes.length === 0) return [bytes]
  const out: Array<Uint8Array> = []
  let at = 0
  while (at < bytes.length) {
    const size = mode === 1 ? 1 : mode === 2 ? 1 + rng.int(24) : 1 + rng.smallLength(bytes.length)
    out.push(bytes.subarray(at, at + size))
    at += size
  }
  return out
}
