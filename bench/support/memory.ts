/**
 * Settled memory readings of this process: a full garbage collection (twice,
 * with a turn of the event loop between, so that finalizers and weak
 * callbacks run) before reading the heap and the resident set.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

// `--expose-gc` at run time: the flag is read when a new context is created.
setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** Bytes in use on the V8 heap and resident for the whole process. */
export interface MemoryReading {
  readonly heapUsed: number
  readonly rss: number
  /** Buffers and other memory outside the V8 heap that V8 accounts for. */
  readonly external: number
}

/** Collects garbage until the heap is settled, then reads it. */
export const settledMemory = async (): Promise<MemoryReading> => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external }
}

/** Per-item growth between two readings, in KiB. */
export const perItemKiB = (
  before: MemoryReading,
  after: MemoryReading,
  items: number
): { readonly heap: number; readonly rss: number; readonly external: number } => ({
  heap: (after.heapUsed - before.heapUsed) / items / 1024,
  rss: (after.rss - before.rss) / items / 1024,
  external: (after.external - before.external) / items / 1024
})
