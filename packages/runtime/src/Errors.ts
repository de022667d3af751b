/** The runtime's errors, the `GuestError` HRESULT predicates, and the error unions. @since 0.1.0 */
import { Envelope, Guid, HResult, ProtocolError } from "@gcs-bridge/protocol"
import { TransportError } from "@gcs-bridge/transport"
import { Schema } from "effect"

const { HResult: H } = HResult
const reasons = ["Closed", "EndOfStream", "Transport", "Protocol", "Unresponsive", "Defect"] as const

/** Why a bridge stopped (the README says when each applies). @since 0.1.0 */
export const BridgeClosedReason = Schema.Literals(reasons)

/** @since 0.1.0 */
export type BridgeClosedReason = typeof BridgeClosedReason.Type

/** The bridge is gone: every call pending when it died, and every later call, fails with this one value. @since 0.1.0 */
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

/**
 * The bridge connection broke while this call was in flight and was re-established (the `reconnect` policy):
 * the guest may or may not have carried the call out. Waits for processes are re-issued instead.
 * @since 0.2.0
 */
export class BridgeReconnected extends Schema.TaggedError<BridgeReconnected>(
  "@gcs-bridge/runtime/BridgeReconnected"
)("BridgeReconnected", { proc: Schema.String, id: Schema.Number, message: Schema.String }) {}

/** The guest answered a call with a non-zero `Result` (`hresult` unsigned: `0xC037010E`, not negative). @since 0.1.0 */
export class GuestError extends Schema.TaggedError<GuestError>("@gcs-bridge/runtime/GuestError")(
  "GuestError",
  {
    hresult: Schema.Number,
    proc: Schema.String,
    containerId: Schema.String,
    message: Schema.String,
    errorRecords: Schema.Array(Envelope.ErrorRecord)
  }
) {
  /** The catalogue name of `hresult` (e.g. `"SystemNotFound"`), when it has one. */
  get hresultName(): string | undefined {
    return HResult.hresultName(this.hresult)
  }
}

const has =
  (...codes: ReadonlyArray<number>) =>
  (u: unknown): u is GuestError =>
    u instanceof GuestError && codes.includes(u.hresult)

/** `0x80070490` (element not found): no such process; `signal` / `wait` treat it as gone. @since 0.1.0 */
export const isNotFound = has(H.NotFound, H.ElementNotFound)
/** `0xC037010E`: no such container; `shutdown` / `terminate` treat it as success. @since 0.1.0 */
export const isSystemNotFound = has(H.SystemNotFound)
/** `0xC037010E` to `kill` / `signal` of a UVM process: the Linux GCS refuses, so it outlives its scope. @since 0.1.0 */
export const isSignalRefused = (u: unknown): u is GuestError =>
  isSystemNotFound(u) && u.proc === "SignalProcess" && u.containerId === Guid.NullGuid
/** Already stopped (`0xC0370110`, `0x80370110`, `0x8037011F`, as the HCS checks them). @since 0.1.0 */
export const isAlreadyStopped = has(H.SystemAlreadyStopped, H.AlreadyStopped, H.ProcessAlreadyStopped)
/** `0xC037010F`: a container with that id already exists in the guest. @since 0.1.0 */
export const isAlreadyExists = has(H.SystemAlreadyExists)
/** `0xC0370109`: a guest-side timeout elapsed (a `WaitForProcess` with a finite `TimeoutInMs`). @since 0.1.0 */
export const isTimeout = has(H.Timeout)
/** `0x80004001` (E_NOTIMPL): the guest does not handle this request. @since 0.1.0 */
export const isNotImplemented = has(H.NotImplemented)
/** Wrong state: still being created or still running (`0x80370105`, `0xC0370105`). @since 0.1.0 */
export const isInvalidState = has(H.GuestInvalidState, H.InvalidState)
/** `0xC037010D`: the guest could not parse the request. @since 0.1.0 */
export const isInvalidJson = has(H.InvalidJson)
/** `0xC037010C`: the guest does not speak protocol version 4. @since 0.1.0 */
export const isUnsupportedProtocolVersion = has(H.UnsupportedProtocolVersion)
/** `0x80070057`: an argument was invalid (e.g. a malformed container id). @since 0.1.0 */
export const isInvalidArgument = has(H.InvalidArgument)
/** `0x80004005` (E_FAIL): the Linux GCS's failure without an HRESULT of its own. @since 0.1.0 */
export const isGenericFailure = has(H.Fail)
/** `0x00000005` (access denied). @since 0.1.0 */
export const isAccessDenied = has(H.AccessDenied)

/** What any RPC can fail with (a `ProtocolError` fails only that call). @since 0.1.0 */
export type CallError = GuestError | BridgeClosed | BridgeReconnected | ProtocolError.ProtocolError

/** What starting a process can fail with: a `TransportError` when a stdio listener cannot be bound. @since 0.1.0 */
export type ExecError = CallError | TransportError

/** What establishing a `GuestConnection` can fail with (see the README). @since 0.1.0 */
export type ConnectError =
  TransportError | ProtocolError.ProtocolError | GuestError | BridgeClosed | BridgeReconnected
