/**
 * Compiled codecs for the hot path: Effect's Schema interpreter tracks issues through every node, which costs
 * microseconds per small body. The wire bodies use a handful of shapes (classes, structs, arrays, unions,
 * primitives, and the Go combinators, which describe themselves with {@link register}); they compile to plain
 * functions returning a sentinel on failure, and Effect's parser then decides and describes the error (given
 * the input as Go's decoder reads it, {@link canonical}), so the fast path only has to be right about
 * successes. Tests check both agree.
 */
import { Result, Schema } from "effect"
import { forgetMarks, goStringify, goStringifyPlain, markCount, markGoMap } from "../GoJson.js"

type Top = Schema.Top

/** How the compiler treats a schema built by `GoSchema.ts` or `polymorphic.ts`. */
export type Node =
  /** `is`/`decode` check and map the encoded value, `typeIs`/`encode` the decoded one (absent: identity). */
  | {
      readonly _tag: "Leaf"
      readonly is: (u: unknown) => boolean
      readonly decode?: (u: unknown) => unknown
      readonly typeIs: (u: unknown) => boolean
      readonly encode?: (a: unknown) => unknown
    }
  | { readonly _tag: "Field"; readonly inner: Top; readonly zero: () => unknown; readonly omit: boolean }
  | { readonly _tag: "Map"; readonly value: Top; readonly sorted: boolean }
  | { readonly _tag: "JsonInString"; readonly inner: Top }
  /** `select` / `dispatch`: member index of a raw JSON value / of a value to encode; `-1`: the fallback. */
  | {
      readonly _tag: "Polymorphic"
      readonly members: ReadonlyArray<Top>
      readonly fallback: Top | undefined
      readonly select: (raw: unknown) => number
      readonly dispatch: (value: unknown) => number
    }

const nodes = new WeakMap<object, Node>()

/** Attaches a compiler description to a schema; returns the schema. */
export const register = <S extends Schema.Top>(schema: S, node: Node): S => {
  nodes.set(schema, node)
  return schema
}

/** The description {@link register} attached, if any. */
export const nodeOf = (schema: Schema.Top): Node | undefined => nodes.get(schema)

const Fail: unique symbol = Symbol("compile/Fail")
type Parser = (u: unknown) => unknown
/** `canon` rewrites raw JSON into the exact keys Effect's parser expects, as Go's decoder reads them. */
type Mode = "decode" | "encode" | "canon"

class Unsupported extends Error {}

const hasOwn = Object.prototype.hasOwnProperty
const identity = (u: unknown) => u
const isLiteralLike = (tag: string) => tag === "Null" || tag === "Undefined" || tag === "Literal"

/** A JSON object: not null, not an array. */
export const isObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const isEmptyObject = (u: unknown): boolean => {
  if (!isObject(u)) return false
  for (const _ in u) return false
  return true
}

/** Whether Go's `omitempty` drops `value` given the field's zero value (empty arrays and maps too). */
export const isZeroLike = (value: unknown, zero: unknown): boolean => zeroTest(zero)(value)

/** {@link isZeroLike} for one zero value, decided once: the encoder asks it for every omitempty field it writes. */
const zeroTest = (zero: unknown): ((value: unknown) => boolean) =>
  Array.isArray(zero)
    ? (value) => value === zero || (Array.isArray(value) && value.length === 0)
    : isEmptyObject(zero)
      ? (value) => value === zero || isEmptyObject(value)
      : (value) => value === zero

/**
 * Go's key folding (`encoding/json`'s foldName) as far as it can make a key equal an ASCII field name: ASCII
 * letters ignore case, and U+017F (long s) and U+212A (Kelvin sign) share a Unicode fold class with S and K.
 */
export const fold = (key: string): string =>
  /[^\0-\x7f]/.test(key)
    ? key.replace(/[a-z\u017f\u212a]/g, (c) =>
        c === "\u017f" ? "S" : c === "\u212a" ? "K" : c.toUpperCase()
      )
    : key.toUpperCase()

/** The member a Go struct field `name` reads from a raw JSON object: the last key equal to it ignoring case. */
export const member = (o: { readonly [key: string]: unknown }, name: string): unknown => {
  let value: unknown
  for (const key in o) if (key === name || fold(key) === fold(name)) value = o[key]
  return value
}

type Fields = Readonly<Record<string, Schema.Top>>
type Member = Schema.Top & { readonly schema?: Schema.Top; readonly members?: ReadonlyArray<Schema.Top> }

type FieldNode = Extract<Node, { readonly _tag: "Field" }>
interface Step {
  readonly name: string
  readonly optional: boolean
  readonly field: FieldNode | undefined
  readonly nullable: boolean
  readonly isZero: ((value: unknown) => boolean) | undefined
  readonly parse: Parser
}

/**
 * A struct's decoder or encoder as code of its own, the same steps as the loops in `compile` with every key
 * written out: `out.Name = …` and `u.Name` stay monomorphic per struct, where the shared loop's `out[name]`
 * went through V8's megamorphic stub cache on every field, shared with everything else in the process.
 * `undefined` where code cannot be generated (`--disallow-code-generation-from-strings`, an unusual key):
 * the loops serve then. `renamed` gives the body with Go's keys, or `Fail` when they were exact already.
 */
const generate = (
  steps: ReadonlyArray<Step>,
  mode: Mode,
  make: () => Record<string, unknown>,
  renamed: (u: { readonly [key: string]: unknown }) => unknown
): Parser | undefined => {
  if (mode === "canon" || steps.some(({ name }) => name === "__proto__")) return undefined
  const key = (name: string) => JSON.stringify(name)
  const lines: Array<string> = []
  if (mode === "decode") {
    lines.push(
      "return function decodeStruct(u) {",
      "  if (!isObject(u)) return u === null ? decodeStruct({}) : Fail",
      "  const out = make()",
      "  let seen = 0, present, value",
      // Keys matching exactly (the Go writers' own) take this pass alone; any other key costs a second one.
      "  const retry = () => { const v = renamed(u); return v === Fail ? Fail : decodeStruct(v) }"
    )
    steps.forEach(({ name, optional, field, nullable }, i) => {
      lines.push(`  present = hasOwn.call(u, ${key(name)}); value = u[${key(name)}]; if (present) seen++`)
      if (field !== undefined)
        lines.push(
          `  if (!present || value === null) out[${key(name)}] = steps[${i}].field.zero()`,
          `  else if ((out[${key(name)}] = steps[${i}].parse(value)) === Fail) return retry()`
        )
      else
        lines.push(
          `  if (present && (value !== null || ${nullable})) {`,
          `    if ((out[${key(name)}] = steps[${i}].parse(value)) === Fail) return retry()`,
          `  } else if (!${optional}) return retry()`
        )
    })
    lines.push("  let keys = 0", "  for (const _ in u) keys++", "  return keys === seen ? out : retry()", "}")
  } else {
    lines.push("return function encodeStruct(u) {", "  if (!isObject(u)) return Fail", "  const out = {}")
    lines.push("  let present, value, encoded")
    steps.forEach(({ name, optional, field, isZero }, i) => {
      lines.push(`  present = hasOwn.call(u, ${key(name)}); value = u[${key(name)}]`)
      if (field !== undefined) {
        // Absent only from a body built by `Codec.unchecked`: Go writes the zero value (or omits it).
        lines.push("  if (!present) {")
        if (!field.omit)
          lines.push(
            `    encoded = steps[${i}].parse(steps[${i}].field.zero())`,
            "    if (encoded === Fail) return Fail",
            `    out[${key(name)}] = encoded`
          )
        lines.push(
          "  } else {",
          `    encoded = steps[${i}].parse(value)`,
          "    if (encoded === Fail) return Fail",
          isZero === undefined
            ? `    out[${key(name)}] = encoded`
            : `    if (!steps[${i}].isZero(value)) out[${key(name)}] = encoded`,
          "  }"
        )
      } else
        lines.push(
          "  if (present) {",
          `    if ((out[${key(name)}] = steps[${i}].parse(value)) === Fail) return Fail`,
          `  } else if (!${optional}) return Fail`
        )
    })
    lines.push("  return out", "}")
  }
  let factory: (...args: ReadonlyArray<unknown>) => Parser
  try {
    factory = new Function(
      "hasOwn",
      "isObject",
      "Fail",
      "make",
      "renamed",
      "steps",
      lines.join("\n")
    ) as never
  } catch (e) {
    // Only a process that forbids code generation gets the loops; a bug in the code above must not hide.
    if (e instanceof EvalError) return undefined
    throw e
  }
  generatedCount++
  return factory(hasOwn, isObject, Fail, make, renamed, steps)
}

let generatedCount = 0
/** How many struct codecs were generated as code (for tests: zero where code generation is forbidden). */
export const generatedCodecs = (): number => generatedCount

const compile = (root: Schema.Top, mode: Mode, generated: boolean): Parser => {
  const decoding = mode === "decode"
  const memo = new Map<Schema.Top, Parser>()
  // No cycles: the wire bodies use no `Schema.suspend`.
  const go = (schema: Schema.Top): Parser => {
    const parser = memo.get(schema) ?? build(schema)
    memo.set(schema, parser)
    return parser
  }

  // `make` gives the object to fill: a plain one, or a bare instance of the class when decoding.
  const struct = (fields: Fields, make: () => Record<string, unknown> = () => ({})): Parser => {
    const steps = Object.entries(fields).map(([name, schema]) => {
      // `optionalKey` / `withConstructorDefault` wrap the field schema; the key rules sit in its context.
      let inner = schema as Member
      while (nodes.get(inner) === undefined && inner.schema !== undefined && inner.ast.context !== undefined)
        inner = inner.schema as Member
      const node = nodes.get(inner)
      const field = node?._tag === "Field" ? node : undefined
      const optional = field === undefined && schema.ast.context?.isOptional === true
      // `null` is a value only of a raw-JSON position; elsewhere Go leaves the field zero (absent here).
      const nullable =
        field === undefined &&
        Result.isSuccess(Schema.decodeUnknownResult(inner as Schema.Codec<unknown>)(null))
      // A zero value made once: a fresh one per write only fed the comparison.
      const isZero = field?.omit === true ? zeroTest(field.zero()) : undefined
      return { name, optional, field, nullable, isZero, parse: go(field?.inner ?? inner) }
    })
    const names = new Set(steps.map((step) => step.name))
    const folded = new Map<string, string>()
    for (const { name } of steps) if (!folded.has(fold(name))) folded.set(fold(name), name)
    const isExact = (u: object) => {
      for (const key in u) if (!names.has(key)) return false
      return true
    }
    // Go reads a key into the field of that name, else into the first one equal ignoring case; a later key
    // for the same field wins and unknown keys are skipped. The result has only exact names.
    const rename = (u: { readonly [key: string]: unknown }) => {
      const out: Record<string, unknown> = {}
      for (const key in u) {
        const name = names.has(key) ? key : folded.get(fold(key))
        if (name !== undefined) out[name] = u[key]
      }
      return out
    }
    if (mode === "canon")
      return (u) => {
        if (!isObject(u)) return u === null ? {} : u
        const v = isExact(u) ? u : rename(u)
        const out: Record<string, unknown> = {}
        for (const { name, field, nullable, parse } of steps) {
          if (!hasOwn.call(v, name)) continue
          const value = v[name]
          if (value !== null) out[name] = parse(value)
          else if (field !== undefined || nullable) out[name] = null
        }
        return out
      }
    const code = generated ? generate(steps, mode, make, (u) => (isExact(u) ? Fail : rename(u))) : undefined
    if (code !== undefined) return code
    if (decoding) {
      // Keys matching exactly (the Go writers' own) take the loop alone; any other key costs a second pass.
      const retry = (u: { readonly [key: string]: unknown }) => (isExact(u) ? Fail : decodeStruct(rename(u)))
      const decodeStruct = (u: unknown): unknown => {
        // `null` leaves a Go struct as it is: zero (a whole body, an element of an array or map).
        if (!isObject(u)) return u === null ? decodeStruct({}) : Fail
        const out = make()
        let seen = 0
        for (let i = 0; i < steps.length; i++) {
          const { name, optional, field, nullable, parse } = steps[i]!
          const present = hasOwn.call(u, name)
          const value = u[name]
          if (present) seen++
          if (field !== undefined) {
            if (!present || value === null) out[name] = field.zero()
            else if ((out[name] = parse(value)) === Fail) return retry(u)
          } else if (present && (value !== null || nullable)) {
            if ((out[name] = parse(value)) === Fail) return retry(u)
          } else if (!optional) return retry(u)
        }
        let keys = 0
        for (const _ in u) keys++
        return keys === seen ? out : decodeStruct(rename(u))
      }
      return decodeStruct
    }
    return (u) => {
      if (!isObject(u)) return Fail
      const out = make()
      for (let i = 0; i < steps.length; i++) {
        const { name, optional, field, isZero, parse } = steps[i]!
        const present = hasOwn.call(u, name)
        const value = u[name]
        if (field !== undefined) {
          // Absent only from a body built by `Codec.unchecked`: Go writes the zero value (or omits it).
          if (!present) {
            if (field.omit) continue
            const zero = parse(field.zero())
            if (zero === Fail) return Fail
            out[name] = zero
            continue
          }
          const encoded = parse(value)
          if (encoded === Fail) return Fail
          if (isZero === undefined || !isZero(value)) out[name] = encoded
        } else if (present) {
          if ((out[name] = parse(value)) === Fail) return Fail
        } else if (!optional) return Fail
      }
      return out
    }
  }

  const build = (schema: Schema.Top): Parser => {
    const node = nodes.get(schema)
    if (node !== undefined) return fromNode(node)
    if ("fields" in schema) {
      const fields = schema.fields as Fields
      if (typeof schema !== "function") return struct(fields)
      const cls = schema as unknown as abstract new (...args: never) => unknown
      if (decoding)
        return struct(fields, () => Object.create(cls.prototype as object) as Record<string, unknown>)
      const parse = struct(fields)
      if (mode === "canon") return parse
      return (u) => (u instanceof cls ? parse(u) : Fail)
    }
    const ast = schema.ast
    if (ast.encoding !== undefined || ast.checks !== undefined) throw new Unsupported()
    const canon = mode === "canon"
    switch (ast._tag) {
      case "String":
      case "Number":
      case "Boolean": {
        const type = ast._tag.toLowerCase()
        return canon ? identity : (u) => (typeof u === type ? u : Fail)
      }
      case "Null":
      case "Undefined":
      case "Literal": {
        const literal = ast._tag === "Literal" ? ast.literal : ast._tag === "Null" ? null : undefined
        return canon ? identity : (u) => (u === literal ? u : Fail)
      }
      case "Arrays": {
        const item = (schema as unknown as { readonly value?: Schema.Top }).value
        if (ast.elements.length !== 0 || item === undefined) throw new Unsupported()
        const parse = go(item)
        if (canon) return (u) => (Array.isArray(u) ? u.map(parse) : u)
        return (u) => {
          if (!Array.isArray(u)) return Fail
          const out = new Array<unknown>(u.length)
          for (let i = 0; i < u.length; i++) if ((out[i] = parse(u[i])) === Fail) return Fail
          return out
        }
      }
      case "Union": {
        if (canon) {
          // `optional` / `NullOr` around one shape: rewrite with that shape.
          const shapes = ((schema as Member).members ?? []).filter((m) => !isLiteralLike(m.ast._tag))
          return shapes.length === 1 ? go(shapes[0]!) : identity
        }
        const members = ((schema as Member).members ?? []).map(go)
        if (members.length === 0) throw new Unsupported()
        return (u) => {
          for (const parse of members) {
            const v = parse(u)
            if (v !== Fail) return v
          }
          return Fail
        }
      }
    }
    throw new Unsupported()
  }

  const fromNode = (node: Node): Parser => {
    switch (node._tag) {
      case "Leaf": {
        if (mode === "canon") return identity
        const is = decoding ? node.is : node.typeIs
        const map = decoding ? node.decode : node.encode
        return map === undefined ? (u) => (is(u) ? u : Fail) : (u) => (is(u) ? map(u) : Fail)
      }
      case "Field":
        // Only reachable outside a struct, where the key rules do not apply.
        return go(node.inner)
      case "Map": {
        const parse = go(node.value)
        const sorted = node.sorted && mode === "encode"
        return (u) => {
          if (!isObject(u)) return mode === "canon" ? u : Fail
          const out: Record<string, unknown> = {}
          const keys = Object.keys(u)
          for (const key of keys) if ((out[key] = parse(u[key])) === Fail) return Fail
          // One key or none is in order already (the common `otsc`), and leaves the body unmarked.
          return sorted && keys.length > 1 ? markGoMap(out) : out
        }
      }
      case "JsonInString": {
        const parse = go(node.inner)
        // `canon` rewrites the inner document where it parses and leaves anything else as it is.
        const failed = (u: unknown) => (mode === "canon" ? u : Fail)
        return (u) => {
          try {
            if (mode === "encode") {
              const marks = markCount()
              const encoded = parse(u)
              if (encoded === Fail) return Fail
              const inner = marks === markCount() ? goStringifyPlain : goStringify
              const text = inner(encoded, { escapeHtml: true })
              // Its maps are inside the string now: the outer document still holds none of them.
              forgetMarks(marks)
              return text
            }
            if (typeof u !== "string" || u === "") return failed(u)
            const inner = parse(JSON.parse(u))
            return mode === "canon" ? JSON.stringify(inner) : inner
          } catch {
            return failed(u)
          }
        }
      }
      case "Polymorphic": {
        const members = node.members.map(go)
        const fallback = node.fallback === undefined ? undefined : go(node.fallback)
        const pick = mode === "encode" ? node.dispatch : node.select
        return (u) => {
          const index = pick(u)
          const parse = index >= 0 ? members[index] : fallback
          return parse === undefined ? (mode === "canon" ? u : Fail) : parse(u)
        }
      }
    }
  }

  return go(root)
}

const tryCompile = (schema: Schema.Top, mode: Mode, generated = true): Parser | undefined => {
  try {
    return compile(schema, mode, generated)
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e
  }
}

/** `generated: false` keeps a struct's codec in the shared loops, as where code generation is forbidden (tests). */
export interface CompileOptions {
  readonly generated?: boolean
}

/** Whether the compiled path covers this schema in the given direction (for tests). */
export const isCompiled = (schema: Schema.Top, direction: "decode" | "encode"): boolean =>
  tryCompile(schema, direction) !== undefined

/** The raw JSON rewritten with the exact keys, as Go's decoder reads it: what Effect's parser is given. */
export const canonical = (schema: Schema.Top): ((u: unknown) => unknown) =>
  tryCompile(schema, "canon") ?? identity

// Effect's parser decides and describes a failure. Describing a hostile, deeply
// nested value could exhaust the stack; such input still gets an error, never a throw.
const withFallback =
  (fast: Parser | undefined, full: (u: unknown) => Result.Result<unknown, { readonly message: string }>) =>
  (u: unknown): Result.Result<unknown, string> => {
    const out = fast === undefined ? Fail : fast(u)
    if (out !== Fail) return Result.succeed(out)
    try {
      return Result.mapError(full(u), (e) => e.message)
    } catch (e) {
      return Result.fail(e instanceof RangeError ? "value nested too deeply" : String(e))
    }
  }

/**
 * `Schema.decodeUnknownResult(schema)` of the {@link canonical} input, compiled: keys match as in Go's
 * decoder, unknown keys are skipped, `null` leaves a field zero; the failure as Effect's message.
 */
export const decoder = <S extends Schema.Codec<unknown, unknown>>(
  schema: S,
  options: CompileOptions = {}
): ((input: unknown) => Result.Result<S["Type"], string>) => {
  const canon = canonical(schema)
  const full = Schema.decodeUnknownResult(schema)
  return withFallback(tryCompile(schema, "decode", options.generated), (u) => full(canon(u)))
}

/** `Schema.encodeUnknownResult(schema)`, compiled likewise. */
export const encoder = <S extends Schema.Codec<unknown, unknown>>(
  schema: S,
  options: CompileOptions = {}
): ((input: unknown) => Result.Result<unknown, string>) =>
  withFallback(tryCompile(schema, "encode", options.generated), Schema.encodeUnknownResult(schema))
