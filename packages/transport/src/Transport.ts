/** The Transport service: listen for and connect to VM endpoints by address, over any socket family. */
import { Context, type Duration, Effect, Layer, type Scope } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import type { TransportError } from "./TransportError.js"
import { MemoryNetwork } from "./internal/memory.js"
import { loadNative, makeService } from "./internal/service.js"

/** Options of `Transport.listen`. */
export interface ListenOptions {
  /** Kernel accept backlog, and the number of accepted connections held for `accept` (default 16; memory: 128). */
  readonly backlog?: number
}

/** Options of `Transport.connect`. */
export interface ConnectOptions {
  /** Deadline for the connection (including a hybrid CONNECT/OK handshake): `ConnectTimeout` on expiry. Hybrid defaults to 10 s. */
  readonly timeout?: Duration.Input
}

/** The operations of the Transport service. */
export interface TransportService {
  /** Binds vsock port `port` of `address`; the listener lives as long as the current scope. */
  readonly listen: (
    address: Address,
    port: number,
    options?: ListenOptions
  ) => Effect.Effect<Listener, TransportError, Scope.Scope>
  /** Connects to vsock port `port` of `address`; the connection lives as long as the current scope. */
  readonly connect: (
    address: Address,
    port: number,
    options?: ConnectOptions
  ) => Effect.Effect<Connection, TransportError, Scope.Scope>
}

/** The Transport service, one layer per engine; each layer instance owns its own `memory://` network (share the layer to connect). */
export class Transport extends Context.Service<Transport, TransportService>()(
  "@gcs-bridge/transport/Transport"
) {
  /** `memory://` only: in-process, 256 KiB buffered per direction; for tests and embedded guests. */
  static readonly layerMemory: Layer.Layer<Transport> = Layer.sync(Transport, () =>
    makeService(new MemoryNetwork(), "Transport.layerMemory", undefined)
  )

  /**
   * The production layer: vsock (Linux), hvsock (Windows), unix and hybrid through `@gcs-bridge/native`, an
   * optional dependency loaded when the layer is built; without it unix and hybrid go through Node's `net` and
   * vsock / hvsock fail with `EAFNOSUPPORT` naming the package and why it did not load. Plus `memory://`.
   */
  static readonly layer: Layer.Layer<Transport> = Layer.effect(
    Transport,
    Effect.map(loadNative(), (native) => makeService(new MemoryNetwork(), "Transport.layer", native))
  )

  /** `unix://` and `hybrid://` through Node's `net`, plus `memory://`; needs no addon. */
  static readonly layerNode: Layer.Layer<Transport> = Layer.sync(Transport, () =>
    makeService(new MemoryNetwork(), "Transport.layerNode", undefined)
  )
}
