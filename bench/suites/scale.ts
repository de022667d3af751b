/**
 * Scale suite (issue 6, benchmark 4): host memory per live process and per
 * connection. Live processes on one connection — real ones run by our guest
 * (`sleep`, no stdio), the same number of fake ones kept "running" by the
 * minimal responder (it never answers their WaitForProcess), and real ones
 * with all three stdio streams connected (`cat`); then many connections in
 * one Node process. Reference: the host's memory per idle `net` AF_UNIX
 * connection, same run. Heap and RSS are read after a full GC, before and
 * after; the peers are processes of their own, so nothing of theirs is in it.
 */
import * as net from "node:net"
import { join } from "node:path"
import type { GuestConnectionService, Process } from "@gcs-bridge/runtime"
import { Deferred, Effect, Exit, Scope, Stream } from "effect"
import { fmt, summarize, valueRow } from "../lib/measure.js"
import { floorWhy, judge, NoProfile } from "../lib/targets.js"
import type { BenchSuite, Measurement } from "../lib/types.js"
import { bridgeSocketPath, engineNote, hostSession, pickEngine, type Engine } from "../support/hostSession.js"
import { checkPeer, socketDir, startPeer } from "../support/peerProcess.js"
import type { PeerConfig } from "../support/peer.js"
import { perItemKiB, settledMemory, type MemoryReading } from "../support/probes.js"
import { heapProfile } from "../support/profile.js"

/** Execs started at once while filling the connection. */
const ExecConcurrency = 32

/** Issue 10's targets: heap per idle live process without stdio, with three stdio streams, per idle connection. */
const TargetHeapKiB = 4
const TargetStdioHeapKiB = 40
const TargetConnectionHeapKiB = 16

/** One memory sample: KiB per item, how long filling took, and the heap left once all was closed (a leak shows there). */
interface Sample {
  readonly heap: number
  readonly rss: number
  readonly fillSeconds: number
  readonly residueHeap: number
}

type Kind = "guest" | "responder" | "guest-stdio"

/** The peer for a host listening on the Unix socket base `path`: our guest, or the responder holding every wait. */
const peerFor = (kind: Kind, path: string, engine: Engine): PeerConfig =>
  kind === "responder"
    ? { kind: "responder", paths: [bridgeSocketPath(path)], holdWaits: true }
    : { kind: "guest", path, engine }

/**
 * Fills `scope` with `count` live processes: `sleep 600` without stdio, or
 * `cat` with the three streams, each with its readers attached (as a user's
 * would be) and one byte echoed through it — so stdin and stdout are
 * connected (the guest dials stderr before them).
 */
const fillProcesses = (
  connection: GuestConnectionService,
  scope: Scope.Scope,
  count: number,
  stdio: boolean
): Effect.Effect<ReadonlyArray<Process>, unknown> => {
  const started = Effect.forEach(
    Array.from({ length: count }),
    () =>
      Scope.provide(scope)(
        connection.exec(
          stdio
            ? { CommandArgs: ["cat"], CreateStdInPipe: true, CreateStdOutPipe: true, CreateStdErrPipe: true }
            : { CommandArgs: ["sleep", "600"] }
        )
      ),
    { concurrency: ExecConcurrency }
  )
  const echoOne = (p: Process) =>
    Effect.gen(function* () {
      const echoed = yield* Deferred.make<void>()
      yield* Effect.forkIn(
        Stream.runForEach(p.stdout, () => Deferred.succeed(echoed, undefined)),
        scope
      )
      yield* Effect.forkIn(Stream.runDrain(p.stderr), scope)
      yield* Stream.run(Stream.make(new Uint8Array([0x2a])), p.stdin)
      yield* Deferred.await(echoed)
    })
  return stdio
    ? Effect.tap(started, (ps) =>
        Effect.forEach(ps, echoOne, { concurrency: ExecConcurrency, discard: true })
      )
    : started
}

/** Reads the memory before, after `fill` (which gives `count` items), and after `release`; per item. */
const sample = async (
  count: number,
  fill: () => Promise<void>,
  release: () => Promise<void>,
  before?: MemoryReading
): Promise<Sample> => {
  const start = before ?? (await settledMemory())
  const t0 = performance.now()
  await fill()
  const fillSeconds = (performance.now() - t0) / 1000
  const after = await settledMemory()
  await release()
  const closed = await settledMemory()
  const grown = perItemKiB(start, after, count)
  return { heap: grown.heap, rss: grown.rss, fillSeconds, residueHeap: perItemKiB(start, closed, count).heap }
}

/**
 * Memory per live process with `count` processes started on a fresh
 * connection (after one process started and closed, so that every lazily
 * built piece is in the baseline). The residue is read once the connection is
 * closed too (for the responder the waits are pending until then, by design),
 * against a reading taken before the connection existed.
 */
const liveProcesses = async (engine: Engine, path: string, count: number, kind: Kind): Promise<Sample> => {
  const pre = await settledMemory()
  const peer = startPeer(peerFor(kind, path, engine))
  const session = hostSession(engine)
  try {
    const connection = await session.connect(path)
    await session.run(Effect.scoped(Effect.asVoid(connection.exec({ CommandArgs: ["/bin/true"] }))))
    const scope = await session.run(Scope.make())
    let started: ReadonlyArray<Process> = []
    const filled = await sample(
      count,
      async () => {
        started = await session.run(fillProcesses(connection, scope, count, kind === "guest-stdio"))
      },
      async () => {
        // Closing the scope asks the guest to kill every process, which a Linux GCS refuses for UVM processes
        // (GCS-PROTOCOL §11.10: SignalProcess on the null container is 0xC037010E), and so does ours: a `sleep`
        // lives on until the connection closes, when the guest ends them all. A `cat` ends by itself once its
        // stdin is closed with the scope, and its exit answers its wait.
        await session.run(Scope.close(scope, Exit.void))
        if (kind === "guest-stdio")
          await session.run(Effect.forEach(started, (p) => Effect.ignore(p.wait), { discard: true }))
        started = []
        await session.close()
      }
    )
    return { ...filled, residueHeap: perItemKiB(pre, await settledMemory(), count).heap }
  } finally {
    await session.close()
    await peer.stop(10_000)
    await checkPeer(peer, `scale peer (${kind})`)
  }
}

type HeapReport = Awaited<ReturnType<typeof heapProfile>>

/** Where the heap of `count` live processes goes (fake ones, or `cat`s with stdio; fresh connection). */
const profileProcesses = async (
  engine: Engine,
  path: string,
  count: number,
  kind: "responder" | "guest-stdio"
): Promise<HeapReport> => {
  const peer = startPeer(peerFor(kind, path, engine))
  const session = hostSession(engine)
  try {
    const connection = await session.connect(path)
    await session.run(Effect.scoped(Effect.asVoid(connection.exec({ CommandArgs: ["/bin/true"] }))))
    const scope = await session.run(Scope.make())
    const stdio = kind === "guest-stdio"
    let started: ReadonlyArray<Process> = []
    return await heapProfile(
      `Heap profile of ${count} ${stdio ? "live processes with three stdio streams" : "fake live processes"}`,
      async () => (started = await session.run(fillProcesses(connection, scope, count, stdio))),
      async () => {
        await session.run(Scope.close(scope, Exit.void))
        // A `cat` ends once its stdin is closed with the scope; its wait answers then (see liveProcesses).
        if (stdio) await session.run(Effect.forEach(started, (p) => Effect.ignore(p.wait), { discard: true }))
      },
      count,
      "process"
    )
  } finally {
    await session.close()
    await peer.stop(10_000)
    await checkPeer(peer, "scale peer (heap profile)")
  }
}

/** Where the heap of `count` idle GuestConnections goes (to one responder process). */
const profileConnections = async (engine: Engine, dir: string, count: number): Promise<HeapReport> => {
  const paths = Array.from({ length: count }, (_, i) => join(dir, `hc${i}`))
  const session = hostSession(engine)
  const peer = startPeer({ kind: "responder", paths: paths.map(bridgeSocketPath), holdWaits: true })
  try {
    return await heapProfile(
      `Heap profile of ${count} idle GuestConnections`,
      () => Promise.all(paths.map((p) => session.connect(p))),
      session.close,
      count,
      "connection"
    )
  } finally {
    await session.close()
    await peer.stop(10_000)
    await checkPeer(peer, "scale peer (connections heap profile)")
  }
}

/** Memory per connection with `count` guest connections (to one responder process) in this process. */
const connections = async (engine: Engine, dir: string, count: number): Promise<Sample> => {
  // Warm: one connection made and closed, so the baseline holds every lazily built piece.
  const warmPath = join(dir, "cw")
  const warmPeer = startPeer(peerFor("responder", warmPath, engine))
  const warmSession = hostSession(engine)
  await warmSession.connect(warmPath)
  await warmSession.close()
  await warmPeer.stop()
  const paths = Array.from({ length: count }, (_, i) => join(dir, `c${i}`))
  // The session's runtime (layers, scopes) is built before the baseline: it is not per connection.
  const session = hostSession(engine)
  await session.run(Effect.void)
  const before = await settledMemory()
  const peer = startPeer({ kind: "responder", paths: paths.map(bridgeSocketPath), holdWaits: true })
  try {
    return await sample(
      count,
      () => Promise.all(paths.map((p) => session.connect(p))).then(() => {}),
      session.close,
      before
    )
  } finally {
    await session.close()
    await peer.stop(10_000)
    await checkPeer(peer, "scale peer (connections)")
  }
}

/** Reference: memory per idle `net` AF_UNIX connection accepted by this process from a peer process. */
const rawConnections = async (dir: string, count: number): Promise<Sample> => {
  const paths = Array.from({ length: count }, (_, i) => join(dir, `r${i}`))
  const sockets: Array<net.Socket> = []
  await settledMemory()
  const before = await settledMemory()
  const servers = paths.map(() => net.createServer())
  const accepted = Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) =>
          server.once("connection", (socket) => {
            sockets.push(socket)
            server.close()
            resolve()
          })
        )
    )
  )
  await Promise.all(servers.map((s, i) => new Promise<void>((resolve) => s.listen(paths[i], resolve))))
  // The responder dials like a guest and then stays silent: an idle connection.
  const peer = startPeer({ kind: "responder", paths, holdWaits: true })
  const destroy = async () => {
    for (const s of sockets) s.destroy()
  }
  try {
    return await sample(count, () => accepted.then(() => {}), destroy, before)
  } finally {
    await destroy()
    await peer.stop(10_000)
    await checkPeer(peer, "scale peer (raw connections)")
  }
}

/** The scale benchmark suite. */
export const suite: BenchSuite = {
  name: "scale",
  run: async (options) => {
    const size = options.quick
      ? { raw: 50, live: 100, stdio: 20, connections: 5 }
      : { raw: 1_000, live: 10_000, stdio: 1_000, connections: 400 }
    const dir = socketDir("scale")
    try {
      const picked = await pickEngine(dir.path)
      const { engine } = picked
      const fake: Array<Sample> = []
      const conns: Array<Sample> = []
      const raw: Array<Sample> = []
      for (let round = 0; round < options.rounds; round++) {
        raw.push(await rawConnections(dir.path, size.raw))
        conns.push(await connections(engine, dir.path, size.connections))
        fake.push(await liveProcesses(engine, join(dir.path, `f${round}`), size.live, "responder"))
      }
      // Real processes are costly to start: one round of them; the host-only figures get every round.
      const real = [await liveProcesses(engine, join(dir.path, "g"), size.live, "guest")]
      const stdio = [await liveProcesses(engine, join(dir.path, "s"), size.stdio, "guest-stdio")]
      const rawLabel = `idle net AF_UNIX connection (${size.raw})`
      const rows = (
        label: string,
        unit: string,
        samples: ReadonlyArray<Sample>,
        extra: Partial<Measurement>
      ) =>
        (["heap", "RSS"] as const).map((what) =>
          valueRow(
            `${label}: ${what}`,
            `KiB per ${unit}`,
            samples.map((s) => (what === "heap" ? s.heap : s.rss)),
            what === "heap" ? extra : extra.reference === undefined ? {} : { reference: `${rawLabel}: RSS` }
          )
        )
      const measurements: Array<Measurement> = [
        ...rows(rawLabel, "connection", raw, {
          note: "reference: net.Socket accepted from a silent peer process"
        }),
        ...rows(
          `GuestConnection to the responder (${size.connections} in one process)`,
          "connection",
          conns,
          {
            reference: `${rawLabel}: heap`,
            note: "negotiated, idle"
          }
        ),
        ...rows(`live process, no stdio, fake (${size.live}, responder)`, "process", fake, {
          note: `target ≤ ${TargetHeapKiB} KiB heap; responder never answers WaitForProcess`
        }),
        ...rows(`live process, no stdio, real (${size.live} × sleep, our guest)`, "process", real, {
          note: `target ≤ ${TargetHeapKiB} KiB heap`
        }),
        ...rows(`live process with stdin+stdout+stderr (${size.stdio} × cat, our guest)`, "process", stdio, {
          reference: `${rawLabel}: heap`,
          note: "3 connections and 2 reader fibers per process"
        })
      ]
      const median = (xs: ReadonlyArray<Sample>, key: keyof Sample) => summarize(xs.map((s) => s[key])).median
      const heap = {
        raw: median(raw, "heap"),
        fake: median(fake, "heap"),
        real: median(real, "heap"),
        stdio: median(stdio, "heap"),
        connection: median(conns, "heap")
      }
      const notes: Array<string> = [
        `Each figure is (reading after − reading before) / count, both read after a full GC (\`--expose-gc\` ` +
          "set at run time), in this host process only: the peers (our guest, the responder) are processes of " +
          "their own. Before the baseline a connection is negotiated and one process has run, so lazily built " +
          "state is not counted. ‘Fake’ processes: the minimal responder answers ExecuteProcess with a new pid " +
          "and never answers WaitForProcess, so each stays live on the host exactly as a real one does (a pending " +
          "wait, a Process handle, its scope) — the host's own memory per process without the cost of real " +
          "processes. ‘Real’ ones: our guest runs `sleep 600` (no stdio) or `cat` with the three stdio streams " +
          "connected (a byte echoed through each `cat` before the reading). " +
          `${ExecConcurrency} execs in flight while filling. ` +
          `Rounds: ${options.rounds} for the connection and fake-process figures; 1 for real processes ` +
          "(starting them is what takes the time).",
        `Fill times (median): ${fmt(median(fake, "fillSeconds"))} s for ${size.live} fake processes, ` +
          `${fmt(median(real, "fillSeconds"))} s for ${size.live} real ones, ${fmt(median(stdio, "fillSeconds"))} s ` +
          `for ${size.stdio} with stdio, ${fmt(median(conns, "fillSeconds"))} s for ${size.connections} connections. ` +
          `Heap left after closing everything, per item (a leak would show here): fake ${fmt(median(fake, "residueHeap"))} KiB, ` +
          `real ${fmt(median(real, "residueHeap"))} KiB, stdio ${fmt(median(stdio, "residueHeap"))} KiB, ` +
          `connections ${fmt(median(conns, "residueHeap"))} KiB.`,
        "RSS growth is what the process took from the system while filling; V8 keeps freed pages, so it is an " +
          "upper bound and noisy at small counts.",
        engineNote(picked)
      ]
      // Heap profiles of what misses its target (full runs only): they say where the memory goes.
      const gist: { process?: string; stdio?: string; connection?: string } = {}
      const profiled = async (missed: boolean, key: keyof typeof gist, take: () => Promise<HeapReport>) => {
        if (!missed || options.quick) return
        const report = await take()
        notes.push(report.text)
        gist[key] = report.gist
      }
      await profiled(Math.max(heap.fake, heap.real) > TargetHeapKiB, "process", () =>
        profileProcesses(engine, join(dir.path, "hp"), Math.min(size.live, 2000), "responder")
      )
      await profiled(heap.stdio > TargetStdioHeapKiB, "stdio", () =>
        profileProcesses(engine, join(dir.path, "hs"), Math.min(size.stdio, 200), "guest-stdio")
      )
      await profiled(heap.connection > TargetConnectionHeapKiB, "connection", () =>
        profileConnections(engine, dir.path, size.connections)
      )
      const KiB = (n: number) => `${fmt(n)} KiB`
      const noGo = "no Go figure (issue 10 gives none)"
      const targets = [
        judge({
          target: `idle live process without stdio: heap ≤ ${TargetHeapKiB} KiB`,
          value: Math.max(heap.fake, heap.real),
          limit: TargetHeapKiB,
          unit: "KiB",
          ours: `${KiB(heap.real)} (sleep in our guest); ${KiB(heap.fake)} (fake, responder)`,
          reference: `idle node net connection ${KiB(heap.raw)} (none is held per process)`,
          go: noGo,
          why: () =>
            `No socket is held per process without stdio, so the floor is next to nothing: the heap is the ` +
            `runtime's own state per process. ${gist.process ?? NoProfile}`
        }),
        judge({
          target: `idle live process with three stdio streams: heap ≤ ${TargetStdioHeapKiB} KiB`,
          value: heap.stdio,
          limit: TargetStdioHeapKiB,
          unit: "KiB",
          reference: `floor ${KiB(3 * heap.raw)} (three idle node net connections)`,
          go: noGo,
          why: () =>
            floorWhy({
              ours: heap.stdio,
              floor: 3 * heap.raw,
              limit: TargetStdioHeapKiB,
              unit: "KiB",
              floorName: "three idle node net AF_UNIX connections",
              profile: gist.stdio
            })
        }),
        judge({
          target: `idle GuestConnection: heap ≤ ${TargetConnectionHeapKiB} KiB`,
          value: heap.connection,
          limit: TargetConnectionHeapKiB,
          unit: "KiB",
          reference: `floor ${KiB(heap.raw)} (an idle node net connection)`,
          go: noGo,
          why: () =>
            floorWhy({
              ours: heap.connection,
              floor: heap.raw,
              limit: TargetConnectionHeapKiB,
              unit: "KiB",
              floorName: "an idle node net AF_UNIX connection",
              profile: gist.connection
            })
        })
      ]
      return {
        suite: "scale",
        title: "Scale: host memory per live process and per connection",
        measurements,
        notes,
        targets
      }
    } finally {
      dir.dispose()
    }
  }
}
