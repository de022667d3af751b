/**
 * Bodies ⇄ frames on the hot path: codecs compiled once at module load, one `JSON.parse` per payload,
 * `Result`s (no fibers, nothing thrown for bad input). Host side: {@link encodeRequest}, {@link
 * decodeResponse}, {@link decodeNotification}; guest side: {@link decodeRequest}, {@link encodeResponse}.
 */
import { Result } from "effect"
import { ContainerNotification } from "./Container.js"
import { RequestBase, ResponseBase } from "./Envelope.js"
import type { Frame } from "./Frame.js"
import { encodeTextFrame } from "./Frame.js"
import { GoJsonError, goStringify, goStringifyPlain, markCount } from "./GoJson.js"
import { decoder, encoder } from "./internal/compile.js"
import type { ProcName } from "./MessageType.js"
import {
  classOf,
  MessageClass,
  NotifyContainer,
  Proc,
  procName,
  procNames,
  procOf,
  requestType,
  responseType,
  typeName
} from "./MessageType.js"
import { ProcessParameters } from "./Process.js"
import { ContainerPropertiesV1, PropertiesV2 } from "./Properties.js"
import { ProtocolError } from "./ProtocolError.js"
import type { RpcRequest, RpcResponse } from "./Rpc.js"
import { Rpcs } from "./Rpc.js"

type Decoder<A> = (input: unknown) => Result.Result<A, string>
type Encoder = (input: unknown) => Result.Result<unknown, string>

const compiled = Object.fromEntries(
  procNames.map((name) => {
    const { request, response } = Rpcs[name]
    const codecs = { decodeRequest: decoder(request), encodeRequest: encoder(request) }
    return [name, { ...codecs, decodeResponse: decoder(response), encodeResponse: encoder(response) }]
  })
) as unknown as {
  readonly [N in ProcName]: {
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

type Where = { readonly messageType?: number | undefined; readonly id?: number | undefined }

const where = (at?: Where) => ({
  ...(at?.messageType === undefined ? {} : { messageType: at.messageType }),
  ...(at?.id === undefined ? {} : { id: at.id })
})

/** The payload as JSON (UTF-8, one `JSON.parse`); `InvalidJson` when it is not. */
export const parsePayload = (payload: Uint8Array, at?: Where): Result.Result<unknown, ProtocolError> => {
  try {
    return Result.succeed(JSON.parse(utf8Decoder.decode(payload)) as unknown)
  } catch (e) {
    const message = `payload is not JSON: ${(e as Error).message}`
    return Result.fail(new ProtocolError({ reason: "InvalidJson", message, ...where(at) }))
  }
}

const decodeValue = <A>(decode: Decoder<A>, what: string, json: unknown, at?: Where) =>
  Result.mapError(
    decode(json),
    (message) => new ProtocolError({ reason: "InvalidBody", message: `${what}: ${message}`, ...where(at) })
  )

const decodeWith = <A>(decode: Decoder<A>, what: string, payload: Uint8Array, at?: Where) =>
  Result.flatMap(parsePayload(payload, at), (json) => decodeValue(decode, what, json, at))

// The host writes like Go's `json.Encoder` (HTML escaping off, trailing newline), the guest like
// `json.Marshal`; the guest's encoders throw, since an invalid body there is a bug of the caller.
const encodeWith = (
  encode: Encoder,
  what: string,
  body: unknown,
  type: number,
  id: number,
  host: boolean
): Result.Result<Uint8Array, ProtocolError> => {
  const failed = (message: string) =>
    Result.fail(new ProtocolError({ reason: "EncodeFailed", message, messageType: type, id }))
  if (!Number.isSafeInteger(id) || id < 0) return failed(`invalid message id ${id}`)
  const marks = markCount()
  const encoded = encode(body)
  if (Result.isFailure(encoded)) return failed(`${what}: ${encoded.failure}`)
  try {
    // No map marked while encoding: nothing to sort, so native stringify can write it.
    const stringify = marks === markCount() ? goStringifyPlain : goStringify
    const text = stringify(encoded.success, { escapeHtml: !host })
    return Result.succeed(encodeTextFrame(type, id, text, host))
  } catch (e) {
    return failed(`${what}: ${e instanceof GoJsonError ? e.message : String(e)}`)
  }
}

const encodeGuest = (encode: Encoder, what: string, body: unknown, type: number, id: number): Uint8Array => {
  const result = encodeWith(encode, what, body, type, id, false)
  if (Result.isFailure(result)) throw result.failure
  return result.success
}

// ---------------------------------------------------------------- host side

/**
 * Encodes a request frame exactly as the Go host does: fields in Go order, `omitempty` applied, HTML escaping
 * off in the outer document (on inside JSON-in-string fields), a trailing `"\n"` in the size.
 */
export const encodeRequest = <N extends ProcName>(
  name: N,
  id: number,
  body: RpcRequest<N>
): Result.Result<Uint8Array, ProtocolError> => {
  const type = requestType(Proc[name])
  return encodeWith(compiled[name].encodeRequest, `${name} request`, asRequest(name, body), type, id, true)
}

// A bare `RequestBase` stands for a request whose own fields are all optional (UpdateContainer).
const asRequest = (name: ProcName, body: unknown): unknown => {
  const cls = Rpcs[name].request as unknown as new (props: unknown) => unknown
  if (body instanceof cls || !(body instanceof RequestBase)) return body
  try {
    return new cls(body)
  } catch {
    return body
  }
}

/**
 * An instance of the wire class `cls` with `fields`, built without Effect's constructor parse: for a body that
 * goes straight to {@link encodeRequest}, which checks every field (an invalid one fails there, `EncodeFailed`).
 * Fields left out encode as Go's zero value. Parsing a body once more when it is built costs more than the call.
 */
export const unchecked = <C extends abstract new (fields: never) => object>(
  cls: C,
  fields: ConstructorParameters<C>[0]
): InstanceType<C> => Object.assign(Object.create(cls.prototype as object) as InstanceType<C>, fields)

const decodeProcessParametersBody = decoder(ProcessParameters)

/** Reads a `ProcessParameters` document given as plain JSON, as Go's decoder reads it. */
export const decodeProcessParameters = (input: unknown): Result.Result<ProcessParameters, ProtocolError> =>
  decodeValue(decodeProcessParametersBody, "process parameters", input)

/** Decodes the payload of a response to `name`. */
export const decodeResponse = <N extends ProcName>(
  name: N,
  payload: Uint8Array,
  at?: Where
): Result.Result<RpcResponse<N>, ProtocolError> =>
  decodeWith(compiled[name].decodeResponse as Decoder<RpcResponse<N>>, `${name} response`, payload, at)

/** Decodes only the response base of a payload (a reply to an unknown proc, e.g. the sidecar's). */
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
 * Decodes a request frame by its type word; not a request, or a procedure outside §3.2, fails with
 * `UnknownType` (a guest answers those with E_NOTIMPL, see {@link encodeResponseTo}).
 */
export const decodeRequest = (frame: Frame): Result.Result<DecodedRequest, ProtocolError> => {
  const at = { messageType: frame.type, id: frame.id }
  const name = classOf(frame.type) === MessageClass.Request ? procName(procOf(frame.type)) : undefined
  if (name === undefined) {
    const message = `not a known request: ${typeName(frame.type)}`
    return Result.fail(new ProtocolError({ reason: "UnknownType", message, ...at }))
  }
  const body = decodeWith(compiled[name].decodeRequest, `${name} request`, frame.payload, at)
  return Result.map(body, (b) => ({ name, body: b }) as DecodedRequest)
}

/**
 * Encodes a response frame as the Linux GCS does (`json.Marshal`: HTML-escaped, no trailing newline). `body`
 * is the procedure's response, or a bare {@link ResponseBase} for an error reply; a failed `Result` writes
 * only the base fields whatever the body. An invalid body throws the `EncodeFailed` {@link ProtocolError}.
 */
export const encodeResponse = <N extends ProcName>(
  name: N,
  id: number,
  body: RpcResponse<N> | ResponseBase
): Uint8Array => {
  const full =
    (body instanceof Rpcs[name].response || !(body instanceof ResponseBase)) &&
    ((body as { readonly Result?: number }).Result ?? 0) === 0
  const encode = full ? compiled[name].encodeResponse : encodeResponseBaseBody
  return encodeGuest(encode, `${name} response`, body, responseType(Proc[name]), id)
}

/**
 * Encodes a bare response to a request of any type word, even unknown ones (type `0x20000000 | (requestType &
 * 0x0FFFFFFF)`, §3.5). Throws like {@link encodeResponse}.
 */
export const encodeResponseTo = (requestTypeWord: number, id: number, body: ResponseBase): Uint8Array =>
  encodeGuest(encodeResponseBaseBody, "response", body, responseType(requestTypeWord), id)

/** Encodes a container notification frame (`0x30100101`, id 0) as the Linux GCS does; throws likewise. */
export const encodeNotification = (body: ContainerNotification): Uint8Array =>
  encodeGuest(encodeNotificationBody, "container notification", body, NotifyContainer, 0)
