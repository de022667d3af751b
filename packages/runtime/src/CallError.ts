/**
 * The error unions of the public operations.
 *
 * @since 0.1.0
 */
import type { ProtocolError } from "@gcs-bridge/protocol"
import type { TransportError } from "@gcs-bridge/transport"
import type { BridgeClosed } from "./BridgeClosed.js"
import type { GuestError } from "./GuestError.js"

/**
 * What any RPC can fail with: the guest's answer was a failure (`GuestError`), the bridge is gone
 * (`BridgeClosed`), or the request could not be encoded / the response not decoded (`ProtocolError`; only
 * that call fails).
 *
 * @since 0.1.0
 */
export type CallError = GuestError | BridgeClosed | ProtocolError.ProtocolError

/**
 * What starting a process can fail with: any `CallError`, or a `TransportError` when a stdio listener cannot
 * be bound.
 *
 * @since 0.1.0
 */
export type ExecError = CallError | TransportError

/**
 * What establishing a `GuestConnection` can fail with: the guest did not connect in time or the listener
 * could not be bound (`TransportError`), it refused protocol version 4 (`ProtocolError`
 * `NegotiationRefused`), it failed the cold-start prelude (`GuestError`), or the bridge died during setup
 * (`BridgeClosed`, reason `Unresponsive` when it did not answer in time).
 *
 * @since 0.1.0
 */
export type ConnectError = TransportError | ProtocolError.ProtocolError | GuestError | BridgeClosed
