/**
 * Schema combinators for Go `encoding/json` semantics: `omitempty`, JSON in a string (§5.2), maps with sorted
 * keys, lenient zero-valued decoding, the fixed-width integers. Each also describes itself to the compiled
 * codec (`internal/compile.ts`), which applies the same rules on the hot path.
 */
import { Effect, Option, Schema, SchemaAST, SchemaGetter, SchemaIssue } from "effect"
import { GoJsonError, goStringify, markGoMap } from "./GoJson.js"
import { isObject, isZeroLike, nodeOf, register } from "./internal/compile.js"

const isInt = (u: unknown, min: number, max: number): boolean =>
  typeof u === "number" && Number.isInteger(u) && u >= min && u <= max

const int = (identifier: string, min: number, max: number) => {
  const is = (u: unknown) => isInt(u, min, max)
  return register(
    Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max })).annotate({ identifier }),
    { _tag: "Leaf", is, typeIs: is }
  )
}

const isDefined = (u: unknown): u is unknown => u !== undefined

/** Any JSON value; excluding `undefined` (not JSON) keeps `Schema.optional(JsonValue)` unambiguous. */
export const JsonValue = register(Schema.declare(isDefined, { identifier: "JsonValue" }), {
  _tag: "Leaf",
  is: isDefined,
  typeIs: isDefined
})

/** A JSON object with arbitrary members, kept as given (key order included). */
export const JsonObject = register(
  Schema.Record(Schema.String, JsonValue).annotate({ identifier: "JsonObject" }),
  { _tag: "Map", value: JsonValue, sorted: false }
)

/** The type of {@link JsonObject}. */
export type JsonObject = typeof JsonObject.Type

/** Go `uint8`. */
export const Uint8 = int("Uint8", 0, 0xff)
/** Go `uint16`. */
export const Uint16 = int("Uint16", 0, 0xffff)
/** Go `uint32`: ports, pids, exit codes, timeouts. */
export const Uint32 = int("Uint32", 0, 0xffffffff)
/** Go `int32`. */
export const Int32 = int("Int32", -0x80000000, 0x7fffffff)

const isUint64 = (u: unknown) => isInt(u, 0, Infinity)

/** Go `uint64` / `int64` counts: any non-negative integer (past 2^53 the nearest double, like `JSON.parse`). */
export const Uint64 = register(
  Schema.Number.check(Schema.makeFilter(isUint64, { expected: "a non-negative integer" })).annotate({
    identifier: "Uint64"
  }),
  { _tag: "Leaf", is: isUint64, typeIs: isUint64 }
)

/** An HRESULT: signed int32 on the wire, unsigned decoded (`-1070137074` ⇄ `0xc037010e`); encodes either. */
export const HResultCode = register(
  Int32.pipe(
    Schema.decodeTo(
      Schema.Int.check(Schema.isBetween({ minimum: -0x80000000, maximum: 0xffffffff })).annotate({
        identifier: "HResult"
      }),
      { decode: SchemaGetter.transform((n) => n >>> 0), encode: SchemaGetter.transform((n) => n | 0) }
    )
  ),
  {
    _tag: "Leaf",
    is: (u) => isInt(u, -0x80000000, 0x7fffffff),
    decode: (n) => (n as number) >>> 0,
    typeIs: (u) => isInt(u, -0x80000000, 0xffffffff),
    encode: (n) => (n as number) | 0
  }
)

// Worked out once; arrays and maps are made fresh for every use.
const zeroThunk = <A>(schema: Schema.Top): (() => A) => {
  if (nodeOf(schema)?._tag === "Map") return () => ({}) as A
  const ast = SchemaAST.toType(schema.ast)
  switch (ast._tag) {
    case "Boolean":
      return () => false as A
    case "Number":
      return () => 0 as A
    case "String":
      return () => "" as A
    case "Arrays":
      if (ast.elements.length === 0) return () => [] as A
  }
  throw new Error(`no Go zero value known for ${ast._tag}; pass one explicitly`)
}

// The three Go field rules: an optional, nullable key decoding to the zero value; they differ in
// omitting it and in a constructor default.
const field = <S extends Schema.Top>(schema: S, zero: () => S["Type"], omit: boolean) =>
  register(
    Schema.optionalKey(Schema.NullOr(schema)).pipe(
      Schema.decodeTo(Schema.toType(schema), {
        decode: SchemaGetter.transformOptional((o) =>
          Option.some(Option.isSome(o) && o.value !== null ? o.value : zero())
        ),
        encode: SchemaGetter.transformOptional((o) =>
          omit && Option.isSome(o) && isZeroLike(o.value, zero()) ? Option.none() : o
        )
      })
    ),
    { _tag: "Field", inner: schema, zero, omit }
  )

// A field's schema never has a constructor default of its own: the type cannot see that for a generic `S`.
const withZeroDefault = <F extends Schema.Top>(schema: F, zero: () => F["~type.make.in"]) =>
  Schema.withConstructorDefault<F & Schema.WithoutConstructorDefault>(Effect.sync(zero))(
    schema as F & Schema.WithoutConstructorDefault
  )

/**
 * Go `omitempty` for a struct field: the plain value on the type side (the constructor defaults it to the
 * zero value); on the wire the key is omitted for the zero value (`false`, `0`, `""`, empty array or map),
 * and an absent key or `null` decodes as the zero value, as Go leaves the field untouched. Never for a
 * nested struct, which Go never omits (use {@link orZero} or `Schema.optional`).
 */
export const omitEmpty = <S extends Schema.Top>(schema: S, zero?: () => S["Type"]) => {
  const z = zero ?? zeroThunk<S["Type"]>(schema)
  return withZeroDefault(field(schema, z, true), z)
}

/**
 * A Go field without `omitempty`: always written, but decoded leniently like Go does (absent key or `null` ⇒
 * the zero value). The constructor defaults it too; use {@link lenient} for a field the caller must always
 * give.
 */
export const orZero = <S extends Schema.Top>(schema: S, zero?: () => S["Type"]) => {
  const z = zero ?? zeroThunk<S["Type"]>(schema)
  return withZeroDefault(field(schema, z, false), z)
}

/** Like {@link orZero} but required when building a value (decoded as the zero value if absent or `null`). */
export const lenient = <S extends Schema.Top>(schema: S, zero?: () => S["Type"]) =>
  field(schema, zero ?? zeroThunk<S["Type"]>(schema), false)

const AnyObject = Schema.declare(isObject, { identifier: "object", expected: "a JSON object" })

/** A Go `map[string]V`: keys written sorted by UTF-8 bytes, whatever the insertion order. Zero value `{}`. */
export const GoMap = <S extends Schema.Top>(value: S) =>
  register(
    AnyObject.pipe(
      Schema.decodeTo(Schema.Record(Schema.String, value), {
        decode: SchemaGetter.passthrough({ strict: false }),
        // Marked last: the record's own encoding rebuilds the object.
        encode: SchemaGetter.transform((o) => markGoMap({ ...o }))
      })
    ),
    { _tag: "Map", value, sorted: true }
  )

const invalid = (input: unknown, message: string) =>
  Effect.fail(new SchemaIssue.InvalidValue({ message }, input))

const JsonText = Schema.String.pipe(
  Schema.decodeTo(JsonValue, {
    decode: SchemaGetter.transformEffect((text: string) => {
      if (text === "") return invalid(text, "empty string is not a JSON document")
      try {
        return Effect.succeed(JSON.parse(text) as unknown)
      } catch (e) {
        return invalid(text, `invalid JSON in string: ${(e as Error).message}`)
      }
    }),
    encode: SchemaGetter.transformEffect((value: unknown) => {
      try {
        return Effect.succeed(goStringify(value, { escapeHtml: true }))
      } catch (e) {
        return invalid(value, e instanceof GoJsonError ? e.message : String(e))
      }
    })
  })
).annotate({ identifier: "JsonText" })

/**
 * A JSON document carried as a JSON string (Go's `AnyInString`, §5.2). The inner text is written like
 * `json.Marshal` (HTML-escaped); a `null` inner value is `"null"`; the empty string fails to decode, as it
 * does in Go.
 */
export const JsonInString = <S extends Schema.Top>(schema: S) =>
  register(JsonText.pipe(Schema.decodeTo(schema)), { _tag: "JsonInString", inner: schema })
