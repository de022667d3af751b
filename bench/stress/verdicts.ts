/**
 * The pass/fail rules of the parts other than the matrix (whose cells carry
 * their own), kept apart from the rendering so that the exit status and the
 * report agree.
 */
import type { AsanResult } from "./asan.js"
import type { FuzzResult } from "./fuzz/run.js"
import type { NativeCyclesResult } from "./nativeCycles.js"
import type { SoakResult, SoakSample } from "./soak.js"

/** Heap growth over the second half of a soak that still counts as flat. */
export const SoakHeapToleranceBytes = 1024 * 1024

/** Problems of a fuzz run (empty: passed). */
export const fuzzProblems = (r: FuzzResult, wanted: number): ReadonlyArray<string> => [
  ...(r.inputs < wanted ? [`only ${r.inputs} of ${wanted} inputs ran`] : []),
  ...r.findings.map(
    (f) => `${f.target}: ${f.kind} "${f.message}" on ${f.count} call(s), first at input ${f.index}`
  ),
  ...r.hangs.map((i) => `input ${i} hung (no progress for the hang bound)`),
  ...r.memoryFailures.map((m) => `worker died: ${m}`),
  ...r.slow.map((s) => `input ${s.index} took ${Math.round(s.ms)} ms`)
]

/** Problems of the native churn (empty: passed). */
export const nativeProblems = (r: NativeCyclesResult): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (r.failures > 0) out.push(`${r.failures} cycle failure(s), first: ${r.firstFailure ?? "?"}`)
  if (r.fdsAfter !== r.fdsBefore) out.push(`file descriptors ${r.fdsBefore} → ${r.fdsAfter}`)
  if (r.handlesAfter !== r.handlesBefore) out.push(`addon handles ${r.handlesBefore} → ${r.handlesAfter}`)
  const during = new Set(r.samples.map((s) => s.fds))
  if (during.size > 1) out.push(`fd count moved between samples: ${[...during].join(", ")}`)
  return out
}

/** Problems of the sanitizer run (empty: passed or not offered). */
export const asanProblems = (r: AsanResult): ReadonlyArray<string> =>
  !r.ran || r.exitCode === 0 ? [] : [`${r.script} exited with ${r.exitCode}: ${r.summary.slice(-1).join("")}`]

/** Bytes per cycle of the least-squares line through `samples`. */
export const heapSlope = (samples: ReadonlyArray<SoakSample>): number => {
  if (samples.length < 2) return 0
  const n = samples.length
  const mx = samples.reduce((a, s) => a + s.cycles, 0) / n
  const my = samples.reduce((a, s) => a + s.heap, 0) / n
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.cycles - mx) * (s.heap - my)
    den += (s.cycles - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/**
 * Problems of the soak (empty: passed). The first interval is the warm-up
 * (lazily created handles such as libuv's child-signal pipe, JIT code, caches
 * filled once); from there on the host's and the guest's fds must not move,
 * the guest must have no child left between intervals, the guest process must
 * exit cleanly when the host closes, and the host's heap must grow less than {@link SoakHeapToleranceBytes} over the second half.
 */
export const soakProblems = (r: SoakResult): ReadonlyArray<string> => {
  const out: Array<string> = []
  if (r.failures > 0) out.push(`${r.failures} cycle failure(s), first: ${r.firstFailure ?? "?"}`)
  const steady = r.samples.slice(1)
  if (new Set(steady.map((s) => s.fds)).size > 1) {
    out.push(`host fd count moved after warm-up: ${steady.map((s) => s.fds).join(" → ")}`)
  }
  if (new Set(steady.map((s) => s.guestFds)).size > 1) {
    out.push(`guest fd count moved after warm-up: ${steady.map((s) => s.guestFds).join(" → ")}`)
  }
  const children = r.samples.filter((s) => s.children > 0)
  if (children.length > 0) {
    out.push(`guest child processes left at ${children.map((s) => `${s.cycles} (${s.children})`).join(", ")}`)
  }
  if (r.guestExit !== "exit 0") out.push(`the guest process ended badly: ${r.guestExit}`)
  const half = r.samples.slice(Math.floor(r.samples.length / 2))
  if (half.length >= 2) {
    const growth = half[half.length - 1]!.heap - half[0]!.heap
    if (growth > SoakHeapToleranceBytes) {
      out.push(
        `heap grew ${(growth / 1024).toFixed(0)} KiB over the second half (${half[0]!.cycles} → ${half[half.length - 1]!.cycles} cycles)`
      )
    }
  }
  if (r.errors.length > 0) out.push(`the runtime logged errors: ${r.errors.join("; ")}`)
  return out
}
