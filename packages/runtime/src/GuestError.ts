/**
 * A call the guest answered with a failure `Result`, and predicates for the
 * HRESULTs a host has to tell apart.
 *
 * @since 0.1.0
 */
import { ErrorRecord, HResult, hresultName } from "@gcs-bridge/protocol"
import { Schema } from "effect"

/**
 * The guest answered a call with a non-zero `Result`. `hresult` is the code as
 * an unsigned 32-bit number (`0xC037010E`, never `-1070137074`), `message` the
 * guest's `ErrorMessage` (or the code's name when the guest sent none),
 * `errorRecords` the guest's `ErrorRecords` as received, `proc` the procedure
 * of the call and `containerId` its target.
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
    errorRecords: Schema.Array(ErrorRecord)
  }
) {
  /** The catalogue name of `hresult` (e.g. `"SystemNotFound"`), when it has one. */
  get hresultName(): string | undefined {
    return hresultName(this.hresult)
  }
}

const has =
  (...codes: ReadonlyArray<number>) =>
  (u: unknown): u is GuestError =>
    u instanceof GuestError && codes.includes(u.hresult)

/**
 * `0x80070490` (element not found): the guest has no such process — it exited
 * and was already waited for, or never existed. `Process.signal` and
 * `Process.wait` treat it as "already gone".
 *
 * @since 0.1.0
 */
export const isNotFound = has(HResult.NotFound, HResult.ElementNotFound)

/**
 * `0xC037010E` (compute system not found): the guest has no such container.
 * `Container.shutdown` and `Container.terminate` treat it as success.
 *
 * @since 0.1.0
 */
export const isSystemNotFound = has(HResult.SystemNotFound)

/**
 * The container or process had already stopped (`0xC0370110`, `0x80370110`,
 * `0x8037011F`, as the HCS checks them).
 *
 * @since 0.1.0
 */
export const isAlreadyStopped = has(
  HResult.SystemAlreadyStopped,
  HResult.AlreadyStopped,
  HResult.ProcessAlreadyStopped
)

/**
 * `0xC037010F`: a container with that id already exists in the guest.
 *
 * @since 0.1.0
 */
export const isAlreadyExists = has(HResult.SystemAlreadyExists)

/**
 * `0xC0370109`: a guest-side timeout elapsed (a `WaitForProcess` with a finite
 * `TimeoutInMs`).
 *
 * @since 0.1.0
 */
export const isTimeout = has(HResult.Timeout)

/**
 * `0x80004001` (E_NOTIMPL): the guest does not handle this request type (the
 * Linux GCS answers `UpdateContainer`, `LifecycleNotification` and
 * `ModifyServiceSettings` so).
 *
 * @since 0.1.0
 */
export const isNotImplemented = has(HResult.NotImplemented)

/**
 * The target is in the wrong state for the request — still being created, or
 * still running (`0x80370105` from the Linux GCS, `0xC0370105` from the HCS).
 *
 * @since 0.1.0
 */
export const isInvalidState = has(HResult.GuestInvalidState, HResult.InvalidState)

/**
 * `0xC037010D`: the guest could not parse the request (or a document inside
 * it), e.g. a container configuration with a schema version below 2.1.
 *
 * @since 0.1.0
 */
export const isInvalidJson = has(HResult.InvalidJson)

/**
 * `0xC037010C`: the guest does not speak protocol version 4.
 *
 * @since 0.1.0
 */
export const isUnsupportedProtocolVersion = has(HResult.UnsupportedProtocolVersion)

/**
 * `0x80070057`: an argument was invalid (e.g. a malformed container id).
 *
 * @since 0.1.0
 */
export const isInvalidArgument = has(HResult.InvalidArgument)

/**
 * `0x80004005` (E_FAIL): the generic failure the Linux GCS reports for errors
 * that carry no HRESULT of their own (policy denials, I/O errors).
 *
 * @since 0.1.0
 */
export const isGenericFailure = has(HResult.Fail)

/**
 * `0x00000005` (access denied).
 *
 * @since 0.1.0
 */
export const isAccessDenied = has(HResult.AccessDenied)
