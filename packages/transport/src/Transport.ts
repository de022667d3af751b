/**
 * The Transport service: listen for and connect to VM endpoints by address,
 * whatever socket family carries them.
 *
 * @since 0.1.0
 */
import type { Duration, Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import type { Address } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import type { TransportError } from "./TransportError.js"
import { MemoryNetwork } from "./internal/memory.js"
import { loadNative, memoryService, nativeService, nodeService } from "./internal/service.js"

/**
 * Options of `Transport.listen`.
 *
 * @since 0.1.0
 */
export interface ListenOptions {
  /** Kernel accept backlog, and the number of accepted connections held for `accept` (default 16; memory: 128). */
  readonly backlog?: number
}

/**
 * Options of `Transport.connect`.
 *
 * @since 0.1.0
 */
export interface ConnectOptions {
  /** Deadline for the connection (including a hybrid CONNECT/OK handshake): `ConnectTimeout` on expiry. Hybrid defaults to 10 s. */
  readonly timeout?: Duration.DurationInput
}

/**
 * The operations of the Transport service.
 *
 * @since 0.1.0
 */
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

/**
 * The Transport service tag, with one layer per engine. Every layer instance
 * owns its own in-memory network for `memory://` addresses: a host and a guest
 * in one test reach each other by sharing the layer.
 *
 * @since 0.1.0
 */
export class Transport extends Context.Tag("@gcs-bridge/transport/Transport")<Transport, TransportService>() {
  /**
   * `memory://` only: an in-process network with bounded buffers (256 KiB per
   * direction), for tests and embedded guests.
   */
  static readonly layerMemory: Layer.Layer<Transport> = Layer.sync(Transport, () =>
    memoryService(new MemoryNetwork())
  )

  /**
   * The production layer: vsock (Linux), hvsock (Windows), unix and hybrid
   * through the native engine of `@gcs-bridge/native`, plus `memory://`.
   * When the addon cannot be loaded the layer still builds; its operations
   * then fail with `EAFNOSUPPORT` naming the load error.
   */
  static readonly layer: Layer.Layer<Transport> = Layer.effect(
    Transport,
    Effect.map(loadNative, (native) => nativeService(new MemoryNetwork(), native))
  )

  /** `unix://` and `hybrid://` through Node's `net`, plus `memory://`. */
  static readonly layerNode: Layer.Layer<Transport> = Layer.sync(Transport, () =>
    nodeService(new MemoryNetwork())
  )
}
