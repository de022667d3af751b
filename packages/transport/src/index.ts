/**
 * `@gcs-bridge/transport`: vsock / hvsock / hybrid / unix / in-memory
 * transports for the GCS bridge as an Effect service.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * from "./Address.js"
/** @since 0.1.0 */
export * from "./Connection.js"
/** @since 0.1.0 */
export * from "./Listener.js"
/** @since 0.1.0 */
export * from "./Transport.js"
/** @since 0.1.0 */
export * from "./TransportError.js"
