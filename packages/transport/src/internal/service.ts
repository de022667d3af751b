/**
 * The per-layer services behind `Transport.layer`, `layerNode` and
 * `layerMemory`: shared argument checks, then a dispatch by address family.
 */
import { Effect } from "effect"
import type { Address } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { TransportService } from "../Transport.js"
import { transportError } from "./errors.js"
import type { MemoryNetwork } from "./memory.js"
import type { NativeEngineOptions, NativeModule } from "./native.js"
import { connectNative, listenNative } from "./native.js"
import { connectNode, listenNode } from "./node.js"

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
export const makeService = (handlers: TransportService): TransportService => ({
  listen: (address, port, options) => {
    const bad = invalidPort("Listen", address, port)
    return bad === undefined ? handlers.listen(address, port, options) : Effect.fail(bad)
  },
  connect: (address, port, options) => {
    const bad = invalidPort("Connect", address, port)
    return bad === undefined ? handlers.connect(address, port, options) : Effect.fail(bad)
  }
})

/** `memory://` only. */
export const memoryService = (network: MemoryNetwork): TransportService =>
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

/** unix and hybrid through `node:net`, plus `memory://`. */
export const nodeService = (network: MemoryNetwork): TransportService =>
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

/** The native module, or why it could not be loaded. */
export const loadNative: Effect.Effect<NativeModule | { readonly unavailable: string }> = Effect.promise(() =>
  import("@gcs-bridge/native").then(
    (module): NativeModule => module,
    (cause: unknown) => ({ unavailable: cause instanceof Error ? cause.message : String(cause) })
  )
)

/** Everything but memory through the native engine. */
export const nativeService = (
  network: MemoryNetwork,
  native: NativeModule | { readonly unavailable: string },
  options: NativeEngineOptions = {}
): TransportService =>
  makeService({
    listen: (address, port, listenOptions) => {
      if (address._tag === "MemoryAddress") return network.listen(address, port, listenOptions?.backlog)
      if ("unavailable" in native) {
        return unsupported(
          "Listen",
          address,
          port,
          "Transport.layer",
          `the native engine did not load (${native.unavailable})`
        )
      }
      return listenNative(native, address, port, listenOptions?.backlog, options)
    },
    connect: (address, port, connectOptions) => {
      if (address._tag === "MemoryAddress") return network.connect(address, port)
      if ("unavailable" in native) {
        return unsupported(
          "Connect",
          address,
          port,
          "Transport.layer",
          `the native engine did not load (${native.unavailable})`
        )
      }
      return connectNative(native, address, port, connectOptions?.timeout)
    }
  })
