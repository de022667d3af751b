/**
 * What `/proc` says about a container's processes: the process tree below the
 * processes the guest started (there is no cgroup to ask), and the CPU time,
 * resident memory and count behind the `Statistics` property. Without a
 * readable `/proc` (not Linux) only the guest's own processes are known.
 */
import { readdir, readFile } from "node:fs/promises"
import { Effect } from "effect"

interface ProcStat {
  readonly pid: number
  readonly ppid: number
  /** CPU time in clock ticks. */
  readonly utime: number
  readonly stime: number
}

// The fields after the command name, which may itself contain spaces and parentheses.
const parseStat = (text: string): ProcStat | undefined => {
  const close = text.lastIndexOf(")")
  if (close < 0) return undefined
  const pid = Number.parseInt(text, 10)
  const fields = text.slice(close + 2).split(" ")
  // fields[0] is state (field 3), so field N is fields[N - 3].
  const ppid = Number(fields[1])
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  if (![pid, ppid, utime, stime].every(Number.isFinite)) return undefined
  return { pid, ppid, utime, stime }
}

const readStat = (pid: number): Effect.Effect<ProcStat | undefined> =>
  Effect.promise(() => readFile(`/proc/${pid}/stat`, "utf8").then(parseStat, () => undefined))

const allStats = Effect.promise(() => readdir("/proc").catch(() => [] as Array<string>)).pipe(
  Effect.flatMap((names) =>
    Effect.forEach(
      names.filter((n) => /^[0-9]+$/.test(n)),
      (n) => readStat(Number(n)),
      { concurrency: 16 }
    )
  ),
  Effect.map((stats) => stats.filter((s): s is ProcStat => s !== undefined))
)

/**
 * `roots` and all their living descendants, roots first, each pid once. A
 * root that `/proc` does not show (not Linux, or just exited) is still listed.
 */
export const processTree = (roots: ReadonlyArray<number>): Effect.Effect<ReadonlyArray<number>> =>
  allStats.pipe(
    Effect.map((stats) => {
      const children = new Map<number, Array<number>>()
      for (const s of stats) {
        const list = children.get(s.ppid)
        if (list === undefined) children.set(s.ppid, [s.pid])
        else list.push(s.pid)
      }
      const seen = new Set<number>()
      const out: Array<number> = []
      const queue = [...roots]
      while (queue.length > 0) {
        const pid = queue.shift()!
        if (seen.has(pid)) continue
        seen.add(pid)
        out.push(pid)
        for (const child of children.get(pid) ?? []) queue.push(child)
      }
      return out
    })
  )

// Clock ticks per second from the ELF auxiliary vector (AT_CLKTCK = 17), which
// is what sysconf(_SC_CLK_TCK) returns; Node has no sysconf.
const clockTicks: Effect.Effect<number | undefined> = Effect.promise(() =>
  readFile("/proc/self/auxv").then(
    (buf) => {
      for (let i = 0; i + 16 <= buf.length; i += 16) {
        const type = buf.readBigUInt64LE(i)
        if (type === 0n) break
        if (type === 17n) return Number(buf.readBigUInt64LE(i + 8))
      }
      return undefined
    },
    () => undefined
  )
)

const residentBytes = (pid: number): Effect.Effect<number> =>
  Effect.promise(() =>
    readFile(`/proc/${pid}/status`, "utf8").then(
      (text) => {
        const match = /^VmRSS:\s+([0-9]+) kB$/m.exec(text)
        return match === null ? 0 : Number(match[1]) * 1024
      },
      () => 0
    )
  )

/**
 * The `LCOWMetrics` document for these pids, in the cgroup-v1 `Metrics` JSON
 * shape the host decodes: `pids.current`, `cpu.usage.{total,kernel,user}` in
 * nanoseconds, `memory.usage.usage` (sum of resident set sizes) in bytes.
 * CPU and memory are omitted when `/proc` cannot tell them.
 */
export const statistics = (pids: ReadonlyArray<number>): Effect.Effect<Record<string, unknown>> =>
  Effect.gen(function* () {
    const ticks = yield* clockTicks
    const stats = (yield* Effect.forEach(pids, readStat, { concurrency: 16 })).filter(
      (s): s is ProcStat => s !== undefined
    )
    const metrics: Record<string, unknown> = { pids: { current: pids.length } }
    if (ticks !== undefined && ticks > 0 && stats.length > 0) {
      const ns = (t: number) => Math.round((t * 1e9) / ticks)
      const user = stats.reduce((a, s) => a + ns(s.utime), 0)
      const kernel = stats.reduce((a, s) => a + ns(s.stime), 0)
      metrics["cpu"] = { usage: { total: user + kernel, kernel, user } }
    }
    if (stats.length > 0) {
      const rss = yield* Effect.forEach(stats, (s) => residentBytes(s.pid), { concurrency: 16 })
      metrics["memory"] = { usage: { usage: rss.reduce((a, b) => a + b, 0) } }
    }
    return metrics
  })
