/** The services behind `Transport.layer`, `layerNode`, `layerMemory`: a shared port check, then dispatch by family. */
import { Effect } from "effect"
import { type Address, formatAddress } from "../Address.js"
import type { TransportService } from "../Transport.js"
import type { MemoryNetwork } from "./memory.js"
import { connectNative, listenNative, type NativeEngineOptions, type NativeModule } from "./native.js"
import { connectNode, listenNode } from "./node.js"
import { type Phase, transportError, unsupported } from "./rawSocket.js"

/** The native engine, or why it could not be loaded. */
export type LoadedNative = NativeModule | { readonly unavailable: string }

/** Loads the optional `@gcs-bridge/native` when a layer is built, never at import; tests replace `load`. */
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
 * One service: memory:// in `network`; the rest through `native` when it loaded, else unix / hybrid through
 * Node's net and vsock / hvsock refused; without `native` (`layerNode`, `layerMemory`), what `layer` names.
 */
export const makeService = (
  network: MemoryNetwork,
  layer: "Transport.layer" | "Transport.layerNode" | "Transport.layerMemory",
  native: LoadedNative | undefined,
  options: NativeEngineOptions = {}
): TransportService => {
  const route = (phase: Phase, address: Address, port: number) => {
    const target = { address: formatAddress(address), port }
    if (!(Number.isInteger(port) && port >= 0 && port <= 0xffffffff)) {
      const why = `port ${port} is not an unsigned 32-bit integer`
      const syscall = phase === "Listen" ? "bind" : "connect"
      return transportError(phase, { address: target.address }, why, "EINVAL", syscall)
    }
    if (address._tag === "MemoryAddress") return { engine: "memory" as const, address }
    if (native !== undefined && !("unavailable" in native))
      return { engine: "native" as const, native, address }
    // Unix and hybrid addresses name a socket file, which Node's net reaches too.
    if ("path" in address && layer !== "Transport.layerMemory") return { engine: "node" as const, address }
    if (native !== undefined) {
      const why = `${target.address} needs the optional package @gcs-bridge/native, the AF_VSOCK / AF_HYPERV socket engine (Node's net has neither), and it did not load: ${native.unavailable}. unix:// and hybrid:// work without it`
      return unsupported(phase, target, why)
    }
    const why =
      layer === "Transport.layerNode"
        ? "Node's net has no AF_VSOCK / AF_HYPERV; use Transport.layer"
        : "it carries memory:// addresses only"
    return unsupported(phase, target, `${layer} cannot reach ${target.address}: ${why}`)
  }
  return {
    listen: (address, port, { backlog } = {}) => {
      const to = route("Listen", address, port)
      if (!("engine" in to)) return Effect.fail(to)
      if (to.engine === "memory") return network.listen(to.address, port, backlog)
      if (to.engine === "native") return listenNative(to.native, to.address, port, backlog, options)
      return listenNode(to.address, port, backlog)
    },
    connect: (address, port, { timeout } = {}) => {
      const to = route("Connect", address, port)
      if (!("engine" in to)) return Effect.fail(to)
      if (to.engine === "memory") return network.connect(to.address, port)
      if (to.engine === "native") return connectNative(to.native, to.address, port, timeout)
      return connectNode(to.address, port, timeout)
    }
  }
}
