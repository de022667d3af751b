/**
 * A call the guest answered with a failure `Result`, and predicates for the HRESULTs a host has to tell
 * apart.
 *
 * @since 0.1.0
 */
import { Envelope, HResult } from "@gcs-bridge/protocol"
import { Schema } from "effect"

const { HResult: H } = HResult

/**
 * The guest answered a call with a non-zero `Result`. `hresult` is the code as an unsigned 32-bit number
 * (`0xC037010E`, never `-1070137074`), `message` the guest's `ErrorMessage` (or the code's name when the
 * guest sent none), `errorRecords` the guest's `ErrorRecords` as received, `proc` the procedure of the call
 * and `containerId` its target.
 *
 * @since 0.1.0
 */
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

/** `0x80070490` (element not found): no such process (exited and waited for); `signal` / `wait` treat it as gone. @since 0.1.0 */
export const isNotFound = has(H.NotFound, H.ElementNotFound)
/** `0xC037010E` (compute system not found): no such container; `shutdown` / `terminate` treat it as success. @since 0.1.0 */
export const isSystemNotFound = has(H.SystemNotFound)
/** Already stopped (`0xC0370110`, `0x80370110`, `0x8037011F`, as the HCS checks them). @since 0.1.0 */
export const isAlreadyStopped = has(H.SystemAlreadyStopped, H.AlreadyStopped, H.ProcessAlreadyStopped)
/** `0xC037010F`: a container with that id already exists in the guest. @since 0.1.0 */
export const isAlreadyExists = has(H.SystemAlreadyExists)
/** `0xC0370109`: a guest-side timeout elapsed (a `WaitForProcess` with a finite `TimeoutInMs`). @since 0.1.0 */
export const isTimeout = has(H.Timeout)
/** `0x80004001` (E_NOTIMPL): the guest does not handle this request (Linux: `UpdateContainer`, …). @since 0.1.0 */
export const isNotImplemented = has(H.NotImplemented)
/** Wrong state for the request: still being created or still running (`0x80370105`, `0xC0370105`). @since 0.1.0 */
export const isInvalidState = has(H.GuestInvalidState, H.InvalidState)
/** `0xC037010D`: the guest could not parse the request (e.g. a config schema below 2.1). @since 0.1.0 */
export const isInvalidJson = has(H.InvalidJson)
/** `0xC037010C`: the guest does not speak protocol version 4. @since 0.1.0 */
export const isUnsupportedProtocolVersion = has(H.UnsupportedProtocolVersion)
/** `0x80070057`: an argument was invalid (e.g. a malformed container id). @since 0.1.0 */
export const isInvalidArgument = has(H.InvalidArgument)
/** `0x80004005` (E_FAIL): the Linux GCS's failure without an HRESULT of its own (policy, I/O). @since 0.1.0 */
export const isGenericFailure = has(H.Fail)
/** `0x00000005` (access denied). @since 0.1.0 */
export const isAccessDenied = has(H.AccessDenied)
