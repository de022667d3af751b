import { it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import { expect } from "vitest"
import { HvsockAddress, HybridAddress, Transport, UnixAddress, VsockAddress } from "../src/index.js"
import { conformance, hybridSuite, socketFileSuite, tempDir, transportFailure } from "./helpers.js"

conformance(
  "Transport.layerNode unix://",
  Transport.layerNode,
  () => {
    const address = new UnixAddress({ path: join(tempDir(), "vm.sock") })
    return { listen: address, connect: address }
  },
  "unix"
)

conformance(
  "Transport.layerNode hybrid://",
  Transport.layerNode,
  () => {
    const path = join(tempDir(), "fc.sock")
    return { listen: new HybridAddress({ path }), connect: new UnixAddress({ path }) }
  },
  "unix"
)

hybridSuite("Transport.layerNode", Transport.layerNode)
socketFileSuite("Transport.layerNode", Transport.layerNode)

it.effect("layerNode refuses vsock and hvsock with a typed error", () =>
  Effect.gen(function* () {
    const transport = yield* Transport
    for (const address of [
      new VsockAddress({ cid: "any" }),
      new HvsockAddress({ vmId: "6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1" })
    ]) {
      const error = yield* transportFailure(transport.listen(address, 1))
      expect(error.code).toBe("EAFNOSUPPORT")
      expect(error.message).toContain("Transport.layer")
    }
  }).pipe(Effect.provide(Transport.layerNode))
)
