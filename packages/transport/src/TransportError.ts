/**
 * The failures of the transport layer: a malformed address, and everything
 * that can go wrong while listening, accepting, connecting, reading or
 * writing. Both are Schema tagged errors, so they can cross process and log
 * boundaries as data.
 */
import { Schema } from "effect"

/**
 * What went wrong, by phase. `AcceptTimeout` / `ConnectTimeout` are deadline
 * expiries; `PeerRefused` is a connect whose peer this side refused (a hybrid
 * VMM that answered `CONNECT <port>` with anything but `OK <n>`, code
 * `EPROTO`) — peers refused by a listener (wrong CID / VM id / uid) are logged
 * and dropped, never surfaced to `accept`; `Closed` is an operation on a
 * connection or listener that this side has already closed.
 */
export const TransportErrorReason = Schema.Literals([
  "Listen",
  "Accept",
  "AcceptTimeout",
  "Connect",
  "ConnectTimeout",
  "Read",
  "Write",
  "Closed",
  "PeerRefused"
])

export type TransportErrorReason = typeof TransportErrorReason.Type

/**
 * A failure of a socket operation. `address` is the formatted address
 * (`hybrid:///run/fc.sock`), `port` the vsock port when one applies, `code` and
 * `syscall` the operating system's error (`ECONNREFUSED`, `connect`) when there
 * was one.
 */
export class TransportError extends Schema.TaggedError<TransportError>(
  "@gcs-bridge/transport/TransportError"
)("TransportError", {
  reason: TransportErrorReason,
  address: Schema.String,
  port: Schema.optional(Schema.Number),
  code: Schema.optional(Schema.String),
  syscall: Schema.optional(Schema.String),
  message: Schema.String
}) {}

/** Text that is not a transport address: `input`, and a `message` on what is wrong and what is accepted. */
export class AddressError extends Schema.TaggedError<AddressError>("@gcs-bridge/transport/AddressError")(
  "AddressError",
  { input: Schema.String, message: Schema.String }
) {}
