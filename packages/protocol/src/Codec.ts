/**
 * Bodies ⇄ frames, both directions, on the hot path: every Schema decoder and
 * encoder is compiled once at module load, each payload is parsed with one
 * `JSON.parse`, results are `Result`s (no fibers, nothing thrown for bad input).
 *
 * Host side: {@link encodeRequest}, {@link decodeResponse}, {@link decodeResponseBase},
 * {@link decodeNotification}. Guest side: {@link decodeRequest}, {@link encodeResponse},
 * {@link encodeNotification}.
 */
import { Result } from "effect"
import { ContainerNotification } from "./Container.js"
import { RequestBase, ResponseBase } from "./Envelope.js"
import type { Frame } from "./Frame.js"
import { encodeFrame } from "./Frame.js"
import { GoJsonError, goStringify } from "./GoJson.js"
import { decoder, encoder } from "./internal/compile.js"
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

type Decoder<A> = (input: unknown) => Result.Result<A, string>
type Encoder = (input: unknown) => Result.Result<unknown, string>

const compiled = Object.fromEntries(
  procNames.map((name) => {
    const { proc, request, response } = Rpcs[name]
    return [
      name,
      {
        type: requestType(proc),
        responseType: responseType(proc),
        requestClass: request as unknown,
        responseClass: response as unknown,
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
    readonly requestClass: new (props: unknown) => unknown
    readonly responseClass: abstract new (...args: never) => unknown
    readonly decodeRequest: Decoder<RpcRequest<N>>
    readonly encodeRequest: Encoder
    readonly decodeResponse: Decoder<RpcResponse<N>>
    readonly encodeResponse: Encoder
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

interface Where {
  readonly messageType?: number | undefined
  readonly id?: number | undefined
}

const where = (at: Where | undefined) => ({
  ...(at?.messageType === undefined ? {} : { messageType: at.messageType }),
  ...(at?.id === undefined ? {} : { id: at.id })
})

/** The payload as JSON (UTF-8, one `JSON.parse`); `InvalidJson` when it is not. */
export const parsePayload = (payload: Uint8Array, at?: Where): Result.Result<unknown, ProtocolError> => {
  try {
    return Result.succeed(JSON.parse(utf8Decoder.decode(payload)) as unknown)
  } catch (e) {
    return Result.fail(invalidJson(e, at))
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
): Result.Result<A, ProtocolError> =>
  Result.flatMap(parsePayload(payload, at), (json) => decodeValue(decode, what, json, at))

const decodeValue = <A>(
  decode: Decoder<A>,
  what: string,
  json: unknown,
  at?: Where
): Result.Result<A, ProtocolError> =>
  Result.mapError(
    decode(json),
    (message) => new ProtocolError({ reason: "InvalidBody", message: `${what}: ${message}`, ...where(at) })
  )

const encodeFailed = (message: string, at: Where): ProtocolError =>
  new ProtocolError({ reason: "EncodeFailed", message, ...where(at) })

const encodeWith = (
  encode: Encoder,
  what: string,
  body: unknown,
  type: number,
  id: number,
  escapeHtml: boolean,
  newline: boolean
): Result.Result<Uint8Array, ProtocolError> => {
  const at = { messageType: type, id }
  if (!Number.isSafeInteger(id) || id < 0) return Result.fail(encodeFailed(`invalid message id ${id}`, at))
  const encoded = encode(body)
  if (Result.isFailure(encoded)) return Result.fail(encodeFailed(`${what}: ${encoded.failure}`, at))
  try {
    const text = goStringify(encoded.success, { escapeHtml })
    return Result.succeed(encodeFrame(type, id, utf8Encoder.encode(newline ? text + "\n" : text)))
  } catch (e) {
    return Result.fail(encodeFailed(`${what}: ${e instanceof GoJsonError ? e.message : String(e)}`, at))
  }
}

const orThrow = <A>(result: Result.Result<A, ProtocolError>): A => {
  if (Result.isFailure(result)) throw result.failure
  return result.success
}

// ---------------------------------------------------------------- host side

/**
 * Encodes a request frame exactly as the Go host does: fields in Go order,
 * `omitempty` applied, HTML escaping off in the outer document (on inside
 * JSON-in-string fields), and a trailing `"\n"` counted in the size.
 */
export const encodeRequest = <N extends ProcName>(
  name: N,
  id: number,
  body: RpcRequest<N>
): Result.Result<Uint8Array, ProtocolError> => {
  const c = compiled[name]
  return encodeWith(
    c.encodeRequest,
    `${name} request`,
    asRequest(c.requestClass, body),
    c.type,
    id,
    false,
    true
  )
}

// A bare `RequestBase` stands for a request whose own fields are all optional (UpdateContainer).
const asRequest = (cls: new (props: unknown) => unknown, body: unknown): unknown => {
  if (body instanceof cls || !(body instanceof RequestBase)) return body
  try {
    return new cls(body)
  } catch {
    return body
  }
}

/** Decodes the payload of a response to `name`. */
export const decodeResponse = <N extends ProcName>(
  name: N,
  payload: Uint8Array,
  at?: Where
): Result.Result<RpcResponse<N>, ProtocolError> =>
  decodeWith(compiled[name].decodeResponse as Decoder<RpcResponse<N>>, `${name} response`, payload, at)

/**
 * Decodes only the response base of a payload (for a response whose proc is
 * unknown, e.g. the sidecar's bare `0x20000000` replies).
 */
export const decodeResponseBase = (
  payload: Uint8Array,
  at?: Where
): Result.Result<ResponseBase, ProtocolError> => decodeWith(decodeResponseBaseBody, "response", payload, at)

/** Decodes a container notification payload. */
export const decodeNotification = (
  payload: Uint8Array,
  at?: Where
): Result.Result<ContainerNotification, ProtocolError> =>
  decodeWith(decodeNotificationBody, "container notification", payload, at)

/** Reads a GetProperties `Properties` document as the schema-1 shape (`Container.Properties`). */
export const decodePropertiesV1 = (
  properties: unknown
): Result.Result<ContainerPropertiesV1, ProtocolError> =>
  decodeValue(decodePropertiesV1Body, "schema-1 properties", properties ?? {})

/** Reads a GetProperties `Properties` document as the schema-2 shape (`Container.PropertiesV2`). */
export const decodePropertiesV2 = (properties: unknown): Result.Result<PropertiesV2, ProtocolError> =>
  decodeValue(decodePropertiesV2Body, "schema-2 properties", properties ?? {})

// --------------------------------------------------------------- guest side

/** A decoded request: the procedure name and its typed body. */
export type DecodedRequest = {
  readonly [N in ProcName]: { readonly name: N; readonly body: RpcRequest<N> }
}[ProcName]

/**
 * Decodes a request frame by its type word. A type that is not a request, or
 * a request for a procedure outside §3.2, fails with `UnknownType` (a guest
 * answers those with E_NOTIMPL, see {@link encodeResponseTo}).
 */
export const decodeRequest = (frame: Frame): Result.Result<DecodedRequest, ProtocolError> => {
  const at = { messageType: frame.type, id: frame.id }
  const name = classOf(frame.type) === MessageClass.Request ? procName(procOf(frame.type)) : undefined
  if (name === undefined) {
    return Result.fail(
      new ProtocolError({
        reason: "UnknownType",
        message: `not a known request: ${typeName(frame.type)}`,
        ...at
      })
    )
  }
  const body = decodeWith(compiled[name].decodeRequest, `${name} request`, frame.payload, at)
  return Result.map(body, (b) => ({ name, body: b }) as DecodedRequest)
}

/**
 * Encodes a response frame as the Linux GCS does (`json.Marshal`: HTML-escaped,
 * no trailing newline). `body` is the procedure's response, or a bare
 * {@link ResponseBase} for an error reply; a failed `Result` writes only the
 * base fields whatever the body, as the Linux GCS does. An invalid body is a bug of the
 * caller: it throws the `EncodeFailed` {@link ProtocolError}.
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
    ? orThrow(encodeWith(c.encodeResponse, `${name} response`, body, c.responseType, id, true, false))
    : orThrow(encodeWith(encodeResponseBaseBody, `${name} response`, body, c.responseType, id, true, false))
}

/**
 * Encodes a bare response to a request of any type word, including ones this
 * package does not know (type `0x20000000 | (requestType & 0x0FFFFFFF)`, §3.5).
 * Throws like {@link encodeResponse}.
 */
export const encodeResponseTo = (requestTypeWord: number, id: number, body: ResponseBase): Uint8Array =>
  orThrow(
    encodeWith(encodeResponseBaseBody, "response", body, responseType(requestTypeWord), id, true, false)
  )

/**
 * Encodes a container notification frame (`0x30100101`, id 0) as the Linux GCS does.
 * Throws like {@link encodeResponse}.
 */
export const encodeNotification = (body: ContainerNotification): Uint8Array =>
  orThrow(encodeWith(encodeNotificationBody, "container notification", body, NotifyContainer, 0, true, false))
