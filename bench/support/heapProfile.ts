/**
 * What the heap holds: V8's sampling heap profiler, driven through
 * `node:inspector`, started before a scenario fills memory and read while it
 * is still filled — so the samples are the objects still alive, attributed to
 * the function that allocated them.
 */
import { Session } from "node:inspector"
import { relative } from "node:path"
import { fileURLToPath } from "node:url"
import { readHeapProfile } from "./diagnosis.js"

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: ReadonlyArray<SamplingNode>
}

/** One allocation site of the summary. */
export interface AllocationSite {
  readonly name: string
  readonly where: string
  /** Live bytes it allocated, as sampled. */
  readonly bytes: number
}

const post = <T>(session: Session, method: string, params?: object): Promise<T> =>
  new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as T)))
  )

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

const location = (url: string, line: number): string => {
  if (url === "") return ""
  const path = url.startsWith("file://") ? fileURLToPath(url) : url
  const short = path.startsWith(repoRoot) ? relative(repoRoot, path) : path
  return `${short.replace(/^.*node_modules\//, "")}:${line + 1}`
}

/**
 * Runs `fill` with the sampling heap profiler on, then (memory still held,
 * garbage collected) gives the `top` allocation sites of what is alive, and
 * finally runs `release`.
 */
export const heapProfile = async (
  fill: () => Promise<void>,
  release: () => Promise<void>,
  top = 12
): Promise<{ readonly totalBytes: number; readonly sites: ReadonlyArray<AllocationSite> }> => {
  const session = new Session()
  session.connect()
  try {
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
    const sites = new Map<string, AllocationSite & { bytes: number }>()
    let total = 0
    const walk = (node: SamplingNode) => {
      if (node.selfSize > 0) {
        const name = node.callFrame.functionName || "(anonymous)"
        const where = location(node.callFrame.url, node.callFrame.lineNumber)
        const key = `${name}@${where}`
        const site = sites.get(key) ?? { name, where, bytes: 0 }
        site.bytes += node.selfSize
        sites.set(key, site)
        total += node.selfSize
      }
      for (const child of node.children) walk(child)
    }
    walk(head)
    return { totalBytes: total, sites: [...sites.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top) }
  } finally {
    session.disconnect()
  }
}

/** The summary as a Markdown list: each site's share of the live sampled bytes and its bytes per `unit`, then a first reading. */
export const renderHeapProfile = (
  title: string,
  profile: { readonly totalBytes: number; readonly sites: ReadonlyArray<AllocationSite> },
  items: number,
  unit: string
): string => {
  const reading = readHeapProfile(profile.sites, profile.totalBytes)
  return [
    `${title}: ${(profile.totalBytes / items / 1024).toFixed(1)} KiB per ${unit} allocated during the fill and ` +
      "still alive (V8 sampling heap profiler, 1 KiB interval); top allocation sites (the function that allocated):",
    "",
    ...profile.sites.map(
      (s) =>
        `- ${((s.bytes / profile.totalBytes) * 100).toFixed(1)} %, ${(s.bytes / items).toFixed(0)} B per ${unit}: ` +
        `\`${s.name}\`${s.where === "" ? "" : ` (${s.where})`}`
    ),
    ...(reading.length === 0 ? [] : ["", `Reading: ${reading.join(" ")}`])
  ].join("\n")
}
