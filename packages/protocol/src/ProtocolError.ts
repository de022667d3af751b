/**
 * The single error type of the protocol layer: every malformed, oversize or
 * unexpected input ends up here, never as a thrown exception.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Why a frame or body was rejected.
 *
 * - `Oversize` / `Undersize`: the header's size field is outside `[16, maxFrameSize]`.
 * - `Truncated`: the stream ended inside a frame.
 * - `UnknownType`: the type word is not one this reader accepts.
 * - `InvalidJson` / `InvalidBody`: the payload is not JSON, or fails its Schema.
 * - `UnmatchedId` / `UnknownContainer`: a response or notification nobody waits for (runtime).
 * - `NegotiationRefused`: the guest does not speak protocol version 4 (runtime).
 * - `EncodeFailed`: an outbound body could not be serialised.
 *
 * @since 0.1.0
 */
export const ProtocolErrorReason = Schema.Literal(
  "Oversize",
  "Undersize",
  "Truncated",
  "UnknownType",
  "InvalidJson",
  "InvalidBody",
  "UnmatchedId",
  "UnknownContainer",
  "NegotiationRefused",
  "EncodeFailed"
)

/**
 * @since 0.1.0
 */
export type ProtocolErrorReason = typeof ProtocolErrorReason.Type

/**
 * A protocol violation, with where it happened: `offset` is the stream offset
 * of the frame (or byte) at fault, `messageType` / `id` the header fields when known.
 *
 * @since 0.1.0
 */
export class ProtocolError extends Schema.TaggedError<ProtocolError>()("ProtocolError", {
  reason: ProtocolErrorReason,
  message: Schema.String,
  offset: Schema.optional(Schema.Number),
  messageType: Schema.optional(Schema.Number),
  id: Schema.optional(Schema.Number)
}) {}
