/**
 * Peers of the benchmarks and of the soak run as child processes of their
 * own (bench/support/peer.ts), so that the host's CPU time, descriptors and
 * heap never include theirs. A peer is started with the same Node binary;
 * its output is kept (not printed) and shown only when it fails.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { PeerConfig } from "./peer.js"
import { childProcesses } from "./probes.js"

/** A running peer process. */
export interface PeerProcess {
  readonly pid: number
  /** Resolves when the process has exited, with its status (or the signal that ended it). */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** What the peer printed so far (stdout and stderr, last 64 KiB). */
  readonly output: () => string
  /**
   * Waits up to `graceMs` for the peer to exit by itself (it does when its
   * connections end); then sends SIGTERM, and 5 s later SIGKILLs it and the
   * processes it started. Idempotent; never rejects.
   */
  readonly stop: (graceMs?: number) => Promise<void>
  /** Whether `stop` had to signal the peer (it did not end when its host went away). */
  readonly forced: () => boolean
}

const keepTail = 64 * 1024

/** Starts bench/support/peer.ts with `config`, under `nodeArgs` (e.g. `--cpu-prof`). */
export const startPeer = (config: PeerConfig, nodeArgs: ReadonlyArray<string> = []): PeerProcess => {
  const script = fileURLToPath(new URL("./peer.js", import.meta.url))
  // The peer's stdin is a pipe nobody writes to: its end of file tells the peer that its host has gone, however
  // the host died (a stream peer serves connections forever and would outlive a killed host).
  const child = spawn(process.execPath, [...nodeArgs, script, JSON.stringify(config)], {
    stdio: ["pipe", "pipe", "pipe"]
  })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-keepTail)
  }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }))
    // A spawn failure emits "error" and no "exit".
    child.once("error", (error) => {
      keep(Buffer.from(`spawn failed: ${error.message}\n`))
      resolve({ code: -1, signal: null })
    })
  })
  const within = async (ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)))
    const outcome = await Promise.race([exited, late])
    clearTimeout(timer)
    return outcome !== "late"
  }
  let forced = false
  let stopping: Promise<void> | undefined
  const stop = (graceMs = 2000): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      if (await within(graceMs)) return
      forced = true
      console.log(`(peer ${config.kind} pid ${child.pid} did not end with its host: stopping it)`)
      child.kill("SIGTERM")
      if (await within(5000)) return
      // Our guest starts its processes detached: they would outlive it.
      if (child.pid !== undefined) for (const c of childProcesses(child.pid)) killIfAlive(c.pid)
      child.kill("SIGKILL")
      await exited
    })())
  return { pid: child.pid ?? -1, exited, output: () => output, stop, forced: () => forced }
}

/** SIGKILL to a process that may have ended since it was listed (ESRCH is that, not a failure). */
const killIfAlive = (pid: number) => {
  try {
    process.kill(pid, "SIGKILL")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e
  }
}

/** Throws with the peer's output when it has exited with a failure status. */
export const checkPeer = async (peer: PeerProcess, what: string): Promise<void> => {
  const status = await peer.exited
  if (status.code !== 0 && !peer.forced()) {
    throw new Error(
      `${what} (pid ${peer.pid}) exited with ${status.code ?? status.signal}:\n${peer.output()}`
    )
  }
}

/** Stops every peer, then throws for the first that failed. */
export const stopPeers = async (peers: ReadonlyArray<PeerProcess>, what: string): Promise<void> => {
  await Promise.all(peers.map((p) => p.stop()))
  for (const p of peers) await checkPeer(p, what)
}

/**
 * A private directory for sockets (mkdtemp creates it 0700), removed by
 * `dispose`. Unix socket paths are limited to 107 bytes, so it lives in the
 * system temp dir with a short prefix.
 */
export const socketDir = (prefix: string): { readonly path: string; readonly dispose: () => void } => {
  const path = mkdtempSync(join(tmpdir(), `gcsb-${prefix}-`))
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) }
}
