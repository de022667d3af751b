/**
 * The error of every call on a bridge that is no longer running.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "@gcs-bridge/protocol"
import { TransportError } from "@gcs-bridge/transport"
import { Schema } from "effect"

/**
 * Why a bridge stopped:
 *
 * - `Closed` — the host closed it (its scope closed); no cause.
 * - `EndOfStream` — the guest closed the connection.
 * - `Transport` — reading or writing the connection failed (`cause` is the `TransportError`).
 * - `Protocol` — the guest broke the wire protocol: an oversize, undersize or truncated frame, a message type
 *   no guest sends, or (with `strict: true`) an unknown id, unknown container or undecodable body (`cause` is
 *   the `ProtocolError`).
 * - `Unresponsive` — the optional health policy gave up on a guest that stopped answering.
 * - `Defect` — the bridge's own code failed (a bug; the cause is logged). Every waiter is still released.
 *
 * @since 0.1.0
 */
export const BridgeClosedReason = Schema.Literals([
  "Closed",
  "EndOfStream",
  "Transport",
  "Protocol",
  "Unresponsive",
  "Defect"
])

/** @since 0.1.0 */
export type BridgeClosedReason = typeof BridgeClosedReason.Type

/**
 * The bridge to the guest is gone. Every call that was waiting when it died, and every call made afterwards,
 * fails with the same value, which carries the reason and, where there is one, the error that killed it.
 *
 * @since 0.1.0
 */
export class BridgeClosed extends Schema.TaggedError<BridgeClosed>("@gcs-bridge/runtime/BridgeClosed")(
  "BridgeClosed",
  {
    reason: BridgeClosedReason,
    cause: Schema.optional(Schema.Union([TransportError, ProtocolError.ProtocolError])),
    message: Schema.String
  }
) {}

/** @since 0.1.0 */
export const isBridgeClosed = (u: unknown): u is BridgeClosed => u instanceof BridgeClosed
