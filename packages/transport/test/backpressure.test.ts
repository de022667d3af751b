import { join } from "node:path"
import { MemoryAddress, Transport, UnixAddress } from "../src/index.js"
import { tempDir } from "./helpers.js"
import { slowConsumer } from "./slowConsumer.js"

slowConsumer("Transport.layerMemory", Transport.layerMemory, () => new MemoryAddress({ name: "slow" }))
slowConsumer(
  "Transport.layerNode unix",
  Transport.layerNode,
  () => new UnixAddress({ path: join(tempDir(), "s") })
)
