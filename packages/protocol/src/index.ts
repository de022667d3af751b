/**
 * `@gcs-bridge/protocol`: the GCS bridge wire model (`effect` only, no I/O). Every module is exported as a
 * namespace named after its file (`Codec.encodeRequest`, `MessageType.Proc`, `ProtocolError.ProtocolError`).
 */
export * as Codec from "./Codec.js"
export * as Container from "./Container.js"
export * as Envelope from "./Envelope.js"
export * as Frame from "./Frame.js"
export * as FrameDecoder from "./FrameDecoder.js"
export * as GoJson from "./GoJson.js"
export * as GoSchema from "./GoSchema.js"
export * as Guid from "./Guid.js"
export * as HResult from "./HResult.js"
export * as MessageType from "./MessageType.js"
export * as ModifySettings from "./ModifySettings.js"
export * as Negotiate from "./Negotiate.js"
export * as Process from "./Process.js"
export * as Properties from "./Properties.js"
export * as ProtocolError from "./ProtocolError.js"
export * as Rpc from "./Rpc.js"
export * as Service from "./Service.js"
export * as Uvm from "./Uvm.js"
