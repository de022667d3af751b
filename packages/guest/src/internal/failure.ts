/**
 * How a handler fails: an HRESULT and the error text, built the way the Linux
 * GCS builds them (`gcserr`), so that responses read like the genuine ones:
 *
 * - a bare HRESULT error reads `HRESULT: 0xc037010e`;
 * - an HRESULT wrapping a cause reads `HRESULT 0xc037010d: <cause>`;
 * - an error without HRESULT is E_FAIL with its text as is;
 * - context added on the way out is prefixed: `<context>: <inner text>`,
 *   keeping the inner HRESULT (Go's `errors.Wrap` + first-HRESULT-in-chain).
 */
import { HResult } from "@gcs-bridge/protocol"
import { Data } from "effect"

/** A request that failed: what goes into `Result` and `ErrorMessage`. */
export class GuestFailure extends Data.TaggedError("GuestFailure")<{
  /** Unsigned 32-bit HRESULT. */
  readonly hresult: number
  readonly message: string
}> {}

/** The well-known HRESULTs, shortened for the handlers. */
export const Hr = HResult.HResult

const hex = (hr: number): string => "0x" + (hr >>> 0).toString(16)

/** `HRESULT: 0x…` — an HRESULT and nothing else. */
export const bare = (hresult: number): GuestFailure =>
  new GuestFailure({ hresult: hresult >>> 0, message: `HRESULT: ${hex(hresult)}` })

/** `HRESULT 0x…: cause` — an HRESULT explaining a cause. */
export const wrap = (hresult: number, cause: string): GuestFailure =>
  new GuestFailure({ hresult: hresult >>> 0, message: `HRESULT ${hex(hresult)}: ${cause}` })

/** A failure without HRESULT of its own: E_FAIL, text as is. */
export const fail = (message: string): GuestFailure => new GuestFailure({ hresult: Hr.Fail, message })

/** `context: inner`, keeping the inner HRESULT. */
export const context = (prefix: string, inner: GuestFailure): GuestFailure =>
  new GuestFailure({ hresult: inner.hresult, message: `${prefix}: ${inner.message}` })

/** A request body the Linux GCS would not unmarshal: `failed to unmarshal JSON in message: …`. */
export const unmarshal = (inner: GuestFailure): GuestFailure =>
  context("failed to unmarshal JSON in message", inner)

/** {@link unmarshal} of a `0xC037010D` carrying `cause`. */
export const invalidJson = (cause: string): GuestFailure => unmarshal(wrap(Hr.InvalidJson, cause))

/** E_NOTIMPL for a request type the guest does not serve (§4.3). */
export const notImplemented = (typeLabel: string): GuestFailure =>
  wrap(Hr.NotImplemented, `bridge: function not supported, header type: ${typeLabel}`)

/**
 * A request the Linux GCS dies of (a nil pointer dereference in Go, which no
 * handler recovers): the guest logs `reason` and drops the bridge without an
 * answer, as the host of a real VM would see its agent vanish.
 */
export class GuestCrash extends Data.TaggedError("GuestCrash")<{ readonly reason: string }> {}
