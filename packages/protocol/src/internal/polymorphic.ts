import type { FastCheck } from "effect"
import { Arbitrary, Either, ParseResult, Schema } from "effect"
import { fastDecodeUnknownEither, fastEncodeUnknownEither } from "./fastParse.js"

/**
 * A position whose Go type is `interface{}` and that this package types as one
 * of several Schema classes (plus an optional raw-JSON fallback).
 *
 * Encoding dispatches on the instance (`instanceof` via `Schema.is`), never on
 * structure: Schema unions of classes with all-optional fields would pick the
 * first member for any object and drop fields. Decoding picks the member with
 * `select`, which sees the raw JSON value.
 */
export interface PolymorphicOptions<M extends ReadonlyArray<Schema.Schema.AnyNoContext>, F, FI> {
  readonly identifier: string
  readonly members: M
  /** Index of the member that decodes `raw`, `-1` for the fallback. */
  readonly select: (raw: unknown) => number
  readonly fallback?: Schema.Schema<F, FI, never>
  /** Values that survive encode∘decode, for property tests. Default: any member's. */
  readonly arbitrary?: (fc: typeof FastCheck) => FastCheck.Arbitrary<Schema.Schema.Type<M[number]> | F>
}

/** Builds the Schema of a polymorphic position (see {@link PolymorphicOptions}). */
export const polymorphic = <M extends ReadonlyArray<Schema.Schema.AnyNoContext>, F = never, FI = never>(
  options: PolymorphicOptions<M, F, FI>
): Schema.Schema<Schema.Schema.Type<M[number]> | F, unknown> => {
  type T = Schema.Schema.Type<M[number]> | F
  const { members, fallback, select } = options
  const guards = members.map((m) => Schema.is(m))
  const decoders = members.map((m) => fastDecodeUnknownEither(m))
  const encoders = members.map((m) => fastEncodeUnknownEither(m))
  const fallbackGuard = fallback === undefined ? undefined : Schema.is(fallback)
  const fallbackDecode = fallback === undefined ? undefined : fastDecodeUnknownEither(fallback)
  const fallbackEncode = fallback === undefined ? undefined : fastEncodeUnknownEither(fallback)
  const TypeSide = Schema.declare(
    (u: unknown): u is T => guards.some((is) => is(u)) || (fallbackGuard !== undefined && fallbackGuard(u)),
    {
      identifier: options.identifier,
      arbitrary: () => (fc) =>
        options.arbitrary !== undefined
          ? options.arbitrary(fc)
          : fc.oneof(...members.map((m) => Arbitrary.makeLazy(m)(fc) as FastCheck.Arbitrary<T>))
    }
  )
  return Schema.transformOrFail(Schema.Unknown, TypeSide, {
    strict: false,
    decode: (raw, _, ast) => {
      const index = select(raw)
      if (index >= 0 && index < decoders.length) return decoders[index]!(raw)
      if (fallbackDecode !== undefined) return fallbackDecode(raw)
      return Either.left(new ParseResult.Type(ast, raw, `not a valid ${options.identifier}`))
    },
    encode: (value, _, ast) => {
      // The exact class first: a subclass instance also passes its base's guard.
      const ctor =
        typeof value === "object" && value !== null ? Object.getPrototypeOf(value)?.constructor : undefined
      const exact = members.findIndex((m) => (m as unknown) === ctor)
      if (exact >= 0) return encoders[exact]!(value)
      for (let i = 0; i < guards.length; i++) if (guards[i]!(value)) return encoders[i]!(value)
      if (fallbackEncode !== undefined) return fallbackEncode(value)
      for (const encode of encoders) {
        const result = encode(value)
        if (Either.isRight(result)) return result
      }
      return Either.left(new ParseResult.Type(ast, value, `not a valid ${options.identifier}`))
    }
  })
}

/** A JSON object: not null, not an array. */
export const isObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  typeof u === "object" && u !== null && !Array.isArray(u)
