/** Transport failures (a malformed address; listen, accept, connect, read or write), as Schema tagged errors. */
import { Schema } from "effect"

/**
 * What went wrong, by phase. `AcceptTimeout` / `ConnectTimeout`: deadline expiries; `PeerRefused`: a hybrid VMM
 * answered `CONNECT <port>` with anything but `OK <n>` (`EPROTO`) — peers a listener refuses are logged and
 * dropped, never surfaced to `accept`; `Closed`: an operation on a connection or listener already closed here.
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

/** A failed socket operation: formatted `address`, vsock `port` if any, the OS error's `code` / `syscall` if any. */
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
