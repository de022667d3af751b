/**
 * Readings of a process, shared by the benchmarks and the stress runs: open
 * file descriptors and child processes (from /proc), and memory after full
 * garbage collections.
 */
import { readdirSync, readFileSync } from "node:fs"
import { getHeapCodeStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

// The package scripts run plain `node`: switch `--expose-gc` on at run time and fetch `gc` from a
// fresh context, where V8 installs it.
setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** Open file descriptors of this process (the listing's own handle included, consistently), or of `pid`. */
export const openFds = (pid?: number): number => readdirSync(`/proc/${pid ?? "self"}/fd`).length

/** Live children (zombies included: an unreaped child is a leak too) of this process or of `parent`. */
export const childProcesses = (
  parent: number = process.pid
): ReadonlyArray<{ readonly pid: number; readonly state: string; readonly comm: string }> => {
  const out: Array<{ pid: number; state: string; comm: string }> = []
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, "latin1")
    } catch {
      continue // exited between the listing and the read
    }
    // comm is parenthesised and may itself contain spaces or parentheses; then state, ppid, …
    const close = stat.lastIndexOf(")")
    const fields = stat.slice(close + 2).split(" ")
    if (Number(fields[1]) === parent) {
      out.push({ pid: Number(name), state: fields[0] ?? "?", comm: stat.slice(stat.indexOf("(") + 1, close) })
    }
  }
  return out
}

/**
 * Heap holding data after two full collections (the second catches what
 * finalizers released), minus V8's compiled code and bytecode with their
 * metadata: those grow for a long while as functions tier up — not a leak,
 * and large enough (tens of KiB per new code path) to drown one.
 */
export const heapAfterGc = (): number => {
  gc()
  gc()
  const code = getHeapCodeStatistics()
  return process.memoryUsage().heapUsed - code.code_and_metadata_size - code.bytecode_and_metadata_size
}

/** Bytes on the V8 heap, resident for the whole process, and outside the heap (Buffers). */
export interface MemoryReading {
  readonly heapUsed: number
  readonly rss: number
  readonly external: number
}

/** Collects garbage until the heap is settled (turns of the event loop between, for finalizers), then reads it. */
export const settledMemory = async (): Promise<MemoryReading> => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external }
}

/** Per-item growth between two readings, in KiB. */
export const perItemKiB = (before: MemoryReading, after: MemoryReading, items: number) => ({
  heap: (after.heapUsed - before.heapUsed) / items / 1024,
  rss: (after.rss - before.rss) / items / 1024,
  external: (after.external - before.external) / items / 1024
})

/** Waits `ms` milliseconds of wall time. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `read` until it returns `target` or `withinMs` has passed; gives the
 * last reading. Descriptors and children are released by the event loop a
 * little after the scope that owned them closed, so a check waits for them.
 */
export const settle = async (read: () => number, target: number, withinMs: number): Promise<number> => {
  const until = Date.now() + withinMs
  let value = read()
  while (value !== target && Date.now() < until) {
    await sleep(10)
    value = read()
  }
  return value
}
