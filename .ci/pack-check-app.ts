// Runs the README's runInContainer example from installed tarballs: the host
// (GuestConnection) and our guest share one in-memory Transport, as the README
// test does in the repository.
import { Guest } from "@gcs-bridge/guest"
import { GuestConnection } from "@gcs-bridge/runtime"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Layer } from "effect"
import { runInContainer } from "./runInContainer.ts"

const address = new MemoryAddress({ name: "pack-check" })
const live = Layer.merge(GuestConnection.layer({ address }), Guest.layer({ address })).pipe(
  Layer.provide(Transport.layerMemory)
)

const code = await Effect.runPromise(
  runInContainer("demo", ["sh", "-c", "echo from-the-tarballs; exit 7"]).pipe(Effect.provide(live))
)
if (code !== 7) throw new Error(`expected exit code 7, got ${code}`)
console.log("pack-check: the README example ran from the installed tarballs")
