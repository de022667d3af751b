/**
 * Compiled Schema parsers for the hot path.
 *
 * Effect's `ParseResult` interprets the AST with rich error tracking, which
 * costs several microseconds for a small body. This module compiles the same
 * AST once into plain functions with the same semantics for the node kinds the
 * wire bodies use, returning a sentinel instead of building issues. On any
 * failure (or any node it does not know) the caller falls back to the full
 * `ParseResult` parser, which decides the error; so the fast path only ever
 * has to be right about successes. Tests check both paths agree.
 */
import { Either, Option, ParseResult, Schema } from "effect"
import * as AST from "effect/SchemaAST"

const Fail: unique symbol = Symbol("fastParse/Fail")
type Fail = typeof Fail
type Parser = (input: unknown) => unknown

class Unsupported extends Error {}

const options: AST.ParseOptions = {}

const fromEither = (result: unknown): unknown => {
  if (!Either.isEither(result)) return Fail
  return Either.isRight(result) ? result.right : Fail
}

const dropRightRefinement = (ast: AST.AST): AST.AST =>
  AST.isRefinement(ast) ? dropRightRefinement(ast.from) : ast

// Union members with literal-valued properties are dispatched by Effect through
// a search tree, not in order; leave those to the full parser.
const hasLiteralKeys = (ast: AST.AST, isDecoding: boolean): boolean => {
  switch (ast._tag) {
    case "TypeLiteral":
      return ast.propertySignatures.some((ps) => {
        const type = isDecoding ? AST.encodedAST(ps.type) : AST.typeAST(ps.type)
        return AST.isLiteral(type) && !ps.isOptional
      })
    case "TupleType":
      return ast.elements.some((e) => {
        const type = isDecoding ? AST.encodedAST(e.type) : AST.typeAST(e.type)
        return AST.isLiteral(type) && !e.isOptional
      })
    case "Refinement":
      return hasLiteralKeys(ast.from, isDecoding)
    case "Transformation":
      return hasLiteralKeys(isDecoding ? ast.from : ast.to, isDecoding)
    default:
      return false
  }
}

// A Schema.Class decodes with `new Class(props, true)`: copy the props, add
// constructor defaults for absent ones, assign them to the instance. When the
// first decoded instance shows that this is all the constructor did, later
// ones are made with `Object.create` + `Object.assign`, which is several times
// cheaper; any input lacking a defaulted field still goes through `new`.
type ClassLike = { readonly ast?: unknown; readonly fields?: Record<PropertyKey, unknown> }

const defaultedKeys = (fields: Record<PropertyKey, unknown>): Array<PropertyKey> | undefined => {
  const keys: Array<PropertyKey> = []
  for (const key of Reflect.ownKeys(fields)) {
    if (key === "_tag") return undefined
    const field = fields[key] as {
      readonly ast?: {
        readonly _tag?: string
        readonly defaultValue?: unknown
        readonly to?: { readonly defaultValue?: unknown }
      }
    }
    const psAst = field?.ast
    if (psAst?._tag === "PropertySignatureDeclaration" && psAst.defaultValue !== undefined) keys.push(key)
    else if (psAst?._tag === "PropertySignatureTransformation" && psAst.to?.defaultValue !== undefined)
      keys.push(key)
  }
  return keys
}

const sameOwnProps = (x: object, a: Record<PropertyKey, unknown>): boolean => {
  const xs = Reflect.ownKeys(x)
  const as = Reflect.ownKeys(a)
  return xs.length === as.length && as.every((k) => (x as Record<PropertyKey, unknown>)[k] === a[k])
}

const classDecoder = (
  ast: AST.Transformation,
  from: Parser,
  to: Parser,
  f: (fromA: unknown, options: AST.ParseOptions, self: AST.Transformation, fromI: unknown) => unknown
): Parser => {
  let proto: object | undefined
  let defaults: ReadonlyArray<PropertyKey> = []
  let learned = false
  return (u) => {
    const a = from(u) as Record<PropertyKey, unknown> | Fail
    if (a === Fail) return Fail
    if (proto !== undefined && defaults.every((k) => a[k] !== undefined)) {
      return Object.assign(Object.create(proto) as object, a)
    }
    const b = fromEither(f(a, options, ast, u))
    if (b === Fail) return Fail
    const out = to(b)
    if (!learned && out !== Fail && typeof out === "object" && out !== null) {
      learned = true
      const ctor = (out as { readonly constructor?: ClassLike }).constructor
      const keys = ctor?.fields === undefined ? undefined : defaultedKeys(ctor.fields)
      if (ctor?.ast === ast && keys !== undefined && sameOwnProps(out, a)) {
        proto = Object.getPrototypeOf(out) as object
        defaults = keys
      }
    }
    return out
  }
}

/**
 * Annotation of a `Schema.filter` refinement: the plain predicate the filter
 * applies (returning `true` exactly when the filter passes), for the compiled path.
 */
export const FastPredicateId: unique symbol = Symbol.for("@gcs-bridge/protocol/FastPredicate")

// The predicates behind Effect's own `int`, `between` and `pattern` filters,
// read from the annotations those filters set, without the Option wrapping.
const knownPredicate = (ast: AST.Refinement): ((a: unknown) => boolean) | undefined => {
  const own = ast.annotations[FastPredicateId]
  if (typeof own === "function") return own as (a: unknown) => boolean
  const id = ast.annotations[AST.SchemaIdAnnotationId]
  if (id === Schema.IntSchemaId) return (a) => Number.isSafeInteger(a)
  if (id === Schema.BetweenSchemaId) {
    const bounds = ast.annotations[AST.JSONSchemaAnnotationId] as
      { minimum?: unknown; maximum?: unknown } | undefined
    const min = bounds?.minimum
    const max = bounds?.maximum
    if (typeof min === "number" && typeof max === "number")
      return (a) => (a as number) >= min && (a as number) <= max
  }
  if (id === Schema.PatternSchemaId) {
    const regex = (ast.annotations[Schema.PatternSchemaId] as { regex?: unknown } | undefined)?.regex
    if (regex instanceof RegExp) {
      return (a) => {
        regex.lastIndex = 0
        return regex.test(a as string)
      }
    }
  }
  return undefined
}

// Whether parsing this node returns its input (or an equal copy) or fails:
// keywords, literals, refinements, unions and arrays of such, structs of such,
// and declarations (type-side guards such as a class's `instanceof`).
const isPure = (ast: AST.AST): boolean => {
  switch (ast._tag) {
    case "StringKeyword":
    case "NumberKeyword":
    case "BooleanKeyword":
    case "UnknownKeyword":
    case "AnyKeyword":
    case "UndefinedKeyword":
    case "Literal":
    case "Declaration":
      return true
    case "Refinement":
      return isPure(ast.from)
    case "Union":
      return ast.types.every(isPure)
    case "TupleType":
      return ast.elements.every((e) => isPure(e.type)) && ast.rest.every((r) => isPure(r.type))
    case "TypeLiteral":
      return (
        ast.propertySignatures.every((ps) => isPure(ps.type)) &&
        ast.indexSignatures.every((is) => isPure(is.type))
      )
    default:
      return false
  }
}

/**
 * One pass for a struct whose fields use property-signature transformations
 * (Go `omitempty` and friends), when every transformation keeps its key and the
 * type side is a pure validator. Effect decodes the encoded struct into an
 * object, transforms it key by key, then re-parses it as the type side; this
 * reads each input key once and writes the output in the type side's order,
 * with the same result.
 */
const fuseStruct = (
  ast: AST.Transformation,
  t: AST.TypeLiteralTransformation,
  isDecoding: boolean,
  go: (ast: AST.AST) => Parser
): Parser | undefined => {
  const encoded = ast.from
  const typed = ast.to
  if (!AST.isTypeLiteral(encoded) || !AST.isTypeLiteral(typed)) return undefined
  if (encoded.indexSignatures.length > 0 || typed.indexSignatures.length > 0 || !isPure(typed))
    return undefined
  if (t.propertySignatureTransformations.some((pst) => pst.from !== pst.to)) return undefined
  const encodedByName = new Map(encoded.propertySignatures.map((ps) => [ps.name, ps]))
  const typedNames = new Set(typed.propertySignatures.map((ps) => ps.name))
  if (encoded.propertySignatures.some((ps) => !typedNames.has(ps.name))) return undefined
  const transform = new Map(
    t.propertySignatureTransformations.map((pst) => [pst.from, isDecoding ? pst.decode : pst.encode] as const)
  )
  const hasOwn = Object.prototype.hasOwnProperty
  // The output order: the type side's when decoding, the encoded side's when encoding.
  const order = isDecoding ? typed.propertySignatures : encoded.propertySignatures
  const fields = order.map((ps) => {
    const wire = encodedByName.get(ps.name)
    if (wire === undefined) {
      // Only a transformation can produce a key the encoded side lacks.
      if (!transform.has(ps.name)) throw new Unsupported()
      return {
        name: ps.name,
        parse: undefined,
        optional: true,
        f: transform.get(ps.name),
        typedOptional: ps.isOptional
      }
    }
    return {
      name: ps.name,
      parse: go(wire.type),
      optional: wire.isOptional,
      f: transform.get(ps.name),
      typedOptional: typed.propertySignatures.find((x) => x.name === ps.name)!.isOptional
    }
  })
  const count = fields.length
  if (isDecoding) {
    return (u) => {
      if (typeof u !== "object" || u === null || Array.isArray(u)) return Fail
      const input = u as Record<PropertyKey, unknown>
      const out: Record<PropertyKey, unknown> = {}
      for (let i = 0; i < count; i++) {
        const { name, parse, optional, f, typedOptional } = fields[i]!
        const present = hasOwn.call(input, name)
        let value: unknown = undefined
        let has = false
        if (parse !== undefined && (present || !optional)) {
          value = parse(input[name])
          if (value === Fail) return Fail
          has = true
        }
        if (f !== undefined) {
          const o = f(has ? Option.some(value) : Option.none())
          if (Option.isSome(o)) out[name] = o.value
          else if (!typedOptional) return Fail
        } else if (has) {
          out[name] = value
        } else if (!typedOptional) {
          return Fail
        }
      }
      return out
    }
  }
  return (u) => {
    if (typeof u !== "object" || u === null || Array.isArray(u)) return Fail
    const input = u as Record<PropertyKey, unknown>
    const out: Record<PropertyKey, unknown> = {}
    for (let i = 0; i < count; i++) {
      const { name, parse, optional, f } = fields[i]!
      let present = hasOwn.call(input, name)
      let value = input[name]
      if (f !== undefined) {
        const o = f(present ? Option.some(value) : Option.none())
        present = Option.isSome(o)
        value = present ? (o as Option.Some<unknown>).value : undefined
      }
      if (!present && optional) continue
      const v = parse!(value)
      if (v === Fail) return Fail
      out[name] = v
    }
    return out
  }
}

const compile = (root: AST.AST, isDecoding: boolean): Parser => {
  const memo = new Map<AST.AST, Parser>()
  const go = (ast: AST.AST): Parser => {
    const known = memo.get(ast)
    if (known !== undefined) return known
    // No cycles to worry about: `Suspend` (the only way to build one) is unsupported.
    const compiled = build(ast)
    memo.set(ast, compiled)
    return compiled
  }

  const build = (ast: AST.AST): Parser => {
    switch (ast._tag) {
      case "StringKeyword":
        return (u) => (typeof u === "string" ? u : Fail)
      case "NumberKeyword":
        return (u) => (typeof u === "number" ? u : Fail)
      case "BooleanKeyword":
        return (u) => (typeof u === "boolean" ? u : Fail)
      case "UnknownKeyword":
      case "AnyKeyword":
        return (u) => u
      case "UndefinedKeyword":
        return (u) => (u === undefined ? u : Fail)
      case "Literal": {
        const literal = ast.literal
        return (u) => (u === literal ? u : Fail)
      }
      case "Declaration": {
        const parse = isDecoding
          ? ast.decodeUnknown(...ast.typeParameters)
          : ast.encodeUnknown(...ast.typeParameters)
        return (u) => fromEither(parse(u, options, ast))
      }
      case "Refinement": {
        if (isDecoding) {
          const from = go(ast.from)
          const known = knownPredicate(ast)
          if (known !== undefined) {
            return (u) => {
              const a = from(u)
              return a === Fail || !known(a) ? Fail : a
            }
          }
          return (u) => {
            const a = from(u)
            return a === Fail || Option.isSome(ast.filter(a, options, ast)) ? Fail : a
          }
        }
        const check = compile(AST.typeAST(ast), true)
        const to = go(dropRightRefinement(ast.from))
        return (u) => (check(u) === Fail ? Fail : to(u))
      }
      case "Transformation": {
        const from = isDecoding ? go(ast.from) : go(ast.to)
        const to = isDecoding ? go(ast.to) : go(ast.from)
        const t = ast.transformation
        switch (t._tag) {
          case "ComposeTransformation":
            return (u) => {
              const a = from(u)
              return a === Fail ? Fail : to(a)
            }
          case "FinalTransformation": {
            const f = isDecoding ? t.decode : t.encode
            if (isDecoding && ast.to._tag === "Declaration") return classDecoder(ast, from, to, f)
            return (u) => {
              const a = from(u)
              if (a === Fail) return Fail
              const b = fromEither(f(a, options, ast, u))
              return b === Fail ? Fail : to(b)
            }
          }
          case "TypeLiteralTransformation": {
            const fused = fuseStruct(ast, t, isDecoding, go)
            if (fused !== undefined) return fused
            const steps = t.propertySignatureTransformations.map((pst) =>
              isDecoding
                ? ([pst.from, pst.to, pst.decode] as const)
                : ([pst.to, pst.from, pst.encode] as const)
            )
            // The type side of a struct only re-validates what the encoded side
            // already produced (Effect runs it anyway). When it is a pure
            // validator, decoding replaces it by putting the keys in schema order,
            // and encoding starts from a shallow copy: the encoded side validates
            // every value again as it encodes it. This trusts a property-signature
            // transformation to return a value of its declared type, as Schema does.
            const typeSide = ast.to
            const pure =
              AST.isTypeLiteral(typeSide) && typeSide.indexSignatures.length === 0 && isPure(typeSide)
            const names = pure ? typeSide.propertySignatures.map((ps) => ps.name) : []
            const optional = pure ? typeSide.propertySignatures.map((ps) => ps.isOptional) : []
            const hasOwn = Object.prototype.hasOwnProperty
            const first: Parser =
              pure && !isDecoding
                ? (u) =>
                    typeof u === "object" && u !== null && !Array.isArray(u) ? Object.assign({}, u) : Fail
                : from
            const last: Parser =
              pure && isDecoding
                ? (a) => {
                    const input = a as Record<PropertyKey, unknown>
                    const out: Record<PropertyKey, unknown> = {}
                    for (let i = 0; i < names.length; i++) {
                      const name = names[i]!
                      if (hasOwn.call(input, name)) out[name] = input[name]
                      else if (!optional[i]) return to(a)
                    }
                    return out
                  }
                : to
            const stepped = new Set<PropertyKey>(steps.map(([fromKey]) => fromKey))
            return (u) => {
              const a = first(u) as Record<PropertyKey, unknown> | Fail
              if (a === Fail) return Fail
              // Effect deletes each transformed key and sets its new value on the
              // same object; building a fresh one gives the same result without
              // `delete`, which would push V8 into slow dictionary-mode objects.
              const b: Record<PropertyKey, unknown> = {}
              for (const key in a) if (!stepped.has(key)) b[key] = a[key]
              for (let i = 0; i < steps.length; i++) {
                const [fromKey, toKey, f] = steps[i]!
                const o = f(hasOwn.call(a, fromKey) ? Option.some(a[fromKey]) : Option.none())
                if (Option.isSome(o)) b[toKey] = o.value
              }
              return last(b)
            }
          }
        }
        throw new Unsupported()
      }
      case "TypeLiteral": {
        if (ast.propertySignatures.length === 0 && ast.indexSignatures.length === 0) {
          return (u) => (u === null || u === undefined ? Fail : u)
        }
        const names = ast.propertySignatures.map((ps) => ps.name)
        const optional = ast.propertySignatures.map((ps) => ps.isOptional)
        const parsers = ast.propertySignatures.map((ps) => go(ps.type))
        const count = names.length
        const expected = new Set<PropertyKey>(names)
        const indexes = ast.indexSignatures.map((is) => {
          let parameter: AST.AST = is.parameter
          while (AST.isRefinement(parameter)) parameter = parameter.from
          if (parameter._tag !== "StringKeyword") throw new Unsupported()
          return [go(is.parameter), go(is.type)] as const
        })
        const hasOwn = Object.prototype.hasOwnProperty
        return (u) => {
          if (typeof u !== "object" || u === null || Array.isArray(u)) return Fail
          const input = u as Record<PropertyKey, unknown>
          const output: Record<PropertyKey, unknown> = {}
          for (let i = 0; i < count; i++) {
            const name = names[i]!
            if (optional[i] && !hasOwn.call(input, name)) continue
            const v = parsers[i]!(input[name])
            if (v === Fail) return Fail
            output[name] = v
          }
          for (let i = 0; i < indexes.length; i++) {
            const [key, value] = indexes[i]!
            for (const k of Object.keys(input)) {
              if (key(k) === Fail) continue
              const v = value(input[k])
              if (v === Fail) return Fail
              if (!expected.has(k)) output[k] = v
            }
          }
          return output
        }
      }
      case "TupleType": {
        if (ast.elements.length !== 0 || ast.rest.length !== 1) throw new Unsupported()
        const item = go(ast.rest[0]!.type)
        return (u) => {
          if (!Array.isArray(u)) return Fail
          const out = new Array<unknown>(u.length)
          for (let i = 0; i < u.length; i++) {
            const v = item(u[i])
            if (v === Fail) return Fail
            out[i] = v
          }
          return out
        }
      }
      case "Union": {
        if (ast.types.some((m) => hasLiteralKeys(m, isDecoding))) throw new Unsupported()
        const members = ast.types.map(go)
        return (u) => {
          for (const m of members) {
            const v = m(u)
            if (v !== Fail) return v
          }
          return Fail
        }
      }
      default:
        throw new Unsupported()
    }
  }
  return go(root)
}

const withFallback = <A, B>(
  fast: Parser | undefined,
  full: (input: A) => Either.Either<B, ParseResult.ParseIssue>
): ((input: A) => Either.Either<B, ParseResult.ParseIssue>) =>
  fast === undefined
    ? full
    : (input) => {
        const out = fast(input)
        return out === Fail ? full(input) : Either.right(out as B)
      }

const tryCompile = (ast: AST.AST, isDecoding: boolean): Parser | undefined => {
  try {
    return compile(ast, isDecoding)
  } catch (e) {
    if (e instanceof Unsupported) return undefined
    throw e
  }
}

/**
 * `ParseResult.decodeUnknownEither(schema)`, compiled: same results, the full
 * parser only runs to describe a failure.
 */
export const fastDecodeUnknownEither = <A, I>(
  schema: Schema.Schema<A, I, never>
): ((input: unknown) => Either.Either<A, ParseResult.ParseIssue>) =>
  withFallback(tryCompile(schema.ast, true), ParseResult.decodeUnknownEither(schema))

/**
 * `ParseResult.encodeEither(schema)`, compiled likewise.
 */
export const fastEncodeEither = <A, I>(
  schema: Schema.Schema<A, I, never>
): ((input: A) => Either.Either<I, ParseResult.ParseIssue>) =>
  withFallback(tryCompile(schema.ast, false), ParseResult.encodeEither(schema))

/**
 * `ParseResult.encodeUnknownEither(schema)`, compiled likewise.
 */
export const fastEncodeUnknownEither = <A, I>(
  schema: Schema.Schema<A, I, never>
): ((input: unknown) => Either.Either<I, ParseResult.ParseIssue>) =>
  withFallback(tryCompile(schema.ast, false), ParseResult.encodeUnknownEither(schema))

/** Whether the compiled path covers this schema in the given direction (for tests). */
export const isCompiled = (schema: Schema.Schema.AnyNoContext, direction: "decode" | "encode"): boolean =>
  tryCompile(schema.ast, direction === "decode") !== undefined
