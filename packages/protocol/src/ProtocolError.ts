/**
 * The single error type of the protocol layer: every malformed, oversize or unexpected input ends up here,
 * never as a thrown exception.
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
 */
export const ProtocolErrorReason = Schema.Literals([
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
])

/** The type of {@link ProtocolErrorReason}. */
export type ProtocolErrorReason = typeof ProtocolErrorReason.Type

/**
 * A protocol violation, with where it happened: `offset` is the stream offset of the frame (or byte) at
 * fault, `messageType` / `id` the header fields when known.
 */
export class ProtocolError extends Schema.TaggedError<ProtocolError>("@gcs-bridge/protocol/ProtocolError")(
  "ProtocolError",
  {
    reason: ProtocolErrorReason,
    message: Schema.String,
    offset: Schema.optional(Schema.Number),
    messageType: Schema.optional(Schema.Number),
    id: Schema.optional(Schema.Number)
  }
) {}
