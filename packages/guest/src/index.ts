/**
 * `@gcs-bridge/guest`: a GCS guest in TypeScript that speaks the bridge
 * protocol as the Linux GCS does and runs real local processes — no VM, no
 * containers, no isolation. The test peer of the host packages and the
 * embedded default of `gcsctl`.
 *
 * ```ts
 * import { Guest } from "@gcs-bridge/guest"
 * import { MemoryAddress, Transport } from "@gcs-bridge/transport"
 *
 * // A guest dialling the host listening on memory://vm, for as long as the scope lives.
 * const GuestLive = Guest.layer({ address: new MemoryAddress({ name: "vm" }) })
 * ```
 *
 * @since 0.1.0
 */

/**
 * `Guest.serve`, `Guest.run`, `Guest.layer`, `Guest.addressForHost`.
 *
 * @since 0.1.0
 */
export * as Guest from "./Guest.js"

/**
 * Fault injection: the `Fault` data type, `Fault.parse` / `Fault.format` of `--fault` specs.
 *
 * @since 0.1.0
 */
export * as Fault from "./Fault.js"

/**
 * @since 0.1.0
 */
export type { GuestOptions, ResolvedGuestOptions } from "./GuestOptions.js"

/**
 * @since 0.1.0
 */
export type { ServeEnd } from "./Guest.js"

/**
 * @since 0.1.0
 */
export { FaultSpecError } from "./Fault.js"
