/**
 * A first reading of a profile, for the notes under a missed target: the
 * shares that explain most of the time (syscalls, garbage collection, error
 * values built on the success path, the guest's own start-up), each stated
 * only when the profile shows it. The report beside the figures says what to
 * change; this keeps RESULTS.md readable without it.
 */
import type { ProfileSummary } from "./cpuProfile.js"
import type { AllocationSite } from "./heapProfile.js"

const share = (summary: ProfileSummary, test: (name: string, where: string) => boolean): number =>
  summary.hot.filter((h) => test(h.name, h.where)).reduce((n, h) => n + h.selfPercent, 0)

/** Sentences explaining a CPU profile (shares are of the busy time). */
export const readCpuProfile = (summary: ProfileSummary): ReadonlyArray<string> => {
  const out: Array<string> = []
  const write = share(
    summary,
    (name, where) =>
      (name.includes("[native") && /writev|handleWriteReq/.test(name)) ||
      (where.startsWith("native/") && name.startsWith("writev"))
  )
  if (write >= 10) {
    out.push(
      `${write.toFixed(0)} % is the socket write itself (the native call that enters the kernel and wakes the ` +
        "peer): one syscall per frame or chunk written."
    )
  }
  const gc = share(summary, (name) => name === "(garbage collector)")
  if (gc >= 10) out.push(`${gc.toFixed(0)} % is garbage collection: the allocation rate per operation.`)
  const errors = share(
    summary,
    (name) => name === "BaseEffectError" || name === "klass" || name === "lazilyMergeDefaults"
  )
  if (errors >= 2) {
    out.push(
      `${errors.toFixed(1)} % goes to constructing Schema classes and error values (\`BaseEffectError\`, ` +
        "`klass`, `lazilyMergeDefaults`) on the success path: errors that are built before they are needed " +
        "capture a stack trace and validate their fields each time."
    )
  }
  const startup = share(
    summary,
    (name, where) =>
      name === "compileSourceTextModule" ||
      where.startsWith("node:internal/modules") ||
      name.startsWith("openFileHandle")
  )
  if (startup >= 3) out.push(`${startup.toFixed(0)} % is the process's own start-up (loading modules).`)
  return out
}

/** Sentences explaining a heap profile of live objects. */
export const readHeapProfile = (
  sites: ReadonlyArray<AllocationSite>,
  total: number
): ReadonlyArray<string> => {
  const pct = (test: (s: AllocationSite) => boolean) =>
    (sites.filter(test).reduce((n, s) => n + s.bytes, 0) / Math.max(1, total)) * 100
  const out: Array<string> = []
  const errors = pct((s) => s.name === "BaseEffectError")
  if (errors >= 3) {
    out.push(
      `${errors.toFixed(0)} % of it is error values (\`BaseEffectError\`) built when a process starts and kept ` +
        "for its whole life by the closures that might fail with them, stack trace included."
    )
  }
  const handle = pct((s) => s.where.startsWith("packages/runtime/"))
  if (handle >= 10) {
    out.push(
      `${handle.toFixed(0)} % is allocated directly by the runtime's own code (the Process handle and its ` +
        "closures, the pending call's entry, the per-process scope)."
    )
  }
  return out
}
