/**
 * What the stress runs measure about this process: open file descriptors,
 * child processes, heap after a full collection, unhandled promise
 * rejections and uncaught exceptions. Every check compares a reading taken
 * after a run with one taken before it.
 */
import { readdirSync, readFileSync } from "node:fs"
import { getHeapCodeStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

/**
 * Open file descriptors of this process (the directory handle of the listing
 * itself included, consistently), or of process `pid`.
 */
export const openFds = (pid?: number): number => readdirSync(`/proc/${pid ?? "self"}/fd`).length

/**
 * Live children of this process, or of process `parent` (zombies included: an
 * unreaped child is a leak too). Read from `/proc/<pid>/stat`, whose 4th field
 * is the parent pid.
 */
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
    // comm is parenthesised and may itself contain spaces or parentheses.
    const close = stat.lastIndexOf(")")
    const fields = stat.slice(close + 2).split(" ")
    if (Number(fields[1]) === parent) {
      out.push({ pid: Number(name), state: fields[0] ?? "?", comm: stat.slice(stat.indexOf("(") + 1, close) })
    }
  }
  return out
}

// The package script runs plain `node`, without --expose-gc: switch the flag
// on at run time and fetch `gc` from a fresh context, where V8 installs it.
setFlagsFromString("--expose-gc")
const collect = runInNewContext("gc") as (options?: { type: "major"; execution: "sync" }) => void

/**
 * Heap holding data after two full, synchronous collections (the second
 * catches what finalizers released): the heap in use minus V8's compiled code
 * and bytecode with their metadata. Those keep growing for a long while as
 * functions are compiled and tier up — not a leak, and large enough (tens of
 * KiB per run of a new code path) to drown one.
 */
export const heapAfterGc = (): number => {
  collect()
  collect()
  const code = getHeapCodeStatistics()
  return process.memoryUsage().heapUsed - code.code_and_metadata_size - code.bytecode_and_metadata_size
}

let unhandledRejections = 0
let uncaughtExceptions = 0
const firstProblems: Array<string> = []

const remember = (what: string, value: unknown) => {
  if (firstProblems.length < 10) {
    firstProblems.push(`${what}: ${value instanceof Error ? (value.stack ?? value.message) : String(value)}`)
  }
}

process.on("unhandledRejection", (reason) => {
  unhandledRejections++
  remember("unhandled rejection", reason)
})
// Counted and reported rather than fatal, so that one bug does not hide the rest of the table.
process.on("uncaughtException", (error) => {
  uncaughtExceptions++
  remember("uncaught exception", error)
})

/** Unhandled rejections and uncaught exceptions seen so far, and the first few of them. */
export const processProblems = (): {
  readonly unhandledRejections: number
  readonly uncaughtExceptions: number
  readonly first: ReadonlyArray<string>
} => ({ unhandledRejections, uncaughtExceptions, first: [...firstProblems] })

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

/** Bytes as KiB with one decimal, signed. */
export const kib = (bytes: number): string => `${bytes >= 0 ? "+" : ""}${(bytes / 1024).toFixed(1)} KiB`
