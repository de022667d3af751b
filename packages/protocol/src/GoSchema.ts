/**
 * Schema combinators for Go `encoding/json` semantics: `omitempty`, JSON
 * embedded in a string (§5.2), maps with sorted keys, lenient zero-valued
 * decoding, and the fixed-width integer types of the Go structs.
 *
 * @since 0.1.0
 */
import type { FastCheck } from "effect"
import type * as AST from "effect/SchemaAST"
import { Option, ParseResult, Schema } from "effect"
import { GoJsonError, goStringify, markGoMap } from "./GoJson.js"

// "__proto__" cannot round-trip through a plain object; everything else can.
const jsonKey = (fc: typeof FastCheck) => fc.string({ maxLength: 12 }).filter((k) => k !== "__proto__")

const jsonValueArbitrary = (fc: typeof FastCheck) =>
  fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -1_000_000, max: 1_000_000 }),
      fc.string(),
      fc.array(tie("value"), { maxLength: 3 }),
      fc.dictionary(jsonKey(fc), tie("value"), { maxKeys: 3 })
    )
  })).value as FastCheck.Arbitrary<unknown>

/**
 * Any JSON value (what `JSON.parse` returns); generated as plain JSON in property tests.
 *
 * @since 0.1.0
 */
export const JsonValue: Schema.Schema<unknown> = Schema.declare(
  // `undefined` is not JSON; excluding it keeps `Schema.optional(JsonValue)` unambiguous.
  (u: unknown): u is unknown => u !== undefined,
  { identifier: "JsonValue", arbitrary: () => jsonValueArbitrary }
)

/**
 * A JSON object with arbitrary members, kept as given (key order included).
 *
 * @since 0.1.0
 */
export const JsonObject = Schema.Record({ key: Schema.String, value: JsonValue }).annotations({
  identifier: "JsonObject",
  arbitrary: () => (fc) => fc.dictionary(jsonKey(fc), jsonValueArbitrary(fc), { maxKeys: 4 })
})

/**
 * @since 0.1.0
 */
export type JsonObject = typeof JsonObject.Type

/**
 * Go `uint8`.
 *
 * @since 0.1.0
 */
export const Uint8 = Schema.Int.pipe(Schema.between(0, 0xff)).annotations({ identifier: "Uint8" })
/**
 * Go `uint16`.
 *
 * @since 0.1.0
 */
export const Uint16 = Schema.Int.pipe(Schema.between(0, 0xffff)).annotations({ identifier: "Uint16" })
/**
 * Go `uint32`: ports, pids, exit codes, timeouts.
 *
 * @since 0.1.0
 */
export const Uint32 = Schema.Int.pipe(Schema.between(0, 0xffffffff)).annotations({ identifier: "Uint32" })
/**
 * Go `int32`.
 *
 * @since 0.1.0
 */
export const Int32 = Schema.Int.pipe(Schema.between(-0x80000000, 0x7fffffff)).annotations({
  identifier: "Int32"
})
/**
 * Go `uint64` / `int64` byte counts: any non-negative integer JSON number
 * (beyond 2^53 the value is the nearest double, as `JSON.parse` gives it).
 *
 * @since 0.1.0
 */
export const Uint64 = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) && n >= 0, { message: () => "expected a non-negative integer" })
).annotations({
  identifier: "Uint64",
  arbitrary: () => (fc) =>
    fc.integer({ min: 0, max: 0x7fffffff }).chain((hi) => fc.nat().map((lo) => hi * 4096 + lo))
})

/**
 * An HRESULT field: a signed int32 on the wire, an unsigned number once decoded
 * (`-1070137074` ⇄ `0xc037010e`). Encoding accepts either form.
 *
 * @since 0.1.0
 */
export const HResultCode = Schema.transform(
  Int32,
  Schema.Int.pipe(Schema.between(-0x80000000, 0xffffffff)).annotations({
    identifier: "HResult",
    arbitrary: () => (fc) =>
      fc.integer({ min: 0, max: 0x7fffffff }).chain((n) => fc.constantFrom(n, n + 0x80000000))
  }),
  { strict: true, decode: (n) => n >>> 0, encode: (n) => n | 0 }
)

const GoZero = Symbol.for("@gcs-bridge/protocol/GoZero")

const zeroOf = (ast: AST.AST): unknown => {
  const annotated = ast.annotations[GoZero]
  if (annotated !== undefined) return (annotated as () => unknown)()
  switch (ast._tag) {
    case "BooleanKeyword":
      return false
    case "NumberKeyword":
      return 0
    case "StringKeyword":
      return ""
    case "TupleType":
      if (ast.elements.length === 0) return []
      break
    case "TypeLiteral":
      if (ast.propertySignatures.length === 0) return {}
      break
    case "Refinement":
      return zeroOf(ast.from)
    case "Transformation":
      return zeroOf(ast.to)
  }
  throw new Error(`no Go zero value known for ${String(ast)}; pass one explicitly`)
}

// The zero value of a schema as a thunk, worked out once: primitives are
// shared, arrays and maps are made fresh for every use.
const zeroThunk = <A>(ast: AST.AST): (() => A) => {
  const annotated = ast.annotations[GoZero]
  if (annotated !== undefined) return annotated as () => A
  const zero = zeroOf(ast)
  if (Array.isArray(zero)) return () => [] as A
  if (typeof zero === "object" && zero !== null) return () => ({}) as A
  return () => zero as A
}

const isZeroLike = (value: unknown, zero: unknown): boolean => {
  if (value === zero) return true
  if (Array.isArray(zero)) return Array.isArray(value) && value.length === 0
  if (typeof zero === "object" && zero !== null && Object.keys(zero).length === 0) {
    return typeof value === "object" && value !== null && Object.keys(value).length === 0
  }
  return false
}

/**
 * Go `omitempty` for a field of a struct.
 *
 * Type side: the plain value (required; the constructor defaults it to the zero
 * value). Wire side: the key is omitted for the zero value (`false`, `0`, `""`,
 * empty array, empty map); when decoding, an absent key or `null` gives the zero
 * value, as Go leaves the field untouched. Never use it for a nested struct:
 * Go never omits those (use {@link orZero} or `Schema.optional`).
 *
 * @since 0.1.0
 */
export const omitEmpty = <A, I, R>(schema: Schema.Schema<A, I, R>, zero?: () => A) => {
  const zeroValue = zero ?? zeroThunk<A>(schema.ast)
  return Schema.optionalToRequired(Schema.NullOr(schema), Schema.typeSchema(schema), {
    decode: (o) => (Option.isSome(o) && o.value !== null ? o.value : zeroValue()),
    encode: (a) => (isZeroLike(a, zeroValue()) ? Option.none() : Option.some(a))
  }).pipe(Schema.withConstructorDefault(zeroValue))
}

/**
 * A Go field without `omitempty`: always written, but decoded leniently like Go
 * does (absent key or `null` ⇒ the zero value). The constructor defaults it too;
 * use {@link lenient} for a field the caller must always give.
 *
 * @since 0.1.0
 */
export const orZero = <A, I, R>(schema: Schema.Schema<A, I, R>, zero?: () => A) => {
  const zeroValue = zero ?? zeroThunk<A>(schema.ast)
  return lenient(schema, zeroValue).pipe(Schema.withConstructorDefault(zeroValue))
}

/**
 * Like {@link orZero} but without a constructor default: required when building
 * a value, decoded as the zero value when absent or `null` on the wire.
 *
 * @since 0.1.0
 */
export const lenient = <A, I, R>(schema: Schema.Schema<A, I, R>, zero?: () => A) => {
  const zeroValue = zero ?? zeroThunk<A>(schema.ast)
  return Schema.optionalToRequired(Schema.NullOr(schema), Schema.typeSchema(schema), {
    decode: (o) => (Option.isSome(o) && o.value !== null ? o.value : zeroValue()),
    encode: (a) => Option.some(a)
  })
}

const isRecordObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const AnyObject = Schema.declare(isRecordObject, {
  identifier: "object",
  description: "a JSON object"
})

/**
 * A Go `map[string]V`: a record whose keys are written sorted (by UTF-8 bytes),
 * whatever the insertion order. Zero value `{}`.
 *
 * @since 0.1.0
 */
export const GoMap = <A, I, R>(value: Schema.Schema<A, I, R>) => {
  const record = Schema.Record({ key: Schema.String, value })
  return Schema.transform(AnyObject, record, {
    strict: false,
    decode: (o) => o,
    encode: (o) => markGoMap({ ...(o as object) })
  }).annotations({ [GoZero]: () => ({}) })
}

const JsonText = Schema.transformOrFail(Schema.String, JsonValue, {
  strict: true,
  decode: (text, _, ast) => {
    if (text === "")
      return ParseResult.fail(new ParseResult.Type(ast, text, "empty string is not a JSON document"))
    try {
      return ParseResult.succeed(JSON.parse(text) as unknown)
    } catch (e) {
      return ParseResult.fail(
        new ParseResult.Type(ast, text, `invalid JSON in string: ${(e as Error).message}`)
      )
    }
  },
  encode: (value, _, ast) => {
    try {
      return ParseResult.succeed(goStringify(value, { escapeHtml: true }))
    } catch (e) {
      const message = e instanceof GoJsonError ? e.message : String(e)
      return ParseResult.fail(new ParseResult.Type(ast, value, message))
    }
  }
}).annotations({ identifier: "JsonText" })

/**
 * A JSON document carried as a JSON string (Go's `AnyInString`, §5.2). The inner
 * text is written like `json.Marshal` (HTML-escaped); a `null` inner value is
 * `"null"`; the empty string fails to decode, as it does in Go.
 *
 * @since 0.1.0
 */
export const JsonInString = <A, I, R>(schema: Schema.Schema<A, I, R>): Schema.Schema<A, string, R> =>
  Schema.compose(JsonText, schema, { strict: false })
