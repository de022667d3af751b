/**
 * The Transport service: listen for and connect to VM endpoints by address,
 * whatever socket family carries them.
 *
 * @since 0.1.0
 */
import type { Duration, Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import type { Address } from "./Address.js"
import { formatAddress } from "./Address.js"
import type { Connection } from "./Connection.js"
import type { Listener } from "./Listener.js"
import type { TransportError } from "./TransportError.js"
import { transportError } from "./internal/errors.js"
import { MemoryNetwork } from "./internal/memory.js"
import { connectNode, listenNode } from "./internal/node.js"

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

const invalidPort = (phase: "Listen" | "Connect", address: Address, port: number) =>
  Number.isInteger(port) && port >= 0 && port <= 0xffffffff
    ? undefined
    : transportError(
        phase,
        { address: formatAddress(address) },
        `port ${port} is not an unsigned 32-bit integer`,
        {
          code: "EINVAL",
          syscall: phase === "Listen" ? "bind" : "connect",
          message: "invalid port"
        }
      )

const unsupported = (
  phase: "Listen" | "Connect",
  address: Address,
  port: number,
  layer: string,
  hint: string
) =>
  Effect.fail(
    transportError(
      phase,
      { address: formatAddress(address), port },
      `${layer} cannot reach ${formatAddress(address)}: ${hint}`,
      {
        code: "EAFNOSUPPORT",
        syscall: phase === "Listen" ? "socket" : "connect",
        message: "address family not supported"
      }
    )
  )

/** Wraps per-family handlers with the checks every layer shares. */
const makeService = (handlers: TransportService): TransportService => ({
  listen: (address, port, options) => {
    const bad = invalidPort("Listen", address, port)
    return bad === undefined ? handlers.listen(address, port, options) : Effect.fail(bad)
  },
  connect: (address, port, options) => {
    const bad = invalidPort("Connect", address, port)
    return bad === undefined ? handlers.connect(address, port, options) : Effect.fail(bad)
  }
})

const memoryService = (network: MemoryNetwork): TransportService =>
  makeService({
    listen: (address, port, options) =>
      address._tag === "MemoryAddress"
        ? network.listen(address, port, options?.backlog)
        : unsupported(
            "Listen",
            address,
            port,
            "Transport.layerMemory",
            "it carries memory:// addresses only"
          ),
    connect: (address, port) =>
      address._tag === "MemoryAddress"
        ? network.connect(address, port)
        : unsupported(
            "Connect",
            address,
            port,
            "Transport.layerMemory",
            "it carries memory:// addresses only"
          )
  })

const nodeService = (network: MemoryNetwork): TransportService =>
  makeService({
    listen: (address, port, options) => {
      switch (address._tag) {
        case "MemoryAddress":
          return network.listen(address, port, options?.backlog)
        case "UnixAddress":
        case "HybridAddress":
          return listenNode(address, port, options?.backlog)
        default:
          return unsupported(
            "Listen",
            address,
            port,
            "Transport.layerNode",
            "Node's net has no AF_VSOCK / AF_HYPERV; use Transport.layer"
          )
      }
    },
    connect: (address, port, options) => {
      switch (address._tag) {
        case "MemoryAddress":
          return network.connect(address, port)
        case "UnixAddress":
        case "HybridAddress":
          return connectNode(address, port, options?.timeout)
        default:
          return unsupported(
            "Connect",
            address,
            port,
            "Transport.layerNode",
            "Node's net has no AF_VSOCK / AF_HYPERV; use Transport.layer"
          )
      }
    }
  })

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

  /** `unix://` and `hybrid://` through Node's `net`, plus `memory://`. */
  static readonly layerNode: Layer.Layer<Transport> = Layer.sync(Transport, () =>
    nodeService(new MemoryNetwork())
  )
}
