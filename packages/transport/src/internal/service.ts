/**
 * The per-layer services behind `Transport.layer`, `layerNode` and
 * `layerMemory`: a port check every layer shares, then a dispatch by address
 * family.
 */
import { Effect } from "effect"
import type { Address, HybridAddress, UnixAddress } from "../Address.js"
import { formatAddress } from "../Address.js"
import type { TransportService } from "../Transport.js"
import { transportError, unsupported } from "./errors.js"
import type { MemoryNetwork } from "./memory.js"
import type { NativeEngineOptions, NativeModule } from "./native.js"
import { connectNative, listenNative } from "./native.js"
import { connectNode, listenNode } from "./node.js"

/** The native engine, or why it could not be loaded. */
export type LoadedNative = NativeModule | { readonly unavailable: string }

/**
 * Loads `@gcs-bridge/native` (an optional dependency) when a layer is built,
 * never at import; `load` is replaceable so tests can simulate its absence.
 */
export const loadNative = (
  load: () => Promise<NativeModule> = () => import("@gcs-bridge/native")
): Effect.Effect<LoadedNative> =>
  Effect.promise(() =>
    load().then(
      (module): LoadedNative => module,
      (cause: unknown) => ({ unavailable: cause instanceof Error ? cause.message : String(cause) })
    )
  )

/**
 * One service: memory:// in `network`; with a `native` engine, everything
 * else through it when it loaded, or unix / hybrid through Node's net and
 * vsock / hvsock refused when it did not; without one (`layerNode`,
 * `layerMemory`), what `layer`'s name says it carries.
 */
export const makeService = (
  network: MemoryNetwork,
  layer: "Transport.layer" | "Transport.layerNode" | "Transport.layerMemory",
  native: LoadedNative | undefined,
  options: NativeEngineOptions = {}
): TransportService => {
  const route = (phase: "Listen" | "Connect", address: Address, port: number) => {
    const target = { address: formatAddress(address), port }
    if (!(Number.isInteger(port) && port >= 0 && port <= 0xffffffff)) {
      return transportError(
        phase,
        { address: target.address },
        `port ${port} is not an unsigned 32-bit integer`,
        {
          code: "EINVAL",
          syscall: phase === "Listen" ? "bind" : "connect",
          message: "invalid port"
        }
      )
    }
    if (address._tag === "MemoryAddress") return { engine: "memory" as const, address }
    const socketFile = address._tag === "UnixAddress" || address._tag === "HybridAddress"
    if (native !== undefined && !("unavailable" in native))
      return { engine: "native" as const, native, address }
    if (socketFile && layer !== "Transport.layerMemory") return { engine: "node" as const, address }
    return unsupported(
      phase,
      target,
      native !== undefined
        ? `${target.address} needs the optional package @gcs-bridge/native, the AF_VSOCK / AF_HYPERV socket engine (Node's net has neither), and it did not load: ${native.unavailable}. unix:// and hybrid:// work without it`
        : `${layer} cannot reach ${target.address}: ${
            layer === "Transport.layerNode"
              ? "Node's net has no AF_VSOCK / AF_HYPERV; use Transport.layer"
              : "it carries memory:// addresses only"
          }`
    )
  }
  return {
    listen: (address, port, listenOptions) => {
      const to = route("Listen", address, port)
      if (!("engine" in to)) return Effect.fail(to)
      const backlog = listenOptions?.backlog
      if (to.engine === "memory") return network.listen(to.address, port, backlog)
      if (to.engine === "native") return listenNative(to.native, to.address, port, backlog, options)
      return listenNode(to.address as UnixAddress | HybridAddress, port, backlog)
    },
    connect: (address, port, connectOptions) => {
      const to = route("Connect", address, port)
      if (!("engine" in to)) return Effect.fail(to)
      const timeout = connectOptions?.timeout
      if (to.engine === "memory") return network.connect(to.address, port)
      if (to.engine === "native") return connectNative(to.native, to.address, port, timeout)
      return connectNode(to.address as UnixAddress | HybridAddress, port, timeout)
    }
  }
}
