/**
 * Bodies ⇄ frames, both directions, on the hot path: every Schema decoder and
 * encoder is compiled once at module load, each payload is parsed with one
 * `JSON.parse`, results are `Either`s (no fibers, nothing thrown for bad input).
 *
 * Host side: {@link encodeRequest}, {@link decodeResponse}, {@link decodeResponseBase},
 * {@link decodeNotification}. Guest side: {@link decodeRequest}, {@link encodeResponse},
 * {@link encodeNotification}.
 *
 * @since 0.1.0
 */
import type { Schema } from "effect"
import { Either, ParseResult } from "effect"
import { ContainerNotification } from "./Container.js"
import { fastDecodeUnknownEither, fastEncodeEither } from "./internal/fastParse.js"
import { ResponseBase } from "./Envelope.js"
import type { Frame } from "./Frame.js"
import { HeaderSize, MaxWireSize, writeHeader } from "./Frame.js"
import { GoJsonError, goStringify } from "./GoJson.js"
import type { ProcName } from "./MessageType.js"
import {
  classOf,
  MessageClass,
  NotifyContainer,
  procName,
  procNames,
  procOf,
  requestType,
  responseType,
  typeName
} from "./MessageType.js"
import { ContainerPropertiesV1, PropertiesV2 } from "./Properties.js"
import { ProtocolError } from "./ProtocolError.js"
import type { RpcRequest, RpcResponse } from "./Rpc.js"
import { Rpcs } from "./Rpc.js"

type Decoder<A> = (input: unknown) => Either.Either<A, ParseResult.ParseIssue>
type Encoder<A> = (input: A) => Either.Either<unknown, ParseResult.ParseIssue>

const decoder = <A, I>(schema: Schema.Schema<A, I>): Decoder<A> => fastDecodeUnknownEither(schema)
const encoder = <A, I>(schema: Schema.Schema<A, I>): Encoder<A> => fastEncodeEither(schema)

const compiled = Object.fromEntries(
  procNames.map((name) => {
    const { request, response } = Rpcs[name] as unknown as {
      request: Schema.Schema<unknown, unknown>
      response: Schema.Schema<unknown, unknown>
    }
    return [
      name,
      {
        type: requestType(Rpcs[name].proc),
        responseType: responseType(Rpcs[name].proc),
        responseClass: Rpcs[name].response as unknown as abstract new (...args: never) => unknown,
        decodeRequest: decoder(request),
        encodeRequest: encoder(request),
        decodeResponse: decoder(response),
        encodeResponse: encoder(response)
      }
    ]
  })
) as unknown as {
  readonly [N in ProcName]: {
    readonly type: number
    readonly responseType: number
    readonly responseClass: abstract new (...args: never) => unknown
    readonly decodeRequest: Decoder<RpcRequest<N>>
    readonly encodeRequest: Encoder<RpcRequest<N>>
    readonly decodeResponse: Decoder<RpcResponse<N>>
    readonly encodeResponse: Encoder<RpcResponse<N>>
  }
}

const decodeResponseBaseBody = decoder(ResponseBase)
const encodeResponseBaseBody = encoder(ResponseBase)
const decodeNotificationBody = decoder(ContainerNotification)
const encodeNotificationBody = encoder(ContainerNotification)
const decodePropertiesV1Body = decoder(ContainerPropertiesV1)
const decodePropertiesV2Body = decoder(PropertiesV2)

const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true })
const utf8Encoder = new TextEncoder()

// The tree formatter prints the offending value and recurses without a depth
// bound, so a hostile, deeply nested body (a few KB of brackets) could exhaust
// the stack while merely being described; such a body still gets a typed error.
const describe = (issue: ParseResult.ParseIssue): string => {
  try {
    return ParseResult.TreeFormatter.formatIssueSync(issue)
  } catch {
    // formatIssueSync wraps the RangeError in a FiberFailure; describing must never fail.
    return `${issue._tag} (value nested too deeply to print)`
  }
}

interface Where {
  readonly messageType?: number | undefined
  readonly id?: number | undefined
}

const where = (at: Where | undefined) => ({
  ...(at?.messageType === undefined ? {} : { messageType: at.messageType }),
  ...(at?.id === undefined ? {} : { id: at.id })
})

/**
 * The payload as JSON (UTF-8, one `JSON.parse`); `InvalidJson` when it is not.
 *
 * @since 0.1.0
 */
export const parsePayload = (payload: Uint8Array, at?: Where): Either.Either<unknown, ProtocolError> => {
  try {
    return Either.right(JSON.parse(utf8Decoder.decode(payload)) as unknown)
  } catch (e) {
    return Either.left(invalidJson(e, at))
  }
}

const invalidJson = (e: unknown, at: Where | undefined): ProtocolError =>
  new ProtocolError({
    reason: "InvalidJson",
    message: `payload is not JSON: ${(e as Error).message}`,
    ...where(at)
  })

const decodeWith = <A>(
  decode: Decoder<A>,
  what: string,
  payload: Uint8Array,
  at?: Where
): Either.Either<A, ProtocolError> => {
  let json: unknown
  try {
    json = JSON.parse(utf8Decoder.decode(payload))
  } catch (e) {
    return Either.left(invalidJson(e, at))
  }
  return decodeValue(decode, what, json, at)
}

const decodeValue = <A>(
  decode: Decoder<A>,
  what: string,
  json: unknown,
  at?: Where
): Either.Either<A, ProtocolError> => {
  let result: Either.Either<A, ParseResult.ParseIssue>
  try {
    result = decode(json)
  } catch (e) {
    // Only stack exhaustion on absurdly nested JSON can get here; it is the peer's fault, not a defect.
    if (!(e instanceof RangeError)) throw e
    return Either.left(
      new ProtocolError({ reason: "InvalidBody", message: `${what}: body nested too deeply`, ...where(at) })
    )
  }
  // A Right carries no error, so it can be returned as it is (no re-wrapping on the hot path).
  return Either.isRight(result)
    ? (result as unknown as Either.Either<A, ProtocolError>)
    : Either.left(
        new ProtocolError({
          reason: "InvalidBody",
          message: `${what}: ${describe(result.left)}`,
          ...where(at)
        })
      )
}

let scratch = new Uint8Array(0x10000)

// Header and UTF-8 text in one exact-size buffer.
const frameOf = (type: number, id: number, text: string): Uint8Array => {
  let body: Uint8Array
  let length: number
  if (text.length * 3 <= 0x100000) {
    if (scratch.length < text.length * 3)
      scratch = new Uint8Array(Math.max(text.length * 3, scratch.length * 2))
    length = utf8Encoder.encodeInto(text, scratch).written
    body = scratch
  } else {
    body = utf8Encoder.encode(text)
    length = body.length
  }
  if (length > MaxWireSize - HeaderSize)
    throw new RangeError(`payload of ${length} bytes exceeds the 32-bit size field`)
  const frame = new Uint8Array(HeaderSize + length)
  writeHeader(frame, type, id, length)
  frame.set(length === body.length ? body : body.subarray(0, length), HeaderSize)
  return frame
}

const encodeFailed = (message: string, at: Where): ProtocolError =>
  new ProtocolError({ reason: "EncodeFailed", message, ...where(at) })

const encodeWith = <A>(
  encode: Encoder<A>,
  what: string,
  body: A,
  type: number,
  id: number,
  escapeHtml: boolean,
  newline: boolean
): Either.Either<Uint8Array, ProtocolError> => {
  const at = { messageType: type, id }
  if (!Number.isSafeInteger(id) || id < 0) return Either.left(encodeFailed(`invalid message id ${id}`, at))
  const encoded = encode(body)
  if (Either.isLeft(encoded)) return Either.left(encodeFailed(`${what}: ${describe(encoded.left)}`, at))
  try {
    const text = goStringify(encoded.right, { escapeHtml })
    return Either.right(frameOf(type, id, newline ? text + "\n" : text))
  } catch (e) {
    return Either.left(encodeFailed(`${what}: ${e instanceof GoJsonError ? e.message : String(e)}`, at))
  }
}

const orThrow = <A>(result: Either.Either<A, ProtocolError>): A => {
  if (Either.isLeft(result)) throw result.left
  return result.right
}

// ---------------------------------------------------------------- host side

/**
 * Encodes a request frame exactly as the Go host does: fields in Go order,
 * `omitempty` applied, HTML escaping off in the outer document (on inside
 * JSON-in-string fields), and a trailing `"\n"` counted in the size.
 *
 * @since 0.1.0
 */
export const encodeRequest = <N extends ProcName>(
  name: N,
  id: number,
  body: RpcRequest<N>
): Either.Either<Uint8Array, ProtocolError> => {
  const c = compiled[name]
  return encodeWith(
    c.encodeRequest as Encoder<RpcRequest<N>>,
    `${name} request`,
    body,
    c.type,
    id,
    false,
    true
  )
}

/**
 * Decodes the payload of a response to `name`.
 *
 * @since 0.1.0
 */
export const decodeResponse = <N extends ProcName>(
  name: N,
  payload: Uint8Array,
  at?: Where
): Either.Either<RpcResponse<N>, ProtocolError> =>
  decodeWith(compiled[name].decodeResponse as Decoder<RpcResponse<N>>, `${name} response`, payload, at)

/**
 * Decodes an already parsed response payload (see {@link parsePayload}).
 *
 * @since 0.1.0
 */
export const decodeResponseJson = <N extends ProcName>(
  name: N,
  json: unknown,
  at?: Where
): Either.Either<RpcResponse<N>, ProtocolError> =>
  decodeValue(compiled[name].decodeResponse as Decoder<RpcResponse<N>>, `${name} response`, json, at)

/**
 * Decodes only the response base of a payload (for a response whose proc is
 * unknown, e.g. the sidecar's bare `0x20000000` replies).
 *
 * @since 0.1.0
 */
export const decodeResponseBase = (
  payload: Uint8Array,
  at?: Where
): Either.Either<ResponseBase, ProtocolError> => decodeWith(decodeResponseBaseBody, "response", payload, at)

/**
 * Decodes a container notification payload.
 *
 * @since 0.1.0
 */
export const decodeNotification = (
  payload: Uint8Array,
  at?: Where
): Either.Either<ContainerNotification, ProtocolError> =>
  decodeWith(decodeNotificationBody, "container notification", payload, at)

/**
 * Reads a GetProperties `Properties` document as the schema-1 shape (`Container.Properties`).
 *
 * @since 0.1.0
 */
export const decodePropertiesV1 = (
  properties: unknown
): Either.Either<ContainerPropertiesV1, ProtocolError> =>
  decodeValue(decodePropertiesV1Body, "schema-1 properties", properties ?? {})

/**
 * Reads a GetProperties `Properties` document as the schema-2 shape (`Container.PropertiesV2`).
 *
 * @since 0.1.0
 */
export const decodePropertiesV2 = (properties: unknown): Either.Either<PropertiesV2, ProtocolError> =>
  decodeValue(decodePropertiesV2Body, "schema-2 properties", properties ?? {})

// --------------------------------------------------------------- guest side

/**
 * A decoded request: the procedure name and its typed body.
 *
 * @since 0.1.0
 */
export type DecodedRequest = {
  readonly [N in ProcName]: { readonly name: N; readonly body: RpcRequest<N> }
}[ProcName]

/**
 * Decodes a request frame by its type word. A type that is not a request, or
 * a request for a procedure outside §3.2, fails with `UnknownType` (a guest
 * answers those with E_NOTIMPL, see {@link encodeResponseTo}).
 *
 * @since 0.1.0
 */
export const decodeRequest = (frame: Frame): Either.Either<DecodedRequest, ProtocolError> => {
  const at = { messageType: frame.type, id: frame.id }
  const name = classOf(frame.type) === MessageClass.Request ? procName(procOf(frame.type)) : undefined
  if (name === undefined) {
    return Either.left(
      new ProtocolError({
        reason: "UnknownType",
        message: `not a known request: ${typeName(frame.type)}`,
        ...at
      })
    )
  }
  const body = decodeWith(
    compiled[name].decodeRequest as Decoder<unknown>,
    `${name} request`,
    frame.payload,
    at
  )
  return Either.map(body, (b) => ({ name, body: b }) as DecodedRequest)
}

/**
 * Encodes a response frame as the Linux GCS does (`json.Marshal`: HTML-escaped,
 * no trailing newline). `body` is the procedure's response, or a bare
 * {@link ResponseBase} for an error reply; a failed `Result` writes only the
 * base fields whatever the body, as the Linux GCS does. An invalid body is a bug of the
 * caller: it throws the `EncodeFailed` {@link ProtocolError}.
 *
 * @since 0.1.0
 */
export const encodeResponse = <N extends ProcName>(
  name: N,
  id: number,
  body: RpcResponse<N> | ResponseBase
): Uint8Array => {
  const c = compiled[name]
  // Like the Linux GCS, a failure carries only the base: no zero-valued proc fields.
  const full =
    (body instanceof c.responseClass || !(body instanceof ResponseBase)) &&
    ((body as { readonly Result?: number }).Result ?? 0) === 0
  return full
    ? orThrow(
        encodeWith(
          c.encodeResponse as Encoder<unknown>,
          `${name} response`,
          body,
          c.responseType,
          id,
          true,
          false
        )
      )
    : orThrow(encodeWith(encodeResponseBaseBody, `${name} response`, body, c.responseType, id, true, false))
}

/**
 * Encodes a bare response to a request of any type word, including ones this
 * package does not know (type `0x20000000 | (requestType & 0x0FFFFFFF)`, §3.5).
 * Throws like {@link encodeResponse}.
 *
 * @since 0.1.0
 */
export const encodeResponseTo = (requestTypeWord: number, id: number, body: ResponseBase): Uint8Array =>
  orThrow(
    encodeWith(encodeResponseBaseBody, "response", body, responseType(requestTypeWord), id, true, false)
  )

/**
 * Encodes a container notification frame (`0x30100101`, id 0) as the Linux GCS does.
 * Throws like {@link encodeResponse}.
 *
 * @since 0.1.0
 */
export const encodeNotification = (body: ContainerNotification): Uint8Array =>
  orThrow(encodeWith(encodeNotificationBody, "container notification", body, NotifyContainer, 0, true, false))
