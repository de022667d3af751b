/**
 * `@gcs-bridge/protocol`: the GCS bridge wire model. Pure: `effect` only, no I/O.
 *
 * Every module is re-exported by name, and the larger ones also as a namespace
 * (`Codec.encodeRequest`, `MessageType.Proc`, …).
 *
 * @since 0.1.0
 */
export * from "./Codec.js"
export * from "./Container.js"
export * from "./Envelope.js"
export * from "./Frame.js"
export * from "./FrameDecoder.js"
export * from "./GoJson.js"
export * from "./GoSchema.js"
export * from "./Guid.js"
export * from "./HResult.js"
export * from "./MessageType.js"
export * from "./ModifySettings.js"
export * from "./Negotiate.js"
export * from "./Process.js"
export * from "./Properties.js"
export * from "./ProtocolError.js"
export * from "./Rpc.js"
export * from "./Service.js"
export * from "./Uvm.js"

export * as Codec from "./Codec.js"
export * as Container from "./Container.js"
export * as Envelope from "./Envelope.js"
export * as FrameDecoder from "./FrameDecoder.js"
export * as GoJson from "./GoJson.js"
export * as GoSchema from "./GoSchema.js"
export * as MessageType from "./MessageType.js"
export * as ModifySettings from "./ModifySettings.js"
export * as Negotiate from "./Negotiate.js"
export * as Process from "./Process.js"
export * as Properties from "./Properties.js"
export * as Rpc from "./Rpc.js"
export * as Service from "./Service.js"
export * as Uvm from "./Uvm.js"
