/**
 * `@gcs-bridge/transport`: vsock / hvsock / hybrid / unix / in-memory
 * transports for the GCS bridge as an Effect service.
 */

export * from "./Address.js"
export * from "./Connection.js"
export * from "./Listener.js"
export * from "./Transport.js"
export * from "./TransportError.js"
