/**
 * Where the time and the memory go, for the notes under a missed target:
 * V8's sampling CPU profiler (the one behind `node --cpu-prof`), driven
 * in-process through `node:inspector` around one extra run of a scenario (so
 * only the host is sampled); and V8's
 * sampling heap profiler, read while a scenario still holds its memory. Each
 * summary comes with a first reading: the shares that explain most of it,
 * each stated only when the profile shows it.
 */
import { Session } from "node:inspector"
import { relative } from "node:path"
import { fileURLToPath } from "node:url"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly children?: ReadonlyArray<number>
  readonly callFrame: CallFrame
}

/** The parts of a V8 CPU profile the summary reads. */
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** A function (CPU) or allocation site (heap) of a summary, `where` as `file:line` from the repository or package. */
export interface Site {
  readonly name: string
  readonly where: string
  /** CPU: share of the busy samples; heap: live bytes it allocated, as sampled. */
  readonly amount: number
}

/** A CPU profile summary. */
export interface ProfileSummary {
  /** Share of the samples in which the thread was not idle. */
  readonly busyPercent: number
  readonly hot: ReadonlyArray<Site>
}

const post = <T>(session: Session, method: string, params?: object): Promise<T> =>
  new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as T)))
  )

/** Runs `body` with an inspector session on this process. */
const inspect = async <A>(body: (session: Session) => Promise<A>): Promise<A> => {
  const session = new Session()
  session.connect()
  try {
    return await body(session)
  } finally {
    session.disconnect()
  }
}

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

const location = ({ url, lineNumber }: CallFrame): string => {
  if (url === "") return ""
  const path = url.startsWith("file://") ? fileURLToPath(url) : url
  const short = path.startsWith(repoRoot) ? relative(repoRoot, path) : path
  return `${short.replace(/^.*node_modules\//, "")}:${lineNumber + 1}`
}

/** Where the transport's native engine calls the addon. */
const nativeEngine = "packages/transport/dist/internal/native.js"

const top = <S extends Site>(sites: Iterable<S>, n = 12): Array<S> =>
  [...sites].sort((a, b) => b.amount - a.amount).slice(0, n)

/** Self time per function, as shares of the busy samples. */
const summarizeProfile = (profile: Profile): ProfileSummary => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parentOf = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n)
  // Native code (stack capture, syscalls, builtins) is labelled with the JS function that called it.
  const label = (node: ProfileNode): { name: string; where: string } => {
    const name = node.callFrame.functionName || "(anonymous)"
    if (name.startsWith("(") && name !== "(anonymous)") return { name, where: "" }
    if (node.callFrame.url !== "") return { name, where: location(node.callFrame) }
    let caller = parentOf.get(node.id)
    while (caller !== undefined && caller.callFrame.url === "") caller = parentOf.get(caller.id)
    if (caller === undefined) return { name: `${name} [native]`, where: "" }
    const where = location(caller.callFrame)
    // V8 gives node-addon-api functions the name of some other method of the addon (`readStop` for a write):
    // leave it out where the caller is the addon's own wrapper or the transport's native engine.
    const addon = where.startsWith("native/") || where.startsWith(nativeEngine)
    const shown = addon ? "[native addon]" : `${name} [native]`
    return { name: `${shown} ← ${caller.callFrame.functionName || "(anonymous)"}`, where }
  }
  const underInspector = (node: ProfileNode): boolean => {
    for (let n: ProfileNode | undefined = node; n !== undefined; n = parentOf.get(n.id))
      if (n.callFrame.url === "node:inspector") return true
    return false
  }
  const self = new Map<string, { name: string; where: string; amount: number }>()
  let total = 0
  let idle = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)
    const delta = profile.timeDeltas[i] ?? 0
    // The profiler's own work (starting and stopping it through node:inspector) is not the scenario's.
    if (node === undefined || underInspector(node)) continue
    total += delta
    if (node.callFrame.functionName === "(idle)") {
      idle += delta
      continue
    }
    const { name, where } = label(node)
    const entry = self.get(`${name}@${where}`) ?? { name, where, amount: 0 }
    entry.amount += delta
    self.set(`${name}@${where}`, entry)
  }
  const busy = total - idle
  return {
    busyPercent: total === 0 ? 0 : (busy / total) * 100,
    hot: top(self.values()).map((e) => ({ ...e, amount: busy === 0 ? 0 : (e.amount / busy) * 100 }))
  }
}

/** Runs `body` under the CPU profiler (sampling every 200 µs) and summarises it. */
export const profile = (body: () => Promise<unknown>): Promise<ProfileSummary> =>
  inspect(async (session) => {
    await post(session, "Profiler.enable")
    await post(session, "Profiler.setSamplingInterval", { interval: 200 })
    await post(session, "Profiler.start")
    let result: { profile: Profile }
    try {
      await body()
    } finally {
      result = await post<{ profile: Profile }>(session, "Profiler.stop")
    }
    return summarizeProfile(result.profile)
  })

const sum = (sites: ReadonlyArray<Site>, test: (s: Site) => boolean) =>
  sites.filter(test).reduce((n, s) => n + s.amount, 0)

/** Sentences explaining a CPU profile (shares are of the busy time). */
const readCpuProfile = ({ hot }: ProfileSummary): ReadonlyArray<string> => {
  const out: Array<string> = []
  const write = sum(
    hot,
    ({ name, where }) =>
      (name.includes("[native") && /writev|handleWriteReq/.test(name)) ||
      (where.startsWith("native/") && name.startsWith("writev")) ||
      // The native engine's write: the addon call, or the wrapper itself when V8 folds the call into it.
      (where.startsWith(nativeEngine) && (name === "write" || name === "[native addon] ← write"))
  )
  if (write >= 10)
    out.push(
      `${write.toFixed(0)} % is the socket write itself (the native call that enters the kernel and wakes the ` +
        "peer): one syscall per frame or chunk written."
    )
  const gc = sum(hot, (s) => s.name === "(garbage collector)")
  if (gc >= 10) out.push(`${gc.toFixed(0)} % is garbage collection: the allocation rate per operation.`)
  const startup = sum(
    hot,
    ({ name, where }) =>
      name === "compileSourceTextModule" ||
      where.startsWith("node:internal/modules") ||
      name.startsWith("openFileHandle")
  )
  if (startup >= 3) out.push(`${startup.toFixed(0)} % is the process's own start-up (loading modules).`)
  return out
}

const listSites = (hot: ReadonlyArray<Site>, amount: (s: Site) => string, n = 3) =>
  hot
    .slice(0, n)
    .map((s) => `${amount(s)} \`${s.name}\`${s.where === "" ? "" : ` (${s.where})`}`)
    .join(", ")

/** A CPU profile in one sentence, for the why of a missed target: busy share, top self time, first reading. */
export const profileGist = (who: string, summary: ProfileSummary): string =>
  `${who}: busy ${summary.busyPercent.toFixed(0)} % of the time; top self time ` +
  `${listSites(summary.hot, (s) => `${s.amount.toFixed(0)} %`)}.` +
  readCpuProfile(summary)
    .map((r) => ` ${r}`)
    .join("")

/** A CPU summary as a Markdown list, for a suite's notes, followed by its first reading. */
export const renderProfile = (title: string, summary: ProfileSummary): string => {
  const reading = readCpuProfile(summary)
  return [
    `${title}: the thread was busy ${summary.busyPercent.toFixed(0)} % of the time; top self time, as a share of ` +
      "the busy time (V8 sampling profiler; native code is named after its JS caller):",
    "",
    ...summary.hot.map(
      (h) => `- ${h.amount.toFixed(1)} % \`${h.name}\`${h.where === "" ? "" : ` (${h.where})`}`
    ),
    ...(reading.length === 0 ? [] : ["", `Reading: ${reading.join(" ")}`])
  ].join("\n")
}

interface SamplingNode {
  readonly callFrame: CallFrame
  readonly selfSize: number
  readonly children: ReadonlyArray<SamplingNode>
}

/**
 * Runs `fill` with the sampling heap profiler on (1 KiB interval) and renders,
 * with the memory still held and garbage collected, the top allocation sites
 * of what is alive: each one's share and bytes per `unit` (`items` of them),
 * then a first reading; and the same in one sentence (`gist`), for the why of
 * a missed target. Runs `release` afterwards.
 */
export const heapProfile = (
  title: string,
  fill: () => Promise<unknown>,
  release: () => Promise<unknown>,
  items: number,
  unit: string
): Promise<{ readonly text: string; readonly gist: string }> =>
  inspect(async (session) => {
    await post(session, "HeapProfiler.enable")
    await post(session, "HeapProfiler.startSampling", { samplingInterval: 1024 })
    let head: SamplingNode
    try {
      await fill()
      await post(session, "HeapProfiler.collectGarbage")
      head = (await post<{ profile: { head: SamplingNode } }>(session, "HeapProfiler.getSamplingProfile"))
        .profile.head
    } finally {
      await post(session, "HeapProfiler.stopSampling")
    }
    await release()
    const sites = new Map<string, { name: string; where: string; amount: number }>()
    let total = 0
    const walk = (node: SamplingNode) => {
      if (node.selfSize > 0) {
        const name = node.callFrame.functionName || "(anonymous)"
        const where = location(node.callFrame)
        const site = sites.get(`${name}@${where}`) ?? { name, where, amount: 0 }
        site.amount += node.selfSize
        sites.set(`${name}@${where}`, site)
        total += node.selfSize
      }
      for (const child of node.children) walk(child)
    }
    walk(head)
    const hot = top(sites.values())
    const share = (test: (s: Site) => boolean) => (sum(hot, test) / Math.max(1, total)) * 100
    const runtime = share((s) => s.where.startsWith("packages/runtime/"))
    const alive = `${(total / items / 1024).toFixed(1)} KiB per ${unit} allocated during the fill and still alive`
    const gist =
      `${title}: ${alive}; top sites ${listSites(hot, (s) => `${(s.amount / items).toFixed(0)} B per ${unit}`)}.` +
      (runtime < 10 ? "" : ` ${runtime.toFixed(0)} % is allocated directly by the runtime's own code.`)
    const text = [
      `${title}: ${alive} ` +
        "(V8 sampling heap profiler, 1 KiB interval); top allocation sites (the function that allocated):",
      "",
      ...hot.map(
        (s) =>
          `- ${((s.amount / total) * 100).toFixed(1)} %, ${(s.amount / items).toFixed(0)} B per ${unit}: ` +
          `\`${s.name}\`${s.where === "" ? "" : ` (${s.where})`}`
      ),
      ...(runtime < 10
        ? []
        : [
            "",
            `Reading: ${runtime.toFixed(0)} % is allocated directly by the runtime's own code (the Process handle ` +
              "and its closures, the pending call's entry, the per-process scope)."
          ])
    ].join("\n")
    return { text, gist }
  })
