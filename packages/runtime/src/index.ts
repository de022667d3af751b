/**
 * `@gcs-bridge/runtime`: the host side of the GCS bridge as Effect services.
 *
 * - {@link GuestConnection}: listen for the guest, negotiate, and drive it — containers, UVM processes,
 *   resource changes.
 * - {@link Container} and {@link Process}: scoped handles; closing their scope stops what is still running in
 *   the guest and releases the host side.
 * - Errors: {@link BridgeClosed}, {@link GuestError} (with HRESULT predicates), and the `ProtocolError` /
 *   `TransportError` of the layers below.
 * - {@link Metrics}: the runtime's metrics, for exporters and tools.
 *
 * @since 0.1.0
 */
import { ProtocolError as ProtocolErrors } from "@gcs-bridge/protocol"

/** @since 0.1.0 */
export * from "./BridgeClosed.js"
/** @since 0.1.0 */
export * from "./CallError.js"
/** @since 0.1.0 */
export * from "./Container.js"
/** @since 0.1.0 */
export * from "./GuestConnection.js"
/** @since 0.1.0 */
export * from "./GuestError.js"
/** @since 0.1.0 */
export * from "./Process.js"
/** @since 0.1.0 */
export * as Metrics from "./Metrics.js"

/** The protocol layer's error (re-exported so that users need only this package). @since 0.1.0 */
export const ProtocolError = ProtocolErrors.ProtocolError
/** @since 0.1.0 */
export type ProtocolError = ProtocolErrors.ProtocolError
/** The transport layer's error (re-exported so that users need only this package). @since 0.1.0 */
export { TransportError } from "@gcs-bridge/transport"
