/** `@gcs-bridge/transport`: vsock, hvsock, hybrid, unix and in-memory transports as an Effect service. */

export * from "./Address.js"
export * from "./Connection.js"
export * from "./Listener.js"
export * from "./Transport.js"
export * from "./TransportError.js"
