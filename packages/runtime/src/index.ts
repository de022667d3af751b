/** `@gcs-bridge/runtime`: the host side of the GCS bridge as Effect services (see the README). @since 0.1.0 */
import { ProtocolError as ProtocolErrors } from "@gcs-bridge/protocol"

/** @since 0.1.0 */
export * from "./Container.js"
/** @since 0.1.0 */
export * from "./Errors.js"
/** @since 0.1.0 */
export * from "./GuestConnection.js"
/** @since 0.1.0 */
export * from "./Process.js"
/** @since 0.2.0 */
export * from "./Migration.js"
/** @since 0.1.0 */
export * as Metrics from "./Metrics.js"

/** The protocol layer's error, re-exported. @since 0.1.0 */
export const ProtocolError = ProtocolErrors.ProtocolError
/** @since 0.1.0 */
export type ProtocolError = ProtocolErrors.ProtocolError
/** The transport layer's error, re-exported. @since 0.1.0 */
export { TransportError } from "@gcs-bridge/transport"
