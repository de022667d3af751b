/**
 * Where the time goes: V8's sampling CPU profiler (the one behind
 * `node --cpu-prof`), summarised as the functions with the most self time.
 * `profile` drives it in-process through `node:inspector` around one extra
 * run of a scenario (so only the host is sampled, never a peer);
 * `readProfile` summarises a `.cpuprofile` written by a peer started with
 * `--cpu-prof`.
 */
import { readdirSync, readFileSync } from "node:fs"
import { Session } from "node:inspector"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { readCpuProfile } from "./diagnosis.js"

interface ProfileNode {
  readonly id: number
  readonly children?: ReadonlyArray<number>
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
}

/** The parts of a V8 CPU profile the summary reads. */
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** One function of the summary. */
export interface HotFunction {
  readonly name: string
  /** `file:line`, relative to the repository (under node_modules: from the package name on); empty for VM states. */
  readonly where: string
  /** Share of the busy (non-idle) samples. */
  readonly selfPercent: number
}

/** A profile summary. */
export interface ProfileSummary {
  /** Share of the samples in which the thread was not idle. */
  readonly busyPercent: number
  readonly hot: ReadonlyArray<HotFunction>
}

const post = <T>(session: Session, method: string, params?: object): Promise<T> =>
  new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as T)))
  )

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

const location = (url: string, line: number): string => {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url
  const short = path.startsWith(repoRoot) ? relative(repoRoot, path) : path
  return `${short.replace(/^.*node_modules\//, "")}:${line + 1}`
}

/** Self time per function, as shares of the busy samples. */
export const summarizeProfile = (profile: Profile, top = 12): ProfileSummary => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parentOf = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n)
  // Native code (stack capture, syscalls, builtins) is labelled with the JS function that called it.
  const label = (node: ProfileNode): { name: string; where: string } => {
    const name = node.callFrame.functionName || "(anonymous)"
    const vmState = name.startsWith("(") && name !== "(anonymous)"
    if (vmState) return { name, where: "" }
    if (node.callFrame.url !== "")
      return { name, where: location(node.callFrame.url, node.callFrame.lineNumber) }
    let caller = parentOf.get(node.id)
    while (caller !== undefined && caller.callFrame.url === "") caller = parentOf.get(caller.id)
    if (caller === undefined) return { name: `${name} [native]`, where: "" }
    const where = location(caller.callFrame.url, caller.callFrame.lineNumber)
    // V8 gives node-addon-api functions the name of some other method of the addon: leave it out.
    const shown = where.startsWith("native/") ? "[native addon]" : `${name} [native]`
    return { name: `${shown} ← ${caller.callFrame.functionName || "(anonymous)"}`, where }
  }
  const underInspector = (node: ProfileNode): boolean => {
    for (let n: ProfileNode | undefined = node; n !== undefined; n = parentOf.get(n.id)) {
      if (n.callFrame.url === "node:inspector") return true
    }
    return false
  }
  const self = new Map<string, { name: string; where: string; micros: number }>()
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
    const key = `${name}@${where}`
    const entry = self.get(key) ?? { name, where, micros: 0 }
    entry.micros += delta
    self.set(key, entry)
  }
  const busy = total - idle
  return {
    busyPercent: total === 0 ? 0 : (busy / total) * 100,
    hot: [...self.values()]
      .sort((a, b) => b.micros - a.micros)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, selfPercent: busy === 0 ? 0 : (e.micros / busy) * 100 }))
  }
}

/** Runs `body` under the profiler (sampling every `intervalMicros`) and summarises it. */
export const profile = async (
  body: () => Promise<void>,
  top = 12,
  intervalMicros = 200
): Promise<ProfileSummary> => {
  const session = new Session()
  session.connect()
  try {
    await post(session, "Profiler.enable")
    await post(session, "Profiler.setSamplingInterval", { interval: intervalMicros })
    await post(session, "Profiler.start")
    let result: { profile: Profile }
    try {
      await body()
    } finally {
      result = await post<{ profile: Profile }>(session, "Profiler.stop")
    }
    return summarizeProfile(result.profile, top)
  } finally {
    session.disconnect()
  }
}

/** Summarises the (first) `.cpuprofile` that `node --cpu-prof --cpu-prof-dir=dir` wrote into `dir`. */
export const readProfile = (dir: string, top = 12): ProfileSummary => {
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))
  if (file === undefined) throw new Error(`no .cpuprofile in ${dir}`)
  return summarizeProfile(JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile, top)
}

/** The summary as a Markdown list, for a suite's notes, followed by its first reading. */
export const renderProfile = (title: string, summary: ProfileSummary): string => {
  const reading = readCpuProfile(summary)
  return [
    `${title}: the thread was busy ${summary.busyPercent.toFixed(0)} % of the time; top self time, as a share of ` +
      "the busy time (V8 sampling profiler; native code is named after its JS caller):",
    "",
    ...summary.hot.map(
      (h) => `- ${h.selfPercent.toFixed(1)} % \`${h.name}\`${h.where === "" ? "" : ` (${h.where})`}`
    ),
    ...(reading.length === 0 ? [] : ["", `Reading: ${reading.join(" ")}`])
  ].join("\n")
}
