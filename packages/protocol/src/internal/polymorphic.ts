import { Effect, Schema, SchemaGetter, SchemaIssue, SchemaParser } from "effect"
import { register } from "./compile.js"

export { isObject, member } from "./compile.js"

/**
 * A Go `interface{}` position typed as one of several Schema classes (plus an optional raw-JSON fallback).
 * Encoding dispatches on the instance (exact class, then `instanceof`), never on structure: classes with
 * all-optional fields would match any object and drop fields. Decoding picks the member with `select`,
 * which sees the raw JSON value.
 */
export interface PolymorphicOptions<M extends ReadonlyArray<Schema.Top>, F extends Schema.Top> {
  readonly identifier: string
  readonly members: M
  /** Index of the member that decodes `raw`, `-1` for the fallback. */
  readonly select: (raw: unknown) => number
  readonly fallback?: F
}

/** Builds the Schema of a polymorphic position (see {@link PolymorphicOptions}). */
export const polymorphic = <M extends ReadonlyArray<Schema.Top>, F extends Schema.Top = Schema.Never>(
  options: PolymorphicOptions<M, F>
): Schema.Codec<M[number]["Type"] | F["Type"], unknown> => {
  type T = M[number]["Type"] | F["Type"]
  const { members, fallback, select, identifier } = options
  const classes = members as unknown as ReadonlyArray<abstract new (...args: never) => unknown>
  const dispatch = (value: unknown): number => {
    const exact =
      typeof value === "object" && value !== null ? classes.indexOf(value.constructor as never) : -1
    return exact >= 0 ? exact : classes.findIndex((c) => value instanceof c)
  }
  const decoders = members.map((m) => SchemaParser.decodeUnknownEffect(m as Schema.Codec<unknown>))
  const encoders = members.map((m) => SchemaParser.encodeUnknownEffect(m as Schema.Codec<unknown>))
  const fallbackIs = fallback === undefined ? () => false : Schema.is(fallback)
  const decodeFallback =
    fallback && SchemaParser.decodeUnknownEffect(fallback as unknown as Schema.Codec<unknown>)
  const encodeFallback =
    fallback && SchemaParser.encodeUnknownEffect(fallback as unknown as Schema.Codec<unknown>)
  const invalid = (u: unknown) =>
    Effect.fail(new SchemaIssue.InvalidValue({ message: `not a valid ${identifier}` }, u))
  const TypeSide = Schema.declare((u: unknown): u is T => dispatch(u) >= 0 || fallbackIs(u), { identifier })
  const schema = Schema.Unknown.pipe(
    Schema.decodeTo(TypeSide, {
      decode: SchemaGetter.transformEffect((raw: unknown) => {
        const index = select(raw)
        const decode = index >= 0 ? decoders[index] : decodeFallback
        return decode === undefined ? invalid(raw) : (decode(raw) as Effect.Effect<T, SchemaIssue.Issue>)
      }),
      encode: SchemaGetter.transformEffect((value: T) => {
        const index = dispatch(value)
        const encode = index >= 0 ? encoders[index] : encodeFallback
        return encode === undefined ? invalid(value) : encode(value)
      })
    })
  )
  return register(schema, { _tag: "Polymorphic", members, fallback, select, dispatch })
}
